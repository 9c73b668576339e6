"""The training loop: it learns, it logs, a resumed run equals an uninterrupted one, and a
non-finite loss stops training at that step."""

import json

import numpy as np
import pytest
import torch

from alae import checkpoint
from alae.data.stream import DataStream
from alae.errors import UserError
from alae.run import Run
from alae.training import Trainer, train
from tests.helpers import TINY_STYLE, assert_one_line_error, assert_same_state, read_stats, run_cli, tiny_args


def test_short_training_lowers_latent_error_with_finite_losses(tiny_cfg, tmp_path):
    cfg = tiny_cfg("mnist-mlp", "train.kimg=1.6", "train.log_kimg=0.32")
    train(cfg, tmp_path / "run", progress=False)
    rows = read_stats(tmp_path / "run")
    assert len(rows) == 5
    for row in rows:
        assert all(torch.isfinite(torch.tensor(row[k])) for k in ("loss_d", "loss_g", "loss_ae", "r1"))
    assert rows[-1]["loss_ae"] < 0.5 * rows[0]["loss_ae"]


def test_pixel_autoencoder_lowers_reconstruction_error(tiny_cfg, tmp_path):
    cfg = tiny_cfg("mnist-ae-l2", "train.kimg=1.6", "train.log_kimg=0.32")
    train(cfg, tmp_path / "run", progress=False)
    rows = read_stats(tmp_path / "run")
    assert rows[-1]["loss_pixel"] < 0.7 * rows[0]["loss_pixel"]


@pytest.mark.parametrize("preset", ["mnist-mlp", "mnist-ae-l1"])
def test_resume_equals_uninterrupted_run(tiny_cfg, tmp_path, preset):
    # 0.64 kimg at batch 16 is 40 steps; 0.32 kimg is 20
    straight = train(tiny_cfg(preset, "train.kimg=0.64"), tmp_path / "straight", progress=False)
    train(tiny_cfg(preset, "train.kimg=0.32"), tmp_path / "split", progress=False)
    resumed = train(tiny_cfg(preset, "train.kimg=0.64"), tmp_path / "split", resume=True, progress=False)
    assert resumed.images_seen == straight.images_seen == 640
    assert_same_state(straight, resumed)
    # the log of the resumed run has one line per interval, none repeated
    assert [r["kimg"] for r in read_stats(tmp_path / "split")] == [r["kimg"] for r in read_stats(tmp_path / "straight")]


def test_logged_throughput_adds_up_the_intervals_of_the_whole_log(tmp_path):
    # 0.5 kimg at 100 images/s (5 s), 0.5 more at 50 (10 s) on level 0; 0.3 on level 1 at 30 (10 s);
    # a line torn by a killed process counts for nothing
    rows = [{"kimg": 0.5, "img_per_s": 100.0}, {"kimg": 1.0, "img_per_s": 50.0},
            {"kimg": 1.3, "img_per_s": 30.0, "level": 1}]
    Run(tmp_path).stats_path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"kimg": 1.4, "img_')
    rates, seconds = Run(tmp_path).throughput()
    assert seconds == pytest.approx(25.0)
    assert rates == pytest.approx({0: 1000 / 15, 1: 30.0})


def test_existing_run_is_never_overwritten_without_force(tiny_cfg, tmp_path):
    cfg = tiny_cfg("mnist-mlp", "train.kimg=0.032")
    train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(UserError, match="--resume .* --force"):
        train(cfg, tmp_path / "run", progress=False)
    train(cfg, tmp_path / "run", force=True, progress=False)


def test_resume_refuses_a_different_architecture(tiny_cfg, tmp_path):
    train(tiny_cfg("mnist-mlp", "train.kimg=0.032"), tmp_path / "run", progress=False)
    with pytest.raises(UserError, match="model.latent_size"):
        train(tiny_cfg("mnist-mlp", "train.kimg=0.064", "model.latent_size=4"), tmp_path / "run",
              resume=True, progress=False)


def test_resume_from_a_checkpoint_that_predates_a_model_key(tiny_cfg, tmp_path):
    # a key added later (with the default that keeps the old behaviour) is absent from older checkpoints
    run = tmp_path / "run"
    train(tiny_cfg("mnist-mlp", "train.kimg=0.032", "model.g_out_slope=1"), run, progress=False)
    path = Run(run).latest_checkpoint()
    tensors, meta = checkpoint.load(path)
    del meta["config"]["model"]["g_out_slope"]
    path.unlink()
    checkpoint.save(Run(run).checkpoint_dir, meta["images_seen"], tensors, meta, 3)
    resumed = train(tiny_cfg("mnist-mlp", "train.kimg=0.064", "model.g_out_slope=1"), run, resume=True, progress=False)
    assert resumed.images_seen == 64
    with pytest.raises(UserError, match=r"model.g_out_slope \(checkpoint 1.0, now 0.0\)"):
        train(tiny_cfg("mnist-mlp", "train.kimg=0.096", "model.g_out_slope=0"), run, resume=True, progress=False)


def test_data_stream_is_a_permutation_per_epoch_and_deterministic():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).numpy()
    stream = DataStream(images, np.arange(10), seed=3, device=torch.device("cpu"))
    seen = torch.cat([stream.batch(p, 4) for p in (0, 4, 8, 12, 16)])[:, 0, 0, 0] * 255
    assert sorted(seen[:10].round().long().tolist()) == list(range(10))
    assert sorted(seen[10:20].round().long().tolist()) == list(range(10))
    assert not torch.equal(seen[:10], seen[10:20])
    again = DataStream(images, np.arange(10), seed=3, device=torch.device("cpu")).batch(6, 8)
    assert torch.equal(again, torch.cat([stream.batch(6, 4), stream.batch(10, 4)]))


