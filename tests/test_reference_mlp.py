"""`alae import` of the reference code's MLP ALAE: same weights, same outputs; hostile files refused.

The conformance check against the reference code's own outputs needs `mlp-mnist.pth` and its
`.expected.npz` (in `ALAE_REFERENCE`, or `../shared/reference` beside the checkout); it skips
with its reason where they are absent. A second check builds a small checkpoint in the same
format and compares the import with the reference networks written out here with plain
torch functions (`reference_forward`), so the import is checked on every machine.
"""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf

import alae
from alae.cli import main
from alae.reference import import_checkpoint
from tests.helpers import ROOT


def reference_dir() -> Path | None:
    for folder in (os.environ.get("ALAE_REFERENCE"), ROOT.parent / "shared" / "reference"):
        if folder and (Path(folder) / "mlp-mnist.pth").is_file():
            return Path(folder)
    return None


def relative_error(ours: torch.Tensor, expected: np.ndarray) -> float:
    """Max abs difference over max(1, max abs expected value)."""
    diff = np.abs(ours.detach().double().numpy().reshape(expected.shape) - expected).max()
    return float(diff / max(1.0, np.abs(expected).max()))


def reference_state(latent=8, hidden=16, f_layers=3, d_outputs=8, seed=0) -> dict:
    """A checkpoint of the reference MLP format with random effective weights."""
    g = torch.Generator().manual_seed(seed)

    def linear(out_features, in_features):
        return torch.randn(out_features, in_features, generator=g) / in_features ** 0.5, torch.randn(out_features, generator=g)

    def fc(sizes):
        state = {}
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            state[f"fc_{i}.weight"], state[f"fc_{i}.bias"] = linear(b, a)
        return state | {"bn_2.running_mean": torch.zeros(hidden), "bn_2.running_var": torch.ones(hidden),
                        "bn_2.num_batches_tracked": torch.tensor(0)}

    mapping_f, mapping_d = {}, {}
    for i in range(f_layers):
        mapping_f[f"map_blocks.{i}.fc.weight"], mapping_f[f"map_blocks.{i}.fc.bias"] = linear(latent, latent)
    for i, out in enumerate((latent, latent, d_outputs)):
        mapping_d[f"map_blocks.{i}.weight"], mapping_d[f"map_blocks.{i}.bias"] = linear(out, latent)
    return {"models": {"discriminator": fc([784, hidden, hidden, latent]), "generator": fc([latent, hidden, hidden, 784]),
                       "mapping_fl": mapping_f, "mapping_tl": mapping_d,
                       "dlatent_avg": {"buff": torch.randn(1, latent, generator=g).repeat(8, 1)}},
            "auxiliary": {}}


