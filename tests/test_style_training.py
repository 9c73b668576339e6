"""StyleALAE in training: schedule, style mixing, truncation, learning, resume across levels."""

import json

import numpy as np
import pytest
import torch

from alae import config, schedule
from alae.losses import ae_step
from alae.model import ALAE
from alae.training import Trainer, train
from tests.helpers import tiny_style


def test_schedule_grows_level_by_level_with_a_sine_fade():
    cfg = tiny_style()
    assert cfg.model.levels == 4
    assert schedule.phase(cfg, 0) == schedule.Phase(0, 1.0, 8, 0.0015)
    assert schedule.phase(cfg, 64).level == 1 and schedule.phase(cfg, 64).blend == 0.0
    assert schedule.phase(cfg, 64 + 16).blend == pytest.approx(0.5)
    assert schedule.phase(cfg, 64 + 32).blend == 1.0
    assert schedule.phase(cfg, 3 * 64).batch_size == 4
    assert schedule.phase(cfg, 100 * 64).level == 3  # stays at the last level
    mlp = config.load("mnist-mlp")
    assert schedule.phase(mlp, 10**6) == schedule.Phase(0, 1.0, 128, 0.006)


def test_truncation_with_psi_one_is_the_identity_and_psi_zero_gives_the_average():
    torch.manual_seed(0)
    model = ALAE(tiny_style().model)
    model.w_avg.normal_()
    w = torch.randn(3, 8)
    ws = model.truncate(w, 1.0)
    assert torch.equal(ws, w[:, None].expand(-1, model.G.num_styles, -1))
    ws0 = model.truncate(w, 0.0)
    cut = model.cfg.truncation_cutoff
    assert torch.allclose(ws0[:, :cut], model.w_avg.expand(3, cut, 8))
    assert torch.equal(ws0[:, cut:], w[:, None].expand(-1, model.G.num_styles - cut, -1))


def test_every_style_step_moves_the_average_w_toward_its_batch_and_the_mlp_keeps_none(tiny_cfg, tmp_path):
    """As the reference's `generate`: each F(z) of a step (`ALAE.styles`, in all three steps) moves
    w_avg toward the batch's mean F(z) by 1 - w_avg_beta, mixing or not; the MLP, which has no
    truncation, skips that work and keeps w_avg at zero (tests/test_iteration_conformance.py
    checks the three moves of one iteration against the authors' code)."""
    style = Trainer(tiny_style("model.w_avg_beta=0.75"), tmp_path / "style")
    style.step()
    model = style.model
    for mix in (False, True):
        before = model.w_avg.clone()
        assert before.abs().sum() > 0
        z = torch.randn(16, 8)
        with torch.no_grad():
            model.styles(z, mix=mix)
            expected = 0.75 * before + 0.25 * model.F(z).mean(0)
        torch.testing.assert_close(model.w_avg, expected)
    mlp = Trainer(tiny_cfg(), tmp_path / "mlp")
    mlp.step()
    assert torch.equal(mlp.model.w_avg, torch.zeros_like(mlp.model.w_avg))


def test_style_mixing_switches_styles_exactly_at_the_crossover():
    torch.manual_seed(0)
    model = ALAE(tiny_style("model.style_mixing_prob=1.0").model)
    model.grow(3, 1.0)
    z = torch.randn(5, 8)
    w = model.F(z)
    crossovers = set()
    for seed in range(20):
        torch.manual_seed(seed)
        ws = model.styles(z, mix=True)
        # the crossover is drawn from 1 .. 2 * (level + 1); at the top it may leave every input to z
        k = next((i for i in range(ws.shape[1]) if not torch.equal(ws[:, i], w)), ws.shape[1])
        assert torch.equal(ws[:, :k], w[:, None].expand(-1, k, -1))
        assert all(torch.equal(ws[:, i], ws[:, k]) for i in range(k, ws.shape[1]))
        crossovers.add(k)
    assert len(crossovers) > 2 and min(crossovers) >= 1
    assert ALAE(tiny_style("model.style_mixing_prob=0.0").model).styles(z, mix=True).shape == (5, 8)


def test_style_networks_train_on_images_in_minus_one_to_one_and_the_mlp_on_zero_to_one(tiny_cfg, tmp_path):
    """The reference trains StyleALAE on [-1, 1] pixels (R1 with gamma 10 w.r.t. them) and the MLP on [0, 1]."""
    seen = {}
    for name, cfg in (("style", tiny_style()), ("mlp", tiny_cfg())):
        trainer = Trainer(cfg, tmp_path / name)

        def recording(m, opt, x, *rest, name=name, step=trainer.d_step):
            seen[name] = x
            return step(m, opt, x, *rest)

        trainer.d_step = recording
        trainer.step()
    # MNIST's background is black: -1 for the style networks, 0 for the MLP
    assert seen["style"].min() == -1 and seen["style"].max() <= 1
    assert seen["mlp"].min() == 0 and seen["mlp"].max() <= 1


