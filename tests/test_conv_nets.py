"""The convolutional E and G (disentanglement_lib's): their layers, He scaling, sizes, and the
three kinds (ALAE, pixel AE, beta-VAE) training and loading with them."""

import pytest
import torch

from alae import config, losses, training
from alae.errors import UserError
from alae.model import ALAE, load
from alae.nets import conv
from tests.helpers import TINY, train_tiny


def conv_model(kind: str, *extra: str) -> ALAE:
    torch.manual_seed(0)
    return ALAE(config.load(f"shapes-{kind}", TINY + ["model.net=conv", "data.dataset=x", *extra]).model)


def test_layers_are_disentanglement_libs_at_64_and_halve_to_2x2_at_32():
    model = conv_model("ae", "model.resolution=64", "model.hidden=256", "model.latent_size=10")
    assert [tuple(c.weight.shape) for c in model.E.convs] == [(32, 1, 4, 4), (32, 32, 4, 4), (64, 32, 4, 4), (64, 64, 4, 4)]
    assert [tuple(layer.weight.shape) for layer in model.E.mlp.layers] == [(256, 64 * 4 * 4), (10, 256)]
    assert [tuple(layer.weight.shape) for layer in model.G.mlp.layers] == [(256, 10), (64 * 4 * 4, 256)]
    # transposed convolutions store [in, out, 4, 4]
    assert [tuple(c.weight.shape) for c in model.G.convs] == [(64, 64, 4, 4), (64, 32, 4, 4), (32, 32, 4, 4), (32, 1, 4, 4)]
    small = conv_model("ae", "model.hidden=256", "model.latent_size=10")
    assert small.E.mlp.layers[0].weight.shape == (256, 64 * 2 * 2)
    x = torch.rand(3, 1, 32, 32)
    assert small.E(x).shape == (3, 10) and small.G(small.E(x)).shape == (3, 1, 32, 32)
    rgb = conv_model("ae", "model.resolution=48", "model.channels=3")
    assert rgb.G(rgb.E(torch.rand(2, 3, 48, 48))).shape == (2, 3, 48, 48)


@pytest.mark.parametrize("transposed", [False, True])
def test_he_scaling_keeps_unit_inputs_at_variance_two(transposed):
    """He scaling (gain sqrt 2): outputs of unit-variance inputs have variance 2 at initialisation,
    for the transposed convolution too, whose fan-in is 4 taps per input map, not 16."""
    torch.manual_seed(0)
    layer = conv.EqualConv(256, 256, transposed)
    x = torch.randn(8, 256, 8, 8)
    y = layer(x)
    assert y.shape[-1] == (16 if transposed else 4)
    inner = y[..., 1:-1, 1:-1]  # away from the zero padding
    assert inner.var().item() == pytest.approx(2.0, rel=0.1)


def test_output_slopes_apply_and_a_vae_has_two_heads():
    vae = conv_model("vae")
    assert vae.E(torch.rand(4, 1, 32, 32)).shape == (4, 16)   # latent 8: mean and log-variance
    relu = conv_model("alae", "model.g_out_slope=0")
    assert relu.G(torch.randn(64, 8)).min() >= 0
    linear = conv_model("alae", "model.g_out_slope=1")
    assert linear.G(torch.randn(64, 8)).min() < 0


def test_sizes_and_images_the_conv_networks_cannot_take_are_refused():
    for side in (28, 8, 40):
        with pytest.raises(UserError, match=f"a multiple of 16 from 16 to 1024 for the conv net, got {side}"):
            config.load("shapes-ae", [f"model.resolution={side}", "model.net=conv"])
    with pytest.raises(UserError, match="the conv encoder takes 32x32 images with 1 channel"):
        conv_model("ae").E(torch.rand(2, 1, 16, 16))


def test_step_one_runs_by_autograd_for_the_conv_networks():
    assert training.d_step_for("conv") is losses.d_step


@pytest.mark.parametrize("kind", ["alae", "ae", "vae"])
def test_each_kind_trains_and_loads_with_the_conv_networks(kind, shapes_set, tmp_path):
    run = train_tiny(tmp_path / kind, f"shapes-{kind}", shapes_set, "model.net=conv")
    model = load(run)
    assert model.cfg.net == "conv" and isinstance(model.E, conv.EncoderE)
    x = torch.rand(3, 1, 32, 32)
    assert model.encode(x).shape == (3, 8) and model.reconstruct(x).shape == (3, 1, 32, 32)
