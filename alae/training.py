"""The training loop: data stream, the steps of Algorithm 1, EMA, logs, checkpoints, exact resume.

Everything random is a pure function of `train.seed` and the position in training:
weights from `seed`; the data order of epoch k from (seed, k); every draw of a step
(z, noise inputs, style mixing) from (seed, images seen). The state of every random
number generator at a step is therefore fixed by (seed, images seen), which each
checkpoint holds (in its config and metadata), so no generator state needs storing and
a run resumed from a checkpoint equals the uninterrupted run, parameter for parameter.

Launched by torchrun, K processes train data-parallel: each takes its shard of every
global batch (stream positions, z and noise rows, see `dist`), gradients are averaged
before every optimizer step, and only rank 0 writes files. The result equals a
one-process run with the same global batch up to float rounding, and the run can be
resumed with any number of processes.

A run survives being killed at any moment: its directory appears whole (config.yaml
included), checkpoints and the config are written atomically, a torn last line of the
log is dropped on resume, and `--resume` of a run killed before its first checkpoint
starts it from the beginning. SIGINT and SIGTERM end the current step, write a
checkpoint and raise `Stopped`; a non-finite loss stops training at that step.
"""

from __future__ import annotations

import copy
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import checkpoint, dist, draws, schedule
from . import config as config_mod
from .config import Config
from .data import source
from .data.stream import DataStream
from .device import autocast_for, keep_freed_memory, resolve_device
from .errors import UserError
from .losses import ae_step, d_step, g_step, pixel_step, vae_step
from .mlp_step import d_step_mlp
from .model import ALAE
from .run import Run


def d_step_for(net: str) -> Callable[..., dict[str, torch.Tensor]]:
    """Step 1 for networks of kind `net`: by its closed-form gradients where D∘E is an MLP
    (the same update with fewer products), by autograd otherwise."""
    return d_step_mlp if net == "mlp" else d_step


def seed_step(seed: int, device: torch.device) -> None:
    """torch.manual_seed, without the stack it captures for each uninitialised CUDA, XPU and
    MTIA backend on a CPU run (once per step)."""
    if device.type == "cpu":
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)


