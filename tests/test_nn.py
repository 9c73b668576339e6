"""Equalized learning rate (nn.EqualLinear): output scale at init, lr multiplier on update size."""

import math

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