def test_a_few_steps_keep_losses_finite_and_lower_the_latent_error(tmp_path):
    train(tiny_style("train.kimg=0.096", "train.level_kimg=1.0", "train.level_batch=[16]"), tmp_path / "run",
          progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor([r["loss_d"], r["loss_g"], r["loss_ae"]])).all() for r in rows)
    # a few iterations' latent error swings with their draws; step 3 repeated on one z must lower it
    torch.manual_seed(0)
    model = ALAE(tiny_style().model)
    model.grow(0, 1.0)
    opt_ED, opt_FG = (torch.optim.Adam(params, lr=0.0015, betas=(0.0, 0.99))
                      for params in ([*model.E.parameters(), *model.D.parameters()],
                                     [*model.F.parameters(), *model.G.parameters()]))
    z = torch.randn(16, 8)
    losses = [float(ae_step(model, opt_ED, opt_FG, z, trains_F=True)["loss_ae"]) for _ in range(20)]
    assert losses[-1] < 0.8 * losses[0]


def test_resume_across_a_level_change_equals_the_uninterrupted_run(tmp_path):
    # level 0 ends after 64 images (8 steps of 8); stop inside level 1's fade, resume into level 2
    straight = train(tiny_style("train.kimg=0.144"), tmp_path / "straight", progress=False)
    train(tiny_style("train.kimg=0.080"), tmp_path / "split", progress=False)
    resumed = train(tiny_style("train.kimg=0.144"), tmp_path / "split", resume=True, progress=False)
    assert straight.level == resumed.level == 2 and straight.steps == resumed.steps
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for (name, a), b in zip(straight.ema.state_dict().items(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b), name
    for key, opt in straight.optimizers.items():
        for pa, pb in zip(opt.state.values(), resumed.optimizers[key].state.values()):
            assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_loaded_style_model_encodes_decodes_and_generates(tmp_path):
    import alae
    train(tiny_style("train.kimg=0.032"), tmp_path / "run", progress=False)
    model = alae.load(tmp_path / "run")
    x = torch.rand(3, 1, 32, 32)
    w = model.encode(x)  # averaged down to the level the run reached
    assert w.shape == (3, 8) and model.resolution == 4
    assert model.decode(w).shape == (3, 1, 4, 4)
    assert torch.equal(model.generate(2, seed=0, truncation=0.7), model.generate(2, seed=0, truncation=0.7))


def test_mirror_flips_half_the_images_each_epoch_anew_and_resume_stays_exact(tmp_path):
    """data.mirror (the reference's FLIP_IMAGES): each image of an epoch is shown mirrored or not,
    half of them mirrored, picked again each epoch from the seed; without it nothing is flipped.
    A run with mirroring resumed across an epoch boundary equals the uninterrupted run."""
    from alae.data.stream import DataStream
    images = torch.arange(400, dtype=torch.uint8).view(100, 1, 2, 2).numpy()
    plain = DataStream(images, np.arange(100), seed=5, device=torch.device("cpu"))
    mirrored = DataStream(images, np.arange(100), seed=5, device=torch.device("cpu"), mirror=True)
    a, b = plain.batch(0, 300), mirrored.batch(0, 300)
    flipped = torch.tensor([not torch.equal(x, y) for x, y in zip(a, b)])
    assert all(torch.equal(x.flip(-1), y) for x, y, f in zip(a, b, flipped) if f)
    assert 35 <= int(flipped[:100].sum()) <= 65
    assert not torch.equal(flipped[:100], flipped[100:200])  # picked anew each epoch
    assert torch.equal(DataStream(images, np.arange(100), seed=5, device=torch.device("cpu"), mirror=True)
                       .batch(150, 20), b[150:170])
    # 10 training digits make an epoch of 10 images: the runs cross several epochs
    cfg = ["train.kimg=0.144", "data.mirror=true"]
    digits = (np.random.default_rng(0).integers(0, 256, (10, 1, 32, 32), dtype=np.uint8), np.arange(10))
    straight = Trainer(tiny_style(*cfg), tmp_path / "straight", data=digits)
    for _ in range(18):
        straight.step()
    first = Trainer(tiny_style(*cfg), tmp_path / "split", data=digits)
    for _ in range(7):
        first.step()
    resumed = Trainer(tiny_style(*cfg), tmp_path / "split", data=digits)
    resumed.restore(first.save())
    for _ in range(11):
        resumed.step()
    for (name, x), y in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(x, y), name
    unmirrored = Trainer(tiny_style("train.kimg=0.144"), tmp_path / "plain", data=digits)
    for _ in range(18):
        unmirrored.step()
    assert not torch.equal(unmirrored.model.E.blocks[0].conv_1.weight, straight.model.E.blocks[0].conv_1.weight)


def test_a_run_that_ends_below_the_top_level_says_so_in_one_line(tmp_path, capsys):
    train(tiny_style("train.kimg=0.032"), tmp_path / "short", progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["note: training ends after 0.032 kimg at level 0 (4x4); this schedule reaches 32x32 after "
                   "0.192 kimg: raise --kimg or shorten the levels (train.level_kimg, or train.level_epochs)"]
    train(tiny_style("train.kimg=0.2"), tmp_path / "full", progress=False)
    assert capsys.readouterr().err == ""
