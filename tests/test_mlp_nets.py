"""The MLP networks' options (section 7.1 and the reference code's variants): output slopes and F as the identity."""

import pytest
import torch
import torch.nn.functional as nnf

from alae.errors import UserError
from alae.model import ALAE
from alae.training import Trainer


def test_g_output_slope_zero_is_a_relu_and_one_is_linear(tiny_cfg):
    torch.manual_seed(0)
    linear, relu = (ALAE(tiny_cfg("mnist-mlp", f"model.g_out_slope={s}").model) for s in (1, 0))
    relu.load_state_dict(linear.state_dict())
    w = torch.randn(64, linear.cfg.latent_size)
    out = linear.G(w)
    assert (out < 0).any()
    assert torch.equal(relu.G(w), nnf.relu(out))


def test_f_with_no_layers_is_the_identity(tiny_cfg, tmp_path):
    trainer = Trainer(tiny_cfg("mnist-mlp", "model.f_layers=0", "train.kimg=0.032"), tmp_path / "run")
    z = torch.randn(5, trainer.cfg.model.latent_size)
    assert torch.equal(trainer.model.F(z), z) and not list(trainer.model.F.parameters())
    trainer.step()  # trains: the F+G optimizer holds G's parameters alone


@pytest.mark.parametrize("override, message", [
    ("model.g_out_slope=1.5", "model.g_out_slope: a leaky ReLU slope must lie in"),
    ("model.e_out_slope=-0.1", "model.e_out_slope: a leaky ReLU slope must lie in"),
    ("model.f_layers=-1", "model.f_layers: must be positive"),
])
def test_bad_mlp_options_are_refused(tiny_cfg, override, message):
    with pytest.raises(UserError, match=message):
        tiny_cfg("mnist-mlp", override)


def test_options_the_other_kinds_cannot_have_are_refused(tiny_cfg):
    with pytest.raises(UserError, match="a VAE's G gives pixel logits"):
        tiny_cfg("shapes-vae", "model.g_out_slope=0")
    with pytest.raises(UserError, match="a VAE's E gives a mean and a log-variance"):
        tiny_cfg("shapes-vae", "model.e_out_slope=0.2")
    with pytest.raises(UserError, match="model.f_layers"):
        tiny_cfg("fashion-style-cpu", "model.f_layers=0")
