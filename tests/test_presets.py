"""Every preset builds; the large StyleALAE ones run training steps on a tiny synthetic batch."""

import pytest
import torch

from alae import config
from alae.losses import ae_step, d_step, g_step
from alae.model import ALAE

LARGE = {"celeba-128": (6, 256), "celebahq-256": (7, 512), "bedroom-256": (7, 512), "ffhq-1024": (9, 512)}


@pytest.mark.parametrize("name", config.presets())
def test_every_preset_loads(name):
    assert config.load(name).model.kind in ("alae", "ae", "vae")


@pytest.mark.parametrize("name", sorted(LARGE))
def test_large_presets_build_and_train_a_few_steps(name):
    cfg = config.load(name)
    levels, latent = LARGE[name]
    torch.manual_seed(0)
    model = ALAE(cfg.model)
    assert model.G.levels == model.E.levels == levels and model.cfg.latent_size == latent
    adam = dict(lr=cfg.train.level_lr[0], betas=(0.0, 0.99))
    opt_ED = torch.optim.Adam([*model.E.parameters(), *model.D.parameters()], **adam)
    opt_FG = torch.optim.Adam([*model.F.parameters(), *model.G.parameters()], **adam)
    model.grow(1, 0.5)  # 8x8, fading in
    x = torch.rand(2, 3, 8, 8)
    for _ in range(2):
        stats = d_step(model, opt_ED, x, torch.randn(2, latent), 10.0)
        stats |= g_step(model, opt_FG, torch.randn(2, latent))
        stats |= ae_step(model, opt_ED, opt_FG, torch.randn(2, latent), False)
        assert all(torch.isfinite(torch.as_tensor(v)) for v in stats.values())
    # the full resolution's shapes through G and E, on the meta device: shapes without arithmetic
    # (a 1024x1024 forward pass takes seconds on a CPU and checks nothing more)
    model.to("meta").grow(levels - 1, 1.0)
    size = cfg.model.resolution
    with torch.no_grad():
        assert model.G(model.F(torch.randn(1, latent, device="meta"))).shape == (1, 3, size, size)
        assert model.E(torch.zeros(1, 3, size, size, device="meta")).shape == (1, latent)
