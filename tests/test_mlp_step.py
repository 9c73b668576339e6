"""Step 1 in closed form (alae.mlp_step) against autograd (alae.losses.d_step)."""

import copy

import pytest
import torch
import torch.nn.functional as nnf

from alae.losses import d_step, fp32
from alae.mlp_step import d_step_mlp
from alae.model import ALAE
from tests.helpers import Recorder


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
    assert stats.keys() == expected_stats.keys() == ({"loss_d", "r1"} if r1_gamma else {"loss_d"})
    for key in stats:
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


@pytest.mark.parametrize("step", [d_step_mlp, d_step], ids=["closed form", "autograd"])
def test_step_1_on_a_hand_set_network_gives_the_gradients_derived_by_hand(tiny_cfg, step):
    """Real MLP networks with latent size 1, set by hand so that D∘E is linear on the images used:
    E 784-1-1-1 with effective weights u (first layer), 1, 1 and no biases (every pre-activation
    positive, so no leaky ReLU bends), D one layer 1-1 with effective weight t and bias e, and G
    with a zero last layer and bias p, so that every fake image is the constant p. Then
      r_i = t u.x_i + e,  f = t u.p + e,  grad_x r_i = t u,  R1 = t^2 |u|^2 per image, and
      L = mean_i [softplus(f) + softplus(-r_i)] + gamma/2 t^2 |u|^2
      dL/dt  = mean_i [s(f) u.p - s(-r_i) u.x_i] + gamma t |u|^2
      dL/du  = mean_i [s(f) t p - s(-r_i) t x_i] + gamma t^2 u
      dL/dv  = mean_i [s(f) t u.p - s(-r_i) t u.x_i] + gamma t^2 |u|^2   (v: E's 1-1 layers, at v = 1)
      dL/de  = mean_i [s(f) - s(-r_i)]
    A stored weight's gradient is its effective one times the layer's weight scale, a bias's times lrmul."""
    model = ALAE(tiny_cfg("mnist-mlp", "model.latent_size=1", "model.hidden=1", "model.d_layers=1",
                          "model.f_layers=1").model).double()
    gamma, t, e, p = 10.0, 0.5, 0.1, 0.25
    pixels = torch.arange(784, dtype=torch.float64)
    u = (0.5 + pixels / 784) / 784
    x = torch.stack([0.1 + 0.8 * pixels / 783, 0.9 - 0.6 * pixels / 783]).view(2, 1, 28, 28)
    with torch.no_grad():
        e0, e1, e2 = model.E.mlp.layers
        (d0,) = model.D.mlp.layers
        g_last = model.G.mlp.layers[-1]
        one = torch.ones(1, 1, dtype=torch.float64)
        for layer, weight in ((e0, u[None]), (e1, one), (e2, one), (d0, t * one)):
            layer.weight.copy_(weight / layer.weight_scale)
            layer.bias.zero_()
        d0.bias.fill_(e / d0.lrmul)
        g_last.weight.zero_()
        g_last.bias.fill_(p / g_last.lrmul)
    flat = x.view(2, -1)
    r, f = t * flat @ u + e, t * p * u.sum() + e
    s_fake, s_real = torch.sigmoid(f), torch.sigmoid(-r)
    grad_t = (s_fake * p * u.sum() - s_real * (flat @ u)).mean() + gamma * t * u.dot(u)
    grad_u = (s_fake * t * p - s_real[:, None] * t * flat).mean(0) + gamma * t**2 * u
    grad_v = (s_fake * t * p * u.sum() - s_real * t * (flat @ u)).mean() + gamma * t**2 * u.dot(u)
    grad_e = (s_fake - s_real).mean()

    grads, stats = step_gradients(step, model, x, torch.randn(2, 1, dtype=torch.float64), gamma)
    e_weights = grads[0:6:2]  # E's weights, input side first (each followed by its bias)
    torch.testing.assert_close(stats["loss_d"], (nnf.softplus(f) + nnf.softplus(-r)).mean(), rtol=1e-12, atol=0)
    torch.testing.assert_close(stats["r1"], t**2 * u.dot(u), rtol=1e-12, atol=0)
    torch.testing.assert_close(e_weights[0], grad_u[None] * e0.weight_scale, rtol=1e-10, atol=0)
    for got, layer in zip(e_weights[1:], (e1, e2)):
        torch.testing.assert_close(got, grad_v.view(1, 1) * layer.weight_scale, rtol=1e-10, atol=0)
    d_weight, d_bias = grads[-2:]
    torch.testing.assert_close(d_weight, grad_t.view(1, 1) * d0.weight_scale, rtol=1e-10, atol=0)
    torch.testing.assert_close(d_bias, (grad_e * d0.lrmul).view(1), rtol=1e-10, atol=0)
