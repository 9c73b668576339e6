"""Equalized learning rate (nn.EqualLinear): output scale at init, lr multiplier on update size,
its output and gradients against the plain formula to second order; the norms of nn.py."""

import math

import pytest
import torch

from alae.nn import EqualLinear, pixel_norm


def test_output_scale_at_init_is_he_gain():
    torch.manual_seed(0)
    layer = EqualLinear(1024, 1024)
    y = layer(torch.randn(512, 1024))
    # unit-variance input, N(0, 1) weights scaled by sqrt(2 / fan_in): output variance 2
    assert abs(y.var().item() - 2.0) < 0.05
    assert layer.bias.abs().max() == 0


def effective_weight(layer):
    return (layer.weight * layer.weight_scale).detach().clone()


def test_lr_multiplier_scales_the_adam_update_of_the_effective_weight():
    torch.manual_seed(0)
    x, target = torch.randn(64, 16), torch.randn(64, 4)
    changes = {}
    for lrmul in (1.0, 0.1):
        layer = EqualLinear(16, 4, lrmul=lrmul)
        with torch.no_grad():  # same effective weights for both layers
            layer.weight.copy_(torch.ones(4, 16) / (layer.weight_scale * 4))
        before = effective_weight(layer)
        opt = torch.optim.Adam(layer.parameters(), lr=0.01, betas=(0.0, 0.99))
        (layer(x) - target).pow(2).mean().backward()
        opt.step()
        changes[lrmul] = (effective_weight(layer) - before).abs()
    # first Adam step moves each stored weight by lr; the effective move is lr * lrmul * sqrt(2/fan_in)
    assert torch.allclose(changes[1.0], torch.full_like(changes[1.0], 0.01 * math.sqrt(2 / 16)), rtol=1e-3)
    assert torch.allclose(changes[0.1], 0.1 * changes[1.0], rtol=1e-3)


def test_pixel_norm_gives_unit_rms():
    x = pixel_norm(torch.randn(10, 50) * 7)
    assert torch.allclose(x.pow(2).mean(1), torch.ones(10), atol=1e-5)


def test_instance_norm_style_returns_the_removed_mean_and_std():
    from alae.nn import adain, instance_norm_style
    x = torch.randn(2, 3, 5, 5) * 4 + 1
    y, style = instance_norm_style(x)
    assert torch.allclose(y.mean(dim=(2, 3)), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(y.std(dim=(2, 3), correction=0), torch.ones(2, 3), atol=1e-4)
    mean, std = style.view(2, 2, 3).unbind(1)
    assert torch.allclose(mean, x.mean(dim=(2, 3)), atol=1e-5)
    # AdaIN with (scale, shift) = (std - 1, mean) puts the statistics back
    assert torch.allclose(adain(y, torch.cat([std - 1, mean], 1)), x, atol=1e-4)


def test_instance_norm_style_adds_eps_to_the_variance_of_the_map_only():
    """As the reference's E: the map is divided by sqrt(var + 1e-5), the style's std is sqrt(var)."""
    from alae.nn import instance_norm_style
    x = torch.randn(1, 1, 4, 4, dtype=torch.double) * 1e-3
    var = x.var(correction=0)
    y, style = instance_norm_style(x)
    assert torch.allclose(y, (x - x.mean()) / (var + 1e-5).sqrt(), rtol=1e-12, atol=0)
    assert style[0, 1].item() == pytest.approx(var.sqrt().item(), rel=1e-4)



def plain_equal_linear(layer, x):
    """The layer's formula with the scale on the weight."""
    return x @ (layer.weight * layer.weight_scale).t() + layer.bias * layer.lrmul


@pytest.mark.parametrize("batch", [3, 40])  # fewer values in x than in W (x scaled), and more (W scaled)
def test_equal_linear_matches_the_plain_formula_to_second_order(batch):
    torch.manual_seed(0)
    layer = EqualLinear(6, 5, lrmul=0.1).double()
    with torch.no_grad():
        layer.bias.normal_()
    params = list(layer.parameters())
    results = []
    for forward in (layer, lambda x: plain_equal_linear(layer, x)):
        x = torch.randn(batch, 6, dtype=torch.double, generator=torch.Generator().manual_seed(1), requires_grad=True)
        y = forward(x)
        # R1's pattern: gradient w.r.t. the input with a graph, then backward of its norm into the parameters
        (grad_x,) = torch.autograd.grad(torch.tanh(y).sum(), x, create_graph=True)
        first = torch.autograd.grad(y.pow(2).sum(), params, retain_graph=True)
        second = torch.autograd.grad(grad_x.pow(2).sum(), params)
        results.append([y, grad_x, *first, *second])
    for ours, plain in zip(*results):
        assert torch.allclose(ours, plain, rtol=1e-10, atol=1e-12)


def test_fused_up_and_down_convolutions_equal_resample_then_convolve():
    """EqualConv2d.up = conv(upsample(x)), .down = downsample(conv(x)), borders included."""
    from alae.nn import EqualConv2d, downsample, upsample
    torch.manual_seed(0)
    conv = EqualConv2d(3, 5, 3).double()
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 3, 6, 6, dtype=torch.double)
    assert torch.allclose(conv.up(x), conv(upsample(x)), rtol=0, atol=1e-12)
    assert torch.allclose(conv.down(x), downsample(conv(x)), rtol=0, atol=1e-12)
    # and their gradients w.r.t. the stored weight
    for fused, plain in ((conv.up, lambda v: conv(upsample(v))), (conv.down, lambda v: downsample(conv(v)))):
        grads = [torch.autograd.grad(f(x).pow(2).sum(), conv.weight)[0] for f in (fused, plain)]
        assert torch.allclose(*grads, rtol=1e-10, atol=1e-12)
