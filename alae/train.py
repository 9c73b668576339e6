"""The training loop: data stream, the steps of Algorithm 1, EMA, logs, checkpoints, exact resume.

Everything random is a pure function of `train.seed` and the position in training:
weights from `seed`; the data order of epoch k from (seed, k); z from a generator whose
state is stored in each checkpoint. A run resumed from a checkpoint therefore equals
the uninterrupted run, parameter for parameter.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from . import checkpoint
from .config import Config, from_dict
from .data import mnist
from .errors import UserError
from .losses import ae_step, d_step, g_step, pixel_step
from .model import ALAE

CONFIG_FILE = "config.yaml"
STATS_FILE = "stats.jsonl"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"config key train.device: {name} asked for, but torch sees no CUDA device")
    return torch.device(name)


class DataStream:
    """Real images in a fixed order: stream position p is image perm_(p // N)[p % N]."""

    def __init__(self, images: np.ndarray, seed: int, device: torch.device):
        self.images = torch.from_numpy(images.copy()).unsqueeze(1).to(device)  # uint8 [N, 1, H, W]
        self.seed = seed
        self._epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(len(self.images), generator=gen)
        return self._perm

    def batch(self, start: int, size: int) -> torch.Tensor:
        n = len(self.images)
        pos = torch.arange(start, start + size)
        epoch = pos.div(n, rounding_mode="floor")
        idx = torch.empty(size, dtype=torch.long)
        for k in epoch.unique().tolist():
            here = epoch == k
            idx[here] = self._permutation(k)[pos[here] % n]
        return self.images[idx.to(self.images.device)].float() / 255.0


def training_images(cfg: Config) -> np.ndarray:
    images, _ = mnist.load("train", cfg.data.root)
    return images


def save_config(run: Path, cfg: Config) -> None:
    (run / CONFIG_FILE).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def read_config(run: Path) -> Config:
    path = Path(run) / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"{run} is not a run directory (no {CONFIG_FILE})")
    return from_dict(yaml.safe_load(path.read_text()), str(path))


def prepare_run(run: Path, resume: bool, force: bool) -> None:
    """Refuse to overwrite an existing run unless asked to resume it or start over."""
    run = Path(run)
    if resume:
        if not run.is_dir():
            raise UserError(f"cannot resume: run directory {run} does not exist")
        return
    if run.exists() and any(run.iterdir()):
        if not force:
            raise UserError(f"run directory {run} already exists: pass --resume to continue it or --force to start over")
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)


