"""Step 1 in closed form (alae.mlp_step) against autograd (alae.losses.d_step)."""

import copy

import pytest
import torch

from alae.losses import d_step, fp32, parameters
from alae.mlp_step import d_step_mlp
from alae.model import ALAE


class Recorder(torch.optim.SGD):
    """An optimizer that keeps the gradients it is stepped with and leaves the weights alone."""

    def __init__(self, params):
        super().__init__(params, lr=0.0)
        self.grads = None

    def step(self, closure=None):
        self.grads = [p.grad.clone() for p in parameters(self)]


def step_gradients(step, model, x, z, r1_gamma, autocast=fp32):
    opt = Recorder([*model.E.parameters(), *model.D.parameters()])
    stats = step(model, opt, x, z, r1_gamma, autocast)
    return opt.grads, stats


@pytest.mark.parametrize("d_nonlinear", [True, False])
@pytest.mark.parametrize("r1_gamma", [10.0, 0.0])
def test_closed_form_equals_autograd(tiny_cfg, d_nonlinear, r1_gamma):
    torch.manual_seed(0)
    model = ALAE(tiny_cfg("mnist-mlp", f"model.d_nonlinear={str(d_nonlinear).lower()}").model).double()
    for p in model.parameters():  # biases away from zero, so that every bias term is checked
        p.data.add_(0.1 * torch.randn_like(p))
    x, z = torch.rand(6, 1, 28, 28, dtype=torch.float64), torch.randn(6, model.cfg.latent_size, dtype=torch.float64)
    expected, expected_stats = step_gradients(d_step, copy.deepcopy(model), x, z, r1_gamma)
    got, stats = step_gradients(d_step_mlp, model, x, z, r1_gamma)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.abs().max() > 0 or e.abs().max() == 0
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)
    for key in ("loss_d", "r1"):
        torch.testing.assert_close(stats[key], expected_stats[key], rtol=1e-12, atol=1e-12)
    if r1_gamma:
        assert stats["r1"] > 0


def test_closed_form_under_bf16_autocast_agrees_with_autograd(tiny_cfg):
    """With --precision bf16 both run their products in bf16: the gradients agree to bf16
    rounding, arrive in fp32, and the losses stay fp32."""
    torch.manual_seed(0)
    model = ALAE(tiny_cfg().model)
    # 8 images: the 16 rows (real and fake) that the closed form runs through E together stay
    # below E's width of 32, so that EqualLinear scales the same operand in both
    x, z = torch.rand(8, 1, 28, 28), torch.randn(8, model.cfg.latent_size)
    bf16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    got, stats = step_gradients(d_step_mlp, copy.deepcopy(model), x, z, 10.0, bf16)
    expected, _ = step_gradients(d_step, model, x, z, 10.0, bf16)
    assert all(g.dtype == torch.float32 for g in got)
    assert all(v.dtype == torch.float32 for v in stats.values())
    for g, e in zip(got, expected):
        assert (g - e).norm() < 0.02 * e.norm()
