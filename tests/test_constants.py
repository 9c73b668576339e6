"""The training constants the paper or the authors' code fixes, pinned by what they do, so that a
change to any of them turns a test red: the EMA half-life (10 kimg), the average w's rate (0.995
per step), style mixing (probability 0.9, in steps 1 and 2 only), the fade of a new level (a sine ease of a linear blend),
R1 (gamma 10, weighted gamma / 2, on real images in the networks' units), the learning-rate
multipliers of F and D (0.1), Adam's betas (0, 0.99; the beta-VAE baseline: disentanglement_lib's 0.9, 0.999),
the layer gains, truncation (psi 0.7 on the first 8 style inputs) and Table 2's classifiers. Values: the
authors' code (defaults.py, model.py, net.py, train_alae.py, lreq.py) and the paper's sections 5 and 7."""

import math

import numpy as np
import pytest
import torch

from alae import config, draws, nn, schedule
from alae.metrics import table2
from alae.model import ALAE
from alae.nets import style
from alae.training import Trainer
from tests.helpers import TINY_STYLE

PRESETS = config.presets()


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_keeps_the_reference_settings(preset):
    cfg = config.load(preset)
    m, t = cfg.model, cfg.train
    assert (t.ema_kimg, m.w_avg_beta, m.style_mixing_prob) == (10.0, 0.995, 0.9)
    if m.kind == "vae":   # the field's reference model trains with the field's Adam (disentanglement_lib)
        assert (t.beta1, t.beta2, t.batch_size) == (0.9, 0.999, 64)
    else:
        assert (t.r1_gamma, t.beta1, t.beta2) == (10.0, 0.0, 0.99)
    assert (m.f_lrmul, m.d_lrmul) == (0.1, 0.1)
    assert (m.truncation_psi, m.truncation_cutoff) == (0.7, 8)


def test_the_ema_halves_its_distance_to_the_trained_weights_every_10_kimg(tiny_cfg, tmp_path):
    trainer = Trainer(tiny_cfg(), tmp_path)
    with torch.no_grad():
        for p, e in zip(trainer.model_params, trainer.ema_params):
            p.fill_(1.0)
            e.fill_(0.0)
    trainer.update_ema(10_000)
    assert all(torch.allclose(e, torch.full_like(e, 0.5)) for e in trainer.ema_params)


def tiny_style_model() -> ALAE:
    torch.manual_seed(0)
    return ALAE(config.load("mnist-style", TINY_STYLE).model)


def test_the_average_w_moves_a_two_hundredth_of_the_way_to_each_batch_mean():
    model = tiny_style_model()
    z = torch.randn(6, model.cfg.latent_size)
    with torch.no_grad():
        w = model.styles(z)
    torch.testing.assert_close(model.w_avg, 0.005 * w.mean(0))


class CountMixing(draws.Draws):
    """Records the probability each style-mixing draw is asked with, and never mixes."""

    def __init__(self):
        self.asked = []

    def mixes(self, prob: float) -> bool:
        self.asked.append(prob)
        return False


def test_steps_1_and_2_mix_styles_with_probability_0_9_and_step_3_does_not(tmp_path):
    trainer = Trainer(config.load("mnist-style", TINY_STYLE), tmp_path,
                      data=(np.zeros((8, 1, 32, 32), dtype=np.uint8), np.arange(8)))
    with draws.using(CountMixing()) as counting:
        trainer.step()
    assert counting.asked == [0.9, 0.9]


def test_a_new_level_fades_in_by_a_sine_ease_of_a_linear_blend():
    x = torch.rand(2, 1, 8, 8)
    low = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x, 2), scale_factor=2)
    torch.testing.assert_close(nn.fade_in(x, 0.25), 0.75 * low + 0.25 * x)
    cfg = config.load("fashion-style-cpu")  # levels in kimg: level 1 starts at 50 kimg and fades over 25
    for into, blend in ((0, 0.0), (6_250, 0.5 - 0.5 * math.cos(math.pi / 4)), (12_500, 0.5), (25_000, 1.0)):
        now = schedule.phase(cfg, 50_000 + into)
        assert now.level == 1 and now.blend == pytest.approx(blend)


def test_r1_is_weighted_half_gamma_and_taken_on_images_in_the_networks_units():
    model = tiny_style_model()
    assert torch.equal(model.to_net(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([-1.0, 0.0, 1.0]))
    # the penalty of a D∘E whose logit is the sum of its input's pixels: ||1||^2 = pixels, weighted 10 / 2
    from alae.losses import r1_penalty
    x = torch.rand(3, 1, 4, 4, requires_grad=True)
    assert torch.equal(r1_penalty(x.sum((1, 2, 3)), x), torch.full((3,), 16.0))


def test_layer_gains_and_slopes():
    assert nn.LRELU_SLOPE == 0.2 and nn.HE_GAIN == math.sqrt(2)
    model = tiny_style_model()
    to_rgb = model.G.to_rgb[-1]
    assert to_rgb.weight_scale == pytest.approx(0.03 / math.sqrt(to_rgb.weight.shape[1]))
    assert style.TO_RGB_GAIN == 0.03
    for block in model.G.blocks:  # G's style maps: gain 1
        for layer in block.style:
            assert layer.weight_scale == pytest.approx(1 / math.sqrt(layer.in_features))
    for net in (model.F, model.D):  # F and D: He gain, learning-rate multiplier 0.1
        for layer in (m for m in net.modules() if isinstance(m, nn.EqualLinear)):
            assert layer.lrmul == 0.1
            assert layer.weight_scale == pytest.approx(0.1 * math.sqrt(2) / math.sqrt(layer.in_features))


def test_table_2_classifiers():
    assert (table2.SVM_C, table2.SVM_MAX_ITER, table2.SVM_DUAL) == (0.02, 5000, True)