class Trainer:
    """Holds the model, its EMA copy, the optimizers, the data stream and the z generator."""

    def __init__(self, cfg: Config, run: Path):
        self.cfg, self.run = cfg, Path(run)
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = resolve_device(t.device)
        torch.manual_seed(t.seed)
        self.model = ALAE(cfg.model).to(self.device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.ema_beta = 0.5 ** (t.batch_size / (1000.0 * t.ema_kimg))
        adam = dict(lr=t.lr, betas=(t.beta1, t.beta2))
        m = self.model
        if cfg.model.kind == "alae":
            self.optimizers = {
                "ED": torch.optim.Adam([*m.E.parameters(), *m.D.parameters()], **adam),
                "FG": torch.optim.Adam([*m.F.parameters(), *m.G.parameters()], **adam),
            }
        else:
            self.optimizers = {"EG": torch.optim.Adam([*m.E.parameters(), *m.G.parameters()], **adam)}
        self.z_gen = torch.Generator().manual_seed(t.seed + 1)
        self.stream = DataStream(training_images(cfg), t.seed, self.device)
        self.images_seen = 0

    # -- one iteration -------------------------------------------------------------
    def step(self) -> dict[str, float]:
        t, m = self.cfg.train, self.model
        x = self.stream.batch(self.images_seen, t.batch_size)
        if self.cfg.model.kind == "alae":
            stats = d_step(m, self.optimizers["ED"], x, self.sample_z(), t.r1_gamma)
            stats |= g_step(m, self.optimizers["FG"], self.sample_z())
            stats |= ae_step(m, self.optimizers["ED"], self.optimizers["FG"], self.sample_z(), t.ae_trains_F)
        else:
            stats = pixel_step(m, self.optimizers["EG"], x, self.cfg.model.ae_loss)
        self.update_ema()
        self.images_seen += t.batch_size
        return stats

    def sample_z(self) -> torch.Tensor:
        """z ~ N(0, I), drawn on the CPU so that a run sees the same noise on any device."""
        z = torch.randn(self.cfg.train.batch_size, self.cfg.model.latent_size, generator=self.z_gen)
        return z.to(self.device)

    def update_ema(self) -> None:
        with torch.no_grad():
            ema, live = list(self.ema.parameters()), list(self.model.parameters())
            torch._foreach_lerp_(ema, live, 1.0 - self.ema_beta)

    # -- checkpoints ---------------------------------------------------------------
    def save(self) -> Path:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors |= {f"ema.{k}": v for k, v in self.ema.state_dict().items()}
        groups = {}
        for name, opt in self.optimizers.items():
            opt_tensors, groups[name] = checkpoint.optimizer_tensors(opt, f"opt.{name}.")
            tensors |= opt_tensors
        tensors["rng.z"] = self.z_gen.get_state()
        meta = {"config": self.cfg.to_dict(), "images_seen": self.images_seen, "optimizers": groups}
        return checkpoint.save(self.run, self.images_seen, tensors, meta, self.cfg.train.keep_checkpoints)

    def restore(self, path: Path) -> None:
        tensors, meta = checkpoint.load(path)
        saved, wanted = meta["config"]["model"], self.cfg.to_dict()["model"]
        differ = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
        if differ:
            raise UserError(f"cannot resume from {path}: model config differs in model.{differ[0]} "
                            f"(checkpoint {saved.get(differ[0])!r}, now {wanted.get(differ[0])!r})")
        checkpoint.load_into(self.model, tensors, "model.", path)
        checkpoint.load_into(self.ema, tensors, "ema.", path)
        for name, opt in self.optimizers.items():
            checkpoint.load_optimizer(opt, tensors, f"opt.{name}.", meta["optimizers"][name])
        self.z_gen.set_state(tensors["rng.z"])
        self.images_seen = int(meta["images_seen"])


class StatsLog:
    """Averages per-iteration stats over an interval; appends one JSON line per interval."""

    def __init__(self, path: Path):
        self.path, self.sums, self.count, self.t0 = path, {}, 0, time.perf_counter()

    def add(self, stats: dict[str, float]) -> None:
        for k, v in stats.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def flush(self, images_seen: int, batch_size: int) -> dict:
        seconds = time.perf_counter() - self.t0
        row = {"kimg": images_seen / 1000, "step": images_seen // batch_size}
        row |= {k: v / self.count for k, v in self.sums.items()}
        row["img_per_s"] = self.count * batch_size / seconds
        for v in row.values():
            if isinstance(v, float) and not math.isfinite(v):
                raise UserError(f"training diverged: non-finite loss at step {row['step']}: {row}")
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.sums, self.count, self.t0 = {}, 0, time.perf_counter()
        return row


def truncate_stats(path: Path, images_seen: int) -> None:
    """Drop log lines written after the checkpoint being resumed, so the log has no repeats."""
    if path.is_file():
        keep = [line for line in path.read_text().splitlines() if json.loads(line)["kimg"] * 1000 <= images_seen]
        path.write_text("".join(line + "\n" for line in keep))


def train(cfg: Config, run: Path, resume: bool = False, force: bool = False, progress: bool = True) -> Trainer:
    """Train `cfg` into run directory `run` (created, or continued with `resume`)."""
    from tqdm import tqdm

    run = Path(run)
    prepare_run(run, resume, force)
    trainer = Trainer(cfg, run)
    if resume:
        trainer.restore(checkpoint.latest(run))
    save_config(run, cfg)
    t = cfg.train
    total = int(round(t.kimg * 1000))
    log, stats_path = StatsLog(run / STATS_FILE), run / STATS_FILE
    truncate_stats(stats_path, trainer.images_seen)
    log_every, ckpt_every = int(t.log_kimg * 1000), int(t.checkpoint_kimg * 1000)
    if progress:
        print(f"training {cfg.model.kind} ({cfg.model.net}) for {t.kimg:g} kimg "
              f"({total / len(trainer.stream.images):.1f} epochs) into {run}; the bar shows the time left")
    last_saved = trainer.images_seen if resume else None
    bar = tqdm(total=total, initial=min(trainer.images_seen, total), unit="img", unit_scale=True,
               disable=not progress, desc=f"{cfg.model.kind} {run.name}", dynamic_ncols=True)
    with bar:
        while trainer.images_seen < total:
            before = trainer.images_seen
            stats = trainer.step()
            log.add(stats)
            bar.update(trainer.images_seen - before)
            bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()}, refresh=False)
            if trainer.images_seen // log_every != before // log_every:
                log.flush(trainer.images_seen, t.batch_size)
            if trainer.images_seen // ckpt_every != before // ckpt_every:
                trainer.save()
                last_saved = trainer.images_seen
    if log.count:
        log.flush(trainer.images_seen, t.batch_size)
    if last_saved != trainer.images_seen:
        trainer.save()
    return trainer
