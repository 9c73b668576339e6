"""Disentanglement: MIG, DCI, SAP and probes on codes with known answers; `alae eval
disentanglement` end to end on tiny runs; the beta-VAE and the MLP networks at other sizes."""

import json
import shutil

import numpy as np
import pytest
import torch

from alae import config, schedule, training
from alae.cli import main
from alae.data import packed
from alae.disentanglement import scores as dm
from alae.losses import vae_step
from alae.model import ALAE, load
from tests.helpers import SMALL, TINY, train_tiny

SIZES = [2, 3, 3, 4, 4]   # values per factor of the synthetic codes (few classes: fewer boosted trees)


@pytest.fixture(scope="module")
def factors():
    """[500, 5] factor indices drawn uniformly: 300 to fit, 200 to score."""
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(0, s, 500) for s in SIZES], axis=1)


def standardised(f: np.ndarray) -> np.ndarray:
    return (f - f.mean(0)) / f.std(0)


def scores(codes: np.ndarray, f: np.ndarray) -> dict:
    fit, held = (codes[:300], f[:300]), (codes[300:], f[300:])
    return {"mig": dm.mig(codes, f), "dci": dm.dci(*fit, *held), "sap": dm.sap(*fit, *held),
            "probe": dm.probe(*fit, *held)}


@pytest.fixture(scope="module")
def known(factors):
    """Scores of four codes: the factors themselves, a random rotation of them, pure noise,
    and the factors with a noisy second copy of the first one."""
    rng = np.random.default_rng(1)
    s = standardised(factors)
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    codes = {"factors": s, "rotated": s @ rotation, "noise": rng.normal(size=s.shape),
             "copied": np.concatenate([s, s[:, :1]], axis=1) + 0.05 * rng.normal(size=(len(s), 6))}
    return {name: scores(c, factors) for name, c in codes.items()}


def test_mig_by_hand():
    """Factors a, b uniform bits; codes (a, a + b): I(code0; a) = ln 2, I(code1; a) = I(code1; b)
    = ln 2 / 2, I(code0; b) = 0, so each factor's gap is half its entropy."""
    f = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    result = dm.mig(np.stack([f[:, 0], f.sum(1)], axis=1).astype(float), f)
    assert result["per_factor"] == pytest.approx([0.5, 0.5])
    assert np.array(result["mutual_information"]) == pytest.approx(np.log(2) * np.array([[1, 0], [0.5, 0.5]]))


def test_the_factors_themselves_score_one(known):
    r = known["factors"]
    assert r["mig"]["mig"] > 0.97              # MI between independent factors: sampling noise only
    assert r["dci"]["disentanglement"] > 0.97 and r["dci"]["completeness"] > 0.97
    assert r["dci"]["informativeness"] > 0.97
    assert min(r["probe"]["accuracy"]) > 0.95
    importance = np.array(r["dci"]["importance"])
    assert (importance.argmax(axis=0) == np.arange(5)).all()


def test_a_rotation_of_the_factors_scores_clearly_lower(known):
    r, best = known["rotated"], known["factors"]
    assert r["mig"]["mig"] < 0.5 * best["mig"]["mig"]
    assert r["dci"]["disentanglement"] < 0.6 * best["dci"]["disentanglement"]
    assert r["dci"]["completeness"] < 0.6 * best["dci"]["completeness"]
    assert r["sap"]["sap"] < best["sap"]["sap"]
    assert min(r["probe"]["accuracy"]) > 0.95     # a rotation keeps the information, linearly


def test_pure_noise_scores_near_zero(known):
    r = known["noise"]
    assert r["mig"]["mig"] < 0.03 and r["sap"]["sap"] < 0.05
    assert r["dci"]["disentanglement"] < 0.1 and r["dci"]["completeness"] < 0.1
    assert all(a < c + 0.1 for a, c in zip(r["probe"]["accuracy"], r["probe"]["chance"]))


def test_a_factor_copied_into_two_dimensions_loses_completeness(known):
    r, best = known["copied"], known["factors"]
    completeness = r["dci"]["completeness_per_factor"]
    assert completeness[0] < 0.8 and min(completeness[1:]) > 0.95
    assert r["dci"]["completeness"] < best["dci"]["completeness"] - 0.04
    assert r["dci"]["disentanglement"] > 0.95      # each dimension still serves one factor
    assert r["mig"]["per_factor"][0] < 0.3         # the two copies share the top


def monotone(s: np.ndarray) -> np.ndarray:
    """Each standardised factor through its own strictly increasing nonlinear map."""
    maps = [np.exp, lambda x: x**3, np.tanh, lambda x: x + 0.5 * x**3, lambda x: np.log(x - x.min() + 1)]
    return np.stack([g(s[:, k]) for k, g in enumerate(maps)], axis=1)


