"""An imported StyleALAE checkpoint of the reference code is a run every command opens:
`alae import`, then `alae reconstruct` and `alae serve` (its JSON API) on it."""

import numpy as np
import torch
from PIL import Image

from alae.cli import main
from alae.model import load
from tests.helpers import ROOT, call, pixels, running

CHECKPOINT = ROOT / "tests" / "data" / "reference" / "style-gray32.pth"


def test_import_then_reconstruct_and_serve(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["import", str(CHECKPOINT), str(run)]) == 0
    assert "style networks, latent 32, 32x32x1, 4 level(s)" in capsys.readouterr().out
    model = load(run)
    assert model.resolution == 32 and model.cfg.d_nonlinear is False
    Image.fromarray((np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8)).save(tmp_path / "x.png")
    assert main(["reconstruct", str(run), str(tmp_path / "x.png"), "--out", str(tmp_path / "r.png")]) == 0
    assert Image.open(tmp_path / "r.png").size[0] >= 64
    with running(run) as base:
        status, answer = call(base, "/api/encode", {"sample": 0})
        assert status == 200 and len(answer["w"]) == 32
        assert pixels(answer["reconstruction"]).shape[:2] == (32, 32)
        w = model.encode(torch.from_numpy(pixels(answer["original"]).astype(np.float32)[None, None] / 255))
        assert np.allclose(answer["w"], w[0].numpy(), atol=1e-3)
        status, answer = call(base, "/api/generate", {"seed": 0, "num": 2, "truncation": 0.7})
        assert status == 200 and len(answer["images"]) == 2
