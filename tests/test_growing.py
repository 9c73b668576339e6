"""StyleALAE's progressive growing and truncation, checked against values computed by hand:
the sine fade away from its midpoint, real images blended while a level fades in, Adam's
fresh state at each level, E's w as the sum of every layer's mapped style (eq. 9), and the
truncation trick at a psi other than 0 and 1."""

import math

import pytest
import torch

from alae import schedule
from alae.model import ALAE
from alae.nn import EqualLinear
from alae.training import Trainer
from tests.helpers import tiny_style

LEVEL = 64  # images per level in tiny_style
FADE = 32   # images of fade-in at the start of each level after the first


@pytest.mark.parametrize("into, blend", [(0, 0.0), (8, 0.5 - 0.5 * math.cos(math.pi / 4)), (16, 0.5),
                                         (24, 0.5 + 0.5 * math.cos(math.pi / 4)), (32, 1.0), (40, 1.0)])
def test_fade_in_follows_the_sine_ease_at_every_point(into, blend):
    """blend = (1 - cos(pi t)) / 2 with t the fraction of the fade done: 0.1464 a quarter of the way
    (a linear fade gives 0.25 there), 0.5 halfway, 1 after the fade."""
    phase = schedule.phase(tiny_style(), LEVEL + into)
    assert phase.level == 1 and phase.blend == pytest.approx(blend, abs=1e-12)


def test_real_images_are_blended_with_their_coarser_copy_while_a_level_fades_in(tmp_path):
    """A quarter into level 1's fade (blend b = 0.1464), step 1 gets each real image at 8x8 as
    b * x8 + (1 - b) * x4, with x8 and x4 the stored 32x32 image averaged over 4x4 and 8x8 blocks
    and x4 repeated over 2x2 blocks (in the style networks' pixel units, 2 v - 1)."""
    trainer = Trainer(tiny_style(), tmp_path)
    trainer.images_seen = LEVEL + FADE // 4
    seen = []
    step_1 = trainer.d_step
    trainer.d_step = lambda model, opt, x, *args: seen.append(x) or step_1(model, opt, x, *args)
    trainer.step()
    (x,) = seen
    raw = trainer.stream._take(trainer.images_seen - 8, 8).double()  # the step's 8 stream positions
    x8 = raw.reshape(8, 1, 8, 4, 8, 4).mean((3, 5))
    x4 = raw.reshape(8, 1, 4, 8, 4, 8).mean((3, 5)).repeat_interleave(2, 2).repeat_interleave(2, 3)
    b = 0.5 - 0.5 * math.cos(math.pi / 4)
    assert trainer.blend == pytest.approx(b)
    torch.testing.assert_close(x.double(), 2 * (b * x8 + (1 - b) * x4) - 1, rtol=0, atol=1e-6)
    assert not torch.allclose(x.double(), 2 * x8 - 1, atol=1e-3)


def test_adam_starts_afresh_at_each_level_with_that_levels_learning_rate(tmp_path):
    """After 8 iterations at 4x4 every Adam state has counted 8 updates or more (E and G get two
    per iteration, in steps 1 and 3, or 2 and 3); after one more, the first at 8x8, none counts
    more than 2, and the optimizers hold level 1's learning rate."""
    trainer = Trainer(tiny_style("train.level_lr=[0.0015, 0.001]"), tmp_path)
    for _ in range(8):
        trainer.step()
    counts = [int(s["step"]) for opt in trainer.optimizers.values() for s in opt.state.values()]
    assert trainer.level == 0 and counts and min(counts) >= 8
    before = {id(opt) for opt in trainer.optimizers.values()}
    trainer.step()
    assert trainer.level == 1 and trainer.images_seen == LEVEL + 8
    for opt in trainer.optimizers.values():
        assert id(opt) not in before
        assert [g["lr"] for g in opt.param_groups] == [0.001]
        assert opt.state and all(1 <= int(s["step"]) <= 2 for s in opt.state.values())
    trained = {id(p) for opt in trainer.optimizers.values() for group in opt.param_groups for p in group["params"]}
    assert trained == {id(p) for p in trainer.model.parameters()}


@pytest.mark.parametrize("level, blend", [(3, 1.0), (2, 0.25)])
def test_E_sums_the_mapped_styles_of_every_layer_into_w(level, blend):
    """Eq. 9: w = sum over E's layers of A_i(s_i), the learned linear maps of each layer's style;
    while a level fades in, its block's terms are weighted by blend. Every A_i's output is
    recorded as E runs, and w must be their (weighted) sum."""
    torch.manual_seed(0)
    model = ALAE(tiny_style().model)
    for p in model.E.parameters():  # biases away from zero, so that every term counts
        p.data.add_(0.1 * torch.randn_like(p))
    model.grow(level, blend)
    terms = []
    hooks = [(name, module.register_forward_hook(lambda m, i, out, name=name: terms.append((name, out))))
             for name, module in model.E.named_modules() if isinstance(module, EqualLinear)]
    size = 4 * 2**level
    with torch.no_grad():
        w = model.E(torch.rand(3, 1, size, size))
    for _, hook in hooks:
        hook.remove()
    used = {f"blocks.{i}" for i in range(level + 1)}
    assert {name.rsplit(".", 1)[0] for name, _ in terms} == used  # two maps per block in use
    assert len(terms) == 2 * (level + 1)
    top = f"blocks.{level}."
    expected = sum(out * (blend if name.startswith(top) else 1.0) for name, out in terms)
    torch.testing.assert_close(w, expected, rtol=1e-5, atol=1e-6)


def test_truncation_moves_the_first_styles_toward_the_average_w_by_psi():
    """psi = 0.7: the first truncation_cutoff style inputs become w_avg + 0.7 (w - w_avg), the rest
    stay w; generate(seed, truncation) is G of exactly those styles (z and G's noise from the seed)."""
    torch.manual_seed(0)
    model = ALAE(tiny_style("model.truncation_cutoff=3").model).eval()
    model.w_avg.normal_()
    psi, cut = 0.7, 3
    w = torch.randn(4, 8)
    ws = model.truncate(w, psi)
    assert ws.shape == (4, model.G.num_styles, 8)
    for i in range(model.G.num_styles):
        expected = model.w_avg + psi * (w - model.w_avg) if i < cut else w
        torch.testing.assert_close(ws[:, i], expected, rtol=0, atol=1e-6)

    torch.manual_seed(5)
    with torch.no_grad():
        z = torch.randn(4, 8)
        by_hand = model.decode(model.truncate(model.F(z), psi))
    assert torch.equal(model.generate(4, seed=5, truncation=psi), by_hand)
    assert not torch.allclose(model.generate(4, seed=5), by_hand, atol=1e-4)