def test_monotone_nonlinear_maps_of_the_factors_still_score_near_one(factors):
    """MIG (on binned codes), DCI (trees) and the FactorVAE score (variances) depend only on the
    order of each dimension's values, up to binning: maps that keep every value apart keep them near 1."""
    r = scores(monotone(standardised(factors)), factors)
    assert r["mig"]["mig"] > 0.9
    assert r["dci"]["disentanglement"] > 0.97 and r["dci"]["completeness"] > 0.97
    assert dm.factor_vae(monotone(standardised(factors)), factors, np.random.default_rng(0), train=500,
                         evaluate=300)["score"] == 1.0


def test_factor_vae_score_of_the_factors_is_one_of_noise_near_chance(factors):
    rng = np.random.default_rng(3)
    s = standardised(factors)
    def score(codes):
        return dm.factor_vae(codes, factors, rng, train=500, evaluate=300)
    assert score(s) == {"score": 1.0, "train_accuracy": 1.0, "active_dims": 5}
    assert score(rng.normal(size=s.shape))["score"] < 0.35           # 5 factors: chance 0.2, a little more by the vote
    rotated = score(s @ np.linalg.qr(rng.normal(size=(5, 5)))[0])["score"]
    assert rotated < 0.9
    collapsed = np.concatenate([s, 0.01 * rng.normal(size=(len(s), 2))], axis=1)  # two dimensions of std 0.01
    assert score(collapsed)["active_dims"] == 5
    assert score(0.1 * s) == {"score": 1.0, "train_accuracy": 1.0, "active_dims": 5}  # std 0.1: kept, as disentanglement_lib
    assert score(np.zeros_like(s))["score"] == 0.0


def test_sap_of_binary_factors_is_the_accuracy_gap():
    """Binary factors as codes: each predicts itself exactly, the others at chance (balanced)."""
    rng = np.random.default_rng(2)
    f = rng.integers(0, 2, (1000, 3))
    result = dm.sap(f[:500].astype(float), f[:500], f[500:].astype(float), f[500:])
    assert result["sap"] == pytest.approx(0.5, abs=0.06)


# -- alae eval disentanglement ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def alae_run(shapes_set, tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("dis") / "alae", "shapes-alae", shapes_set)


@pytest.fixture(scope="module")
def vae_run(shapes_set, tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("dis") / "vae", "shapes-vae", shapes_set)