def test_trainer_checkpoint_roundtrip_loads_ema_model(tiny_cfg, tmp_path):
    import alae
    trainer = train(tiny_cfg("mnist-mlp", "train.kimg=0.064"), tmp_path / "run", progress=False)
    model = alae.load(tmp_path / "run")
    for k, v in trainer.ema.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    x = torch.rand(5, 1, 28, 28)
    w = model.encode(x)
    assert w.shape == (5, 8)
    assert model.decode(w).shape == (5, 1, 28, 28)
    assert torch.equal(model.generate(3, seed=1), model.generate(3, seed=1))
    assert not torch.equal(model.generate(3, seed=1), model.generate(3, seed=2))


def test_data_stream_reads_only_the_given_rows():
    images = np.arange(8, dtype=np.uint8).reshape(8, 1, 1, 1)
    stream = DataStream(images, np.array([1, 4, 6]), seed=0, device=torch.device("cpu"))
    seen = (stream.batch(0, 9)[:, 0, 0, 0] * 255).round().long().tolist()
    assert sorted(seen) == [1, 1, 1, 4, 4, 4, 6, 6, 6]


@pytest.mark.parametrize("preset", ["mnist-mlp", "mnist-style"])
def test_bf16_runs_the_networks_in_bf16_and_keeps_losses_fp32(tiny_cfg, tmp_path, preset, monkeypatch):
    """--precision bf16: the networks' outputs are bf16 under autocast, the losses fp32 and finite,
    and the stored weights stay fp32."""
    from alae.nets import mlp

    cfg = tiny_cfg(preset, "train.precision=bf16", *(TINY_STYLE if preset == "mnist-style" else []))
    dtypes = []
    forward = mlp.DiscriminatorD.forward
    monkeypatch.setattr(mlp.DiscriminatorD, "forward", lambda self, w: dtypes.append(out := forward(self, w)) or out)
    trainer = Trainer(cfg, tmp_path)
    for _ in range(3):
        stats = trainer.step()
    assert {out.dtype for out in dtypes} == {torch.bfloat16}
    losses = [v for k, v in stats.items() if k.startswith("loss") or k == "r1"]
    assert len(losses) == 4 and all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_lr_rampdown_follows_the_sine_ease_over_the_last_fraction_and_reaches_the_optimizers(tiny_cfg, tmp_path):
    from alae import config, schedule
    cfg = config.load("mnist-mlp", ["train.kimg=100", "train.lr=0.002", "train.lr_rampdown=0.25"])
    lrs = [schedule.phase(cfg, n).lr for n in (0, 75_000, 87_500, 93_750, 100_000)]
    # three quarters into the ramp: (1 + cos(3 pi / 4)) / 2 = (1 - sqrt(1/2)) / 2
    assert lrs == pytest.approx([0.002, 0.002, 0.001, 0.002 * (1 - np.sqrt(0.5)) / 2, 0.0])
    trainer = Trainer(tiny_cfg("mnist-mlp", "train.kimg=0.64", "train.lr_rampdown=0.5"), tmp_path / "run")
    for _ in range(30):  # batch 16: 480 of 640 images, half way into the ramp
        trainer.step()
    expected = schedule.phase(trainer.cfg, trainer.images_seen - 16).lr
    assert 0 < expected < trainer.cfg.train.lr
    assert {g["lr"] for opt in trainer.optimizers.values() for g in opt.param_groups} == {expected}


def test_lr_rampdown_outside_zero_to_one_is_refused():
    from alae import config
    with pytest.raises(UserError, match="train.lr_rampdown: a fraction of training"):
        config.load("mnist-mlp", ["train.lr_rampdown=1.5"])


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_at_that_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys, bad):
    batch = DataStream.batch

    def poisoned(self, start, size, *args):
        x = batch(self, start, size, *args)
        return x * bad if start == 320 else x  # the 21st step's images

    monkeypatch.setattr(DataStream, "batch", poisoned)
    out = tmp_path / "run"
    code, err = run_cli(capsys, "train", out, "--kimg", "1", "--quiet", *tiny_args())
    assert_one_line_error(code, err, "training diverged at step 21 (336 images): loss_d is nan",
                          "ckpt-000000000256.safetensors")
    assert Run(out).latest_checkpoint().name == "ckpt-000000000256.safetensors"
    assert len(Run(out).checkpoints()) == 1
    assert all(torch.isfinite(t.float()).all() for t in checkpoint.load(Run(out).latest_checkpoint())[0].values())
    assert max(r["kimg"] for r in read_stats(out)) <= 0.32


def test_lazy_r1_takes_the_penalty_in_every_kth_iteration_weighted_by_k(tiny_cfg, tmp_path):
    trainer = Trainer(tiny_cfg("mnist-mlp", "train.r1_every=3"), tmp_path)
    weights = []
    for _ in range(6):
        weights.append(trainer.r1_weight())
        assert ("r1" in trainer.step()) == (weights[-1] > 0)
    assert weights == [30.0, 0.0, 0.0, 30.0, 0.0, 0.0]
    run = tmp_path / "run"
    train(tiny_cfg("mnist-mlp", "train.r1_every=3", "train.kimg=0.128", "train.log_kimg=0.016"), run, progress=False)
    logged = Run(run).stats()
    assert 0 < sum("r1" in r for r in logged) < len(logged)  # intervals without an R1 iteration log none