class Stopped(Exception):
    """Training stopped by SIGINT or SIGTERM after writing a checkpoint; `signum` is the signal."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


class Trainer:
    """Holds the model, its EMA copy, the optimizers and the data stream; runs the schedule."""

    def __init__(self, cfg: Config, run: Run | Path, data: tuple[np.ndarray, np.ndarray] | None = None):
        """`data`: uint8 images [M, C, R, R] and the rows to train on, instead of cfg.data's dataset."""
        self.cfg, self.run = cfg, run if isinstance(run, Run) else Run(run)
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.rank, self.world = dist.world()
        self.device = dist.device_for_rank(resolve_device(t.device, "config key train.device"))
        if self.device.type == "cpu":
            keep_freed_memory()
        self.autocast = autocast_for(t.precision, self.device)
        self.d_step = d_step_for(cfg.model.net)
        torch.manual_seed(t.seed)
        self.model = ALAE(cfg.model).to(self.device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.ema_params, self.model_params = list(self.ema.parameters()), list(self.model.parameters())
        self.ema_buffers, self.model_buffers = list(self.ema.buffers()), list(self.model.buffers())
        self.stream = DataStream(*(data or source.images(cfg)[:2]), t.seed, self.device, cfg.data.mirror)
        self.images_seen = self.steps = 0
        start = schedule.phase(cfg, 0, len(self.stream))
        self.level, self.blend = start.level, start.blend
        self.optimizers = self.build_optimizers(start.lr)

    def build_optimizers(self, lr: float) -> dict[str, torch.optim.Optimizer]:
        """Adam for E+D and F+G (ALAE) or E+G (pixel AE, VAE); fresh state, as at the start of every level.

        The fused implementation (one kernel over all parameters; the same update up to
        rounding) is faster than the per-tensor loop (bench/results.md, bench/throughput.py).
        """
        adam = dict(lr=lr, betas=(self.cfg.train.beta1, self.cfg.train.beta2), fused=True)
        m = self.model
        if self.cfg.model.kind == "alae":
            return {"ED": torch.optim.Adam([*m.E.parameters(), *m.D.parameters()], **adam),
                    "FG": torch.optim.Adam([*m.F.parameters(), *m.G.parameters()], **adam)}
        return {"EG": torch.optim.Adam([*m.E.parameters(), *m.G.parameters()], **adam)}

    # -- one iteration -------------------------------------------------------------
    def step(self) -> dict[str, torch.Tensor | float]:
        """One iteration on this process's shard of the global batch; statistics as 0-dim tensors
        of this process (`settle` averages them over processes)."""
        t, m = self.cfg.train, self.model
        now = schedule.phase(self.cfg, self.images_seen, len(self.stream))
        if now.level != self.level:
            self.level, self.optimizers = now.level, self.build_optimizers(now.lr)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = now.lr
        self.blend = now.blend
        for net in (m, self.ema):
            net.grow(now.level, now.blend)
        if now.batch_size % self.world:
            raise UserError(f"the batch size {now.batch_size} does not split evenly over {self.world} processes")
        n = now.batch_size // self.world
        shard = dist.Shard(self.rank * n, n, now.batch_size)
        # every random draw of this step (z, noise inputs, style mixing: `draws`) comes from this seed,
        # so that a resumed run makes the same draws as an uninterrupted one
        seed_step(draws.derived_seed(t.seed, self.images_seen), self.device)
        # real images in the networks' pixel units: R1 (step 1) is taken with respect to them
        x = m.to_net(self.stream.batch(self.images_seen + shard.offset, n, m.resolution, now.blend))
        with dist.batch_shard(shard):
            if self.cfg.model.kind == "alae":
                opt_ED, opt_FG = self.optimizers["ED"], self.optimizers["FG"]
                stats = self.d_step(m, opt_ED, x, self.sample_z(n), self.r1_weight(), self.autocast)
                stats |= g_step(m, opt_FG, self.sample_z(n), self.autocast)
                stats |= ae_step(m, opt_ED, opt_FG, self.sample_z(n), t.ae_trains_F, self.autocast,
                                 t.d_zero_grad_step)
            elif self.cfg.model.kind == "vae":
                stats = vae_step(m, self.optimizers["EG"], x, schedule.vae_beta(self.cfg, self.images_seen),
                                 self.autocast)
            else:
                stats = pixel_step(m, self.optimizers["EG"], x, self.cfg.model.ae_loss, self.autocast)
        self.update_ema(now.batch_size)
        self.images_seen += now.batch_size
        self.steps += 1
        return stats | ({"level": now.level, "blend": now.blend} if m.is_style else {})

    def r1_weight(self) -> float:
        """This iteration's R1 weight: gamma, or with lazy R1 (`train.r1_every` k) gamma * k in every
        k-th iteration and 0 in the others, the same penalty on average (StyleGAN2, Karras et al. 2020)."""
        t = self.cfg.train
        return t.r1_gamma * t.r1_every if self.steps % t.r1_every == 0 else 0.0

    def sample_z(self, n: int) -> torch.Tensor:
        """A step's z ~ N(0, I), this process's n rows (`draws.Draws.z`), on the training device."""
        return draws.current().z(n, self.cfg.model.latent_size).to(self.device)

    def update_ema(self, batch_size: int) -> None:
        """EMA of the weights with half-life ema_kimg; buffers (the average w) are copied."""
        beta = 0.5 ** (batch_size / (1000.0 * self.cfg.train.ema_kimg))
        with torch.no_grad():
            torch._foreach_lerp_(self.ema_params, self.model_params, 1.0 - beta)
            if self.model_buffers:
                torch._foreach_copy_(self.ema_buffers, self.model_buffers)

    # -- checkpoints ---------------------------------------------------------------
    def save(self) -> Path:
        """Write a checkpoint (rank 0; the others return the path it is written to)."""
        if self.rank != 0:
            return self.run.checkpoint_path(self.images_seen)
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors |= {f"ema.{k}": v for k, v in self.ema.state_dict().items()}
        groups = {}
        for name, opt in self.optimizers.items():
            opt_tensors, groups[name] = checkpoint.optimizer_tensors(opt, f"opt.{name}.")
            tensors |= opt_tensors
        meta = {"config": self.cfg.to_dict(), "images_seen": self.images_seen, "steps": self.steps,
                "level": self.level, "blend": self.blend, "optimizers": groups}
        return checkpoint.save(self.run.checkpoint_dir, self.images_seen, tensors, meta, self.cfg.train.keep_checkpoints)

    def restore(self, path: Path) -> None:
        """Continue from checkpoint `path`; refuse one of another model config, naming the first key that differs."""
        tensors, meta = checkpoint.load(path)
        if "imported" in meta:
            raise UserError(f"{path} was imported from {meta['imported']['file']}: it holds no optimizer state "
                            f"to resume training from")
        checkpoint.require(meta, ("config", "images_seen", "steps", "level", "blend", "optimizers"), path)
        # keys a checkpoint predates take their defaults, which keep the behaviour of its time
        saved, wanted = checkpoint.saved_config(meta, path).to_dict()["model"], self.cfg.to_dict()["model"]
        differ = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
        if differ:
            raise UserError(f"cannot resume from {path}: model config differs in model.{differ[0]} "
                            f"(checkpoint {saved.get(differ[0])!r}, now {wanted.get(differ[0])!r})")
        checkpoint.load_into(self.model, tensors, "model.", path)
        checkpoint.load_into(self.ema, tensors, "ema.", path)
        self.images_seen, self.steps = int(meta["images_seen"]), int(meta["steps"])
        self.level, self.blend = int(meta["level"]), float(meta["blend"])
        for name, opt in self.optimizers.items():
            checkpoint.load_optimizer(opt, tensors, f"opt.{name}.", meta["optimizers"][name])


class StatsLog:
    """Averages per-iteration stats over an interval; appends one line per interval to the run's
    stats (none without a run)."""

    def __init__(self, run: Run | None):
        self.run = run
        self.sums, self.counts, self.count, self.images, self.t0 = {}, {}, 0, 0, time.perf_counter()

    def add(self, stats: dict[str, float], images: int) -> None:
        """One iteration's stats; a key absent from some iterations (R1 under lazy R1) is averaged
        over the iterations that have it."""
        for k, v in stats.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.counts[k] = self.counts.get(k, 0) + 1
        self.count += 1
        self.images += images

    def flush(self, images_seen: int, steps: int) -> dict:
        seconds = time.perf_counter() - self.t0
        row = {"kimg": images_seen / 1000, "step": steps}
        row |= {k: v / self.counts[k] for k, v in self.sums.items()}
        row["img_per_s"] = self.images / seconds
        if self.run is not None:
            self.run.append_stats(row)
        self.sums, self.counts, self.count, self.images, self.t0 = {}, {}, 0, 0, time.perf_counter()
        return row


def settle(stats: dict[str, torch.Tensor | float], stopping: bool) -> tuple[dict[str, float], bool]:
    """A step's statistics averaged over processes, and whether any process was asked to stop.

    One small all-reduce and one wait on the device per step: the non-finite check needs the
    values, and every process must agree on the step at which training stops.
    """
    keys = [k for k, v in stats.items() if isinstance(v, torch.Tensor)]
    values = torch.stack([stats[k].float() for k in keys] + [torch.tensor(float(stopping), device=stats[keys[0]].device)])
    _, world = dist.world()
    if world > 1:
        values = dist.sum_all(values)
        values[:-1] /= world
    out = values.tolist()
    return stats | dict(zip(keys, out[:-1])), out[-1] > 0


def check_finite(stats: dict[str, float], trainer: Trainer) -> None:
    """Stop at the first step with a non-finite loss, naming the step, the loss and the checkpoint kept."""
    bad = next((k for k, v in stats.items() if not math.isfinite(v)), None)
    if bad is not None:
        kept = trainer.run.checkpoints()
        last = f"the last good checkpoint, {kept[-1]}, stays the latest" if kept else "no checkpoint was written"
        raise UserError(f"training diverged at step {trainer.steps} ({trainer.images_seen} images): "
                        f"{bad} is {stats[bad]}; {last}")


class StopSignals:
    """While active (in the main thread), SIGINT and SIGTERM only record themselves in `signum`,
    for the training loop to check once per step; the previous handlers come back on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> StopSignals:
        self.signum, self.previous = None, {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._record)
        return self

    def _record(self, signum: int, frame) -> None:
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def train_run(config: Config | str, run: str | os.PathLike, overrides: Sequence[str] = (), *, resume: bool = False,
              force: bool = False, progress: bool = True) -> Run:
    """Train a model into run directory `run` and return the run (`alae.train`).

    `config` is a Config or a preset name or YAML file (`alae.load_config`), with `overrides`
    ("section.key=value") applied; `resume` continues `run` from its newest checkpoint (with its own
    config, the overrides applied to it), `force` replaces an existing run. Raises `Stopped` (after a
    checkpoint) on SIGINT or SIGTERM and a UserError on a mistake or a non-finite loss.
    """
    run = Run(run)
    if resume and isinstance(config, str):
        if not run.path.is_dir():
            raise UserError(f"cannot resume: run directory {run} does not exist")
        config = run.config()
    cfg = copy.deepcopy(config) if isinstance(config, Config) else config_mod.load(config, list(overrides))
    if isinstance(config, Config):
        for item in overrides:
            config_mod.apply_override(cfg, item)
        config_mod.validate(cfg)
    train(cfg, run, resume=resume, force=force, progress=progress)
    return run


def train(cfg: Config, run: Run | Path, resume: bool = False, force: bool = False, progress: bool = True) -> Trainer:
    """Train `cfg` into run directory `run` (created, or continued with `resume`).

    Raises `Stopped` after writing a checkpoint when SIGINT or SIGTERM arrives, and a
    UserError at the first non-finite loss (without writing a checkpoint).
    """
    run = run if isinstance(run, Run) else Run(run)
    rank, _ = dist.world()
    if rank == 0:
        if resume and not run.path.is_dir():
            raise UserError(f"cannot resume: run directory {run} does not exist")
        if not resume:
            Run.create(run.path, cfg, force)
    dist.barrier()
    trainer = Trainer(cfg, run)
    restored = resume and bool(run.checkpoints())
    if restored:
        trainer.restore(run.latest_checkpoint())
    if rank == 0:
        run.save_config(cfg)
    progress = progress and rank == 0
    t = cfg.train
    total = int(round(t.kimg * 1000))
    log = StatsLog(run if rank == 0 else None)
    if rank == 0:
        run.truncate_stats(trainer.images_seen)
    log_every, ckpt_every = int(t.log_kimg * 1000), int(t.checkpoint_kimg * 1000)
    note = schedule.growth_note(cfg, total, len(trainer.stream))
    if note and rank == 0:
        print(note, file=sys.stderr)
    if progress:
        print(f"training {cfg.model.kind} ({cfg.model.net}) for {t.kimg:g} kimg "
              f"({total / len(trainer.stream):.1f} epochs) into {run}; the bar shows the time left")
    last_saved = trainer.images_seen if restored else None
    bar = tqdm(total=total, initial=min(trainer.images_seen, total), unit="img", unit_scale=True,
               disable=not progress, desc=f"{cfg.model.kind} {run.path.name}", dynamic_ncols=True)
    with bar, StopSignals() as stop:
        while trainer.images_seen < total:
            before = trainer.images_seen
            stats, stopping = settle(trainer.step(), stop.signum is not None)
            check_finite(stats, trainer)
            log.add(stats, trainer.images_seen - before)
            bar.update(trainer.images_seen - before)
            bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items() if k != "level"}, refresh=False)
            if trainer.images_seen // log_every != before // log_every:
                log.flush(trainer.images_seen, trainer.steps)
            if trainer.images_seen // ckpt_every != before // ckpt_every:
                trainer.save()
                last_saved = trainer.images_seen
            if stopping:
                path = trainer.save() if last_saved != trainer.images_seen else run.latest_checkpoint()
                signum = stop.signum or signal.SIGTERM
                raise Stopped(signum, f"stopped by {signal.Signals(signum).name} at step {trainer.steps} "
                                      f"({trainer.images_seen} images); checkpoint {path} written: "
                                      f"continue with --resume")
    if log.count:
        log.flush(trainer.images_seen, trainer.steps)
    if last_saved != trainer.images_seen:
        trainer.save()
    return trainer