def test_eval_of_an_alae_run_gives_w_and_z(alae_run, tmp_path, capsys):
    out = tmp_path / "dis.json"
    assert main(["eval", "disentanglement", str(alae_run), "--num", "36", "--fit", "18", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| ALAE w |" in printed and "| ALAE z |" in printed and "relative residual" in printed
    result = json.loads(out.read_text())
    assert result["num"] == 36 and result["fit"] == 18 and result["held_out"] == 18
    assert result["factors"] == ["shape", "scale", "orientation", "x", "y"]
    for name in ("w", "z"):
        r = result["codes"][name]
        assert np.array(r["dci"]["importance"]).shape == (8, 5)
        assert 0 <= r["mig"]["mig"] <= 1 and 0 <= r["dci"]["disentanglement"] <= 1
        assert len(r["probe"]["accuracy"]) == 5
        for figure in ("traversals", "importance"):
            assert (tmp_path / f"dis-{name}-{figure}.png").is_file()
    assert 0 <= result["codes"]["z"]["inversion_residual"] < 1
    from PIL import Image
    assert Image.open(tmp_path / "dis-w-traversals.png").size[1] == 5 * (64 + 2) + 2   # a row per factor
    assert Image.open(tmp_path / "dis-reconstructions.png").size[1] == 2 * (64 + 2) + 2   # inputs over G(E(x))


def test_eval_of_a_vae_run_uses_the_posterior_mean(vae_run, capsys):
    assert main(["eval", "disentanglement", str(vae_run), "--num", "36", "--fit", "18"]) == 0
    assert "| beta-VAE |" in capsys.readouterr().out
    result = json.loads((vae_run / "disentanglement.json").read_text())
    assert list(result["codes"]) == ["w"]
    assert (vae_run / "disentanglement-w-importance.png").is_file()


def one_line_error(capsys, *argv) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("alae: error: ") and "Traceback" not in err
    return err


def test_unlabelled_or_malformed_datasets_are_refused_with_one_line(alae_run, vae_run, shapes_set, tmp_path, capsys):
    plain = tmp_path / "plain"
    packed.make("shapes", plain, 32, keep=SMALL)
    meta = json.loads((plain / "meta.json").read_text())
    del meta["factors"]
    (plain / "meta.json").write_text(json.dumps(meta))
    assert "has no factor labels" in one_line_error(capsys, "eval", "disentanglement", alae_run, "--dataset", plain)
    damaged = tmp_path / "damaged"
    shutil.copytree(shapes_set, damaged)
    np.save(damaged / "factors.npy", np.zeros((72, 2), np.uint8))
    assert "not integer labels" in one_line_error(capsys, "eval", "disentanglement", alae_run, "--dataset", damaged)
    assert "is not a dataset with factor labels" in one_line_error(
        capsys, "eval", "disentanglement", alae_run, "--dataset", "mnist")
    assert "has no mapping F" in one_line_error(capsys, "eval", "disentanglement", vae_run, "--codes", "z")
    assert "--codes takes w and/or z" in one_line_error(capsys, "eval", "disentanglement", alae_run, "--codes", "q")
    assert "run directory not found" in one_line_error(capsys, "eval", "disentanglement", tmp_path / "nope")


# -- the models compared: beta-VAE, MLP networks at any size ----------------------------------------

def vae(beta: float = 1.0) -> ALAE:
    torch.manual_seed(0)
    return ALAE(config.load("shapes-vae", TINY + [f"model.vae_beta={beta}", "data.dataset=x"]).model)


def test_vae_encoder_gives_mean_and_log_variance_and_decodes_probabilities():
    model = vae()
    x = torch.rand(5, 1, 32, 32)
    assert model.E(x).shape == (5, 16)                       # latent 8: mean and log-variance
    mean = model.E(x)[:, :8]
    assert torch.allclose(model.encode(x), mean.detach(), atol=1e-6)
    images = model.decode(torch.randn(5, 8))
    assert images.shape == (5, 1, 32, 32) and images.min() >= 0 and images.max() <= 1


def test_vae_step_is_the_negative_elbo_and_learns():
    model = vae(beta=4.0)
    opt = torch.optim.Adam([*model.E.parameters(), *model.G.parameters()], lr=3e-3)
    x = (torch.rand(16, 1, 32, 32) > 0.8).float()
    with torch.no_grad():
        mean, logvar = model.E(x).chunk(2, dim=1)
    prior = torch.distributions.Normal(0, 1)
    posterior = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    kl = torch.distributions.kl_divergence(posterior, prior).sum(1).mean()
    first = vae_step(model, opt, x, beta=4.0)
    assert first["kl"] == pytest.approx(kl.item(), rel=1e-5)
    for _ in range(40):
        last = vae_step(model, opt, x, beta=4.0)
    assert last["loss_rec"] + 4 * last["kl"] < 0.7 * (first["loss_rec"] + 4 * first["kl"])


def test_mlp_networks_take_any_square_size_and_keep_the_mnist_default():
    cfg = config.load("mnist-mlp", ["model.resolution=20", "model.channels=3", "model.hidden=16"])
    model = ALAE(cfg.model)
    assert model.E(torch.rand(2, 3, 20, 20)).shape == (2, 50)
    assert model.G(torch.randn(2, 50)).shape == (2, 3, 20, 20)
    default = ALAE(config.load("mnist-mlp").model)
    assert default.E.mlp.layers[0].weight.shape == (1024, 784) and default.G.mlp.layers[-1].weight.shape == (784, 1024)


def test_vae_config_values_are_checked():
    from alae.errors import UserError
    with pytest.raises(UserError, match="model.vae_beta: must be >= 0"):
        config.load("shapes-vae", ["model.vae_beta=-1"])
    with pytest.raises(UserError, match="style networks train as ALAE only"):
        config.load("mnist-style", ["model.kind=vae"])
    with pytest.raises(UserError, match="train.vae_beta_late: must be >= 0"):
        config.load("shapes-vae", ["train.vae_beta_late=-1"])
    with pytest.raises(UserError, match="vae_beta_late_kimg: a beta-VAE's schedule, and model.kind is alae"):
        config.load("shapes-alae", ["train.vae_beta_late_kimg=10"])


def test_the_kl_weight_falls_once_at_its_kimg():
    cfg = config.load("shapes-vae")
    assert (cfg.model.vae_beta, cfg.train.vae_beta_late, cfg.train.vae_beta_late_kimg) == (16, 8, 8000)
    assert [schedule.vae_beta(cfg, n) for n in (0, 7_999_999, 8_000_000, 12_000_000)] == [16, 16, 8, 8]
    constant = config.load("shapes-vae", ["train.vae_beta_late_kimg=0"])
    assert {schedule.vae_beta(constant, n) for n in (0, 8_000_000, 10**9)} == {16}


def test_training_steps_with_the_scheduled_kl_weight(shapes_set, tmp_path, monkeypatch):
    betas = []

    def recording(model, opt, x, beta, autocast):
        betas.append(beta)
        return vae_step(model, opt, x, beta, autocast)
    monkeypatch.setattr(training, "vae_step", recording)
    train_tiny(tmp_path / "vae", "shapes-vae", shapes_set, "train.vae_beta_late_kimg=0.032", "train.vae_beta_late=2")
    assert betas == [16, 16, 2, 2]   # batches of 16 images: the weight falls after the 32nd image


def test_a_trained_vae_run_loads(vae_run):
    model = load(vae_run)
    assert model.cfg.kind == "vae" and model.F is None
    assert model.encode(torch.rand(3, 1, 32, 32)).shape == (3, 8)


def test_probes_score_held_out_codes():
    """60 noise dimensions for 100 fitted images: a probe could learn its fitting set by heart,
    but on held-out images it stays at chance."""
    rng = np.random.default_rng(3)
    f = rng.integers(0, 4, (300, 1))
    codes = rng.normal(size=(300, 60))
    result = dm.probe(codes[:100], f[:100], codes[100:], f[100:])
    assert result["accuracy"][0] < result["chance"][0] + 0.12
