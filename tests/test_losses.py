"""Algorithm 1: each step moves its own networks only; R1 equals its closed form."""

import pytest
import torch
from torch import nn

from alae.losses import ae_step, d_step, g_step, pixel_step, r1_penalty


def snapshot(model):
    return {name: {k: v.detach().clone() for k, v in getattr(model, name).state_dict().items()} for name in "FGED"}


def moved(model, before):
    return {name for name in "FGED"
            if any(not torch.equal(getattr(model, name).state_dict()[k], v) for k, v in before[name].items())}


def optimizers(model):
    adam = dict(lr=1e-3, betas=(0.0, 0.99))
    return (torch.optim.Adam([*model.E.parameters(), *model.D.parameters()], **adam),
            torch.optim.Adam([*model.F.parameters(), *model.G.parameters()], **adam))


@pytest.mark.parametrize("step,expected", [("d", {"E", "D"}), ("g", {"F", "G"}), ("ae", {"E", "G"}), ("ae_F", {"E", "G", "F"})])
def test_each_step_moves_only_its_networks(tiny_model, step, expected):
    opt_ED, opt_FG = optimizers(tiny_model)
    x, z = torch.rand(8, 1, 28, 28), torch.randn(8, 8)
    # warm both optimizers up so that Adam state exists for every network, then check one step
    d_step(tiny_model, opt_ED, x, z, 10.0)
    g_step(tiny_model, opt_FG, z)
    before = snapshot(tiny_model)
    if step == "d":
        stats = d_step(tiny_model, opt_ED, x, z, 10.0)
    elif step == "g":
        stats = g_step(tiny_model, opt_FG, z)
    else:
        stats = ae_step(tiny_model, opt_ED, opt_FG, z, trains_F=step == "ae_F")
    assert moved(tiny_model, before) == expected
    assert all(torch.isfinite(torch.as_tensor(v)) for v in stats.values())
    assert all(p.requires_grad for p in tiny_model.parameters())


def test_pixel_step_moves_encoder_and_generator(tiny_cfg):
    from alae.model import ALAE
    model = ALAE(tiny_cfg("mnist-ae-l1").model)
    assert model.F is None and model.D is None
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pixel_step(model, opt, torch.rand(8, 1, 28, 28), "l1")
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items() if k.endswith("weight"))


def test_r1_matches_closed_form_for_linear_discriminator():
    torch.manual_seed(0)
    E, D = nn.Linear(6, 3, bias=True), nn.Linear(3, 1, bias=True)
    x = torch.randn(5, 6, requires_grad=True)
    logits = D(E(x)).squeeze(1)
    # D(E(x)) = v.(A x + b) + c, so grad_x = A^T v for every sample
    expected = (E.weight.T @ D.weight.T).pow(2).sum()
    assert torch.allclose(r1_penalty(logits, x), expected.expand(5), rtol=1e-6)


def test_d_step_loss_is_softplus_terms_plus_half_gamma_r1(tiny_model):
    opt_ED, _ = optimizers(tiny_model)
    x, z = torch.rand(8, 1, 28, 28), torch.randn(8, 8)
    with torch.no_grad():
        fake_logits = tiny_model.D(tiny_model.E(tiny_model.G(tiny_model.F(z))))
        real_logits = tiny_model.D(tiny_model.E(x))
    expected = (nn.functional.softplus(fake_logits) + nn.functional.softplus(-real_logits)).mean().item()
    stats = d_step(tiny_model, opt_ED, x, z, 10.0)
    assert stats["loss_d"] == pytest.approx(expected, rel=1e-5)
    assert stats["r1"] > 0


def test_linear_discriminator_option_makes_D_affine_in_w(tiny_cfg):
    from alae.model import ALAE
    torch.manual_seed(0)
    D = ALAE(tiny_cfg("mnist-mlp", "model.d_nonlinear=false").model).D
    a, b = torch.randn(4, 8), torch.randn(4, 8)
    assert torch.allclose(D(a + b) - D(b), D(a) - D(torch.zeros(4, 8)), atol=1e-5)
    D_nl = ALAE(tiny_cfg().model).D
    assert not torch.allclose(D_nl(a + b) - D_nl(b), D_nl(a) - D_nl(torch.zeros(4, 8)), atol=1e-3)