def reference_forward(models: dict, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The reference networks' forward passes ("Ref" commit), from the effective weights."""
    E, G, F, D = (models[n] for n in ("discriminator", "generator", "mapping_fl", "mapping_tl"))
    w = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)
    for i in range(len(F) // 2):
        w = nnf.leaky_relu(nnf.linear(w, F[f"map_blocks.{i}.fc.weight"], F[f"map_blocks.{i}.fc.bias"]), 0.2)
    h = nnf.leaky_relu(nnf.linear(w, G["fc_1.weight"], G["fc_1.bias"]), 0.01)
    h = nnf.leaky_relu(nnf.linear(h, G["fc_2.weight"], G["fc_2.bias"]), 0.01)
    g_of_w = nnf.linear(h, G["fc_3.weight"], G["fc_3.bias"]).view(-1, 1, 28, 28)
    h = nnf.leaky_relu(nnf.linear(x.flatten(1), E["fc_1.weight"], E["fc_1.bias"]), 0.2)
    long_feature = nnf.leaky_relu(nnf.linear(h, E["fc_2.weight"], E["fc_2.bias"]), 0.2)
    e_of_x = nnf.leaky_relu(nnf.linear(long_feature, E["fc_3.weight"], E["fc_3.bias"]))
    d = e_of_x
    for i in range(3):
        d = nnf.linear(d, D[f"map_blocks.{i}.weight"], D[f"map_blocks.{i}.bias"])
    return {"w_of_z": w, "g_of_w": g_of_w, "e_of_x": e_of_x, "long_feature_of_x": long_feature, "d_of_e_of_x": d[:, 0]}


def outputs(model, z, x, w, e) -> dict[str, torch.Tensor]:
    short, long_ = model.features(x)
    return {"w_of_z": model.map(z), "g_of_w": model.decode(w, noise=False, clip=False), "e_of_x": short,
            "long_feature_of_x": long_, "d_of_e_of_x": model.D(e)}


def check(model, expected: dict, z, x) -> dict[str, float]:
    errors = {k: relative_error(v, expected[k])
              for k, v in outputs(model, z, x, torch.as_tensor(expected["w_of_z"]).float(),
                                  torch.as_tensor(expected["e_of_x"]).float()).items()}
    assert max(errors.values()) < 1e-4, errors
    return errors


def test_the_reference_checkpoint_gives_the_reference_outputs(tmp_path):
    folder = reference_dir()
    if folder is None:
        pytest.skip("the reference checkpoints are absent: set ALAE_REFERENCE to the folder holding mlp-mnist.pth")
    expected = dict(np.load(folder / "mlp-mnist.expected.npz"))
    import_checkpoint(folder / "mlp-mnist.pth", tmp_path / "run")
    model = alae.load(tmp_path / "run")
    check(model, expected, torch.from_numpy(expected["z"]).float(), torch.from_numpy(expected["x"]).float())
    assert alae.load(tmp_path / "run", weights="live").cfg == model.cfg


def test_an_imported_checkpoint_computes_the_reference_networks(tmp_path):
    state = reference_state()
    torch.save(state, tmp_path / "ref.pth")
    import_checkpoint(tmp_path / "ref.pth", tmp_path / "run")
    model = alae.load(tmp_path / "run")
    assert (model.cfg.latent_size, model.cfg.hidden, model.cfg.f_layers, model.cfg.d_layers) == (8, 16, 3, 3)
    z, x = torch.randn(5, 8), torch.rand(5, 1, 28, 28)
    expected = {k: v.double().numpy() for k, v in reference_forward(state["models"], z, x).items()}
    check(model, expected, z, x)
    assert torch.equal(model.w_avg, state["models"]["dlatent_avg"]["buff"][0])


def test_set_changes_the_storage_not_the_function(tmp_path):
    """An lr multiplier set at import changes how weights are stored, never what the networks compute."""
    state = reference_state()
    torch.save(state, tmp_path / "ref.pth")
    import_checkpoint(tmp_path / "ref.pth", tmp_path / "run", ["model.f_lrmul=0.01", "data.split=sw"])
    model = alae.load(tmp_path / "run")
    assert model.cfg.f_lrmul == 0.01
    z, x = torch.randn(5, 8), torch.rand(5, 1, 28, 28)
    check(model, {k: v.double().numpy() for k, v in reference_forward(state["models"], z, x).items()}, z, x)


def test_import_then_reconstruct_from_the_command_line(tmp_path, capsys):
    torch.save(reference_state(), tmp_path / "ref.pth")
    assert main(["import", str(tmp_path / "ref.pth"), str(tmp_path / "run")]) == 0
    from PIL import Image
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)).save(tmp_path / "digit.png")
    assert main(["reconstruct", str(tmp_path / "run"), str(tmp_path / "digit.png"), "--out", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").is_file()
    capsys.readouterr()
    assert main(["import", str(tmp_path / "ref.pth"), str(tmp_path / "run")]) == 2
    assert "already exists: pass --force" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "run"), "--resume", "--quiet"]) == 2
    assert "holds no optimizer state" in capsys.readouterr().err


class RunsCode:
    """Unpickling this calls os.mkdir: a checkpoint that would run code when loaded."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def hostile_files(tmp_path) -> dict[str, Path]:
    files = {}
    files["runs code"] = tmp_path / "evil.pth"
    torch.save({"models": {"generator": RunsCode(str(tmp_path / "pwned"))}, "auxiliary": {}}, files["runs code"])
    files["plain pickle"] = tmp_path / "plain.pth"
    files["plain pickle"].write_bytes(pickle.dumps(RunsCode(str(tmp_path / "pwned"))))
    torch.save(reference_state(), tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    files["truncated"] = tmp_path / "truncated.pth"
    files["truncated"].write_bytes(data[:len(data) // 2])
    other = reference_state()
    other["models"]["generator"]["fc_2.weight"] = torch.zeros(16, 17)
    files["other architecture"] = tmp_path / "other.pth"
    torch.save(other, files["other architecture"])
    missing = reference_state()
    del missing["models"]["mapping_tl"]
    files["missing network"] = tmp_path / "missing.pth"
    torch.save(missing, files["missing network"])
    files["not a dict"] = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], files["not a dict"])
    return files


@pytest.mark.parametrize("case,message", [
    ("runs code", "refused, since loading them could run code"),
    ("plain pickle", "refused, since loading them could run code"),
    ("truncated", "not a readable torch checkpoint (truncated or damaged)"),
    ("other architecture", "not the reference MLP architecture"),
    ("missing network", "no network mapping_tl"),
    ("not a dict", "not a checkpoint of the ALAE reference code"),
])
@pytest.mark.filterwarnings("error")
def test_hostile_or_foreign_checkpoints_are_refused_in_one_line(tmp_path, capsys, case, message):
    path = hostile_files(tmp_path)[case]
    assert main(["import", str(path), str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("alae: error: ") and message in err, err
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "run").exists()
