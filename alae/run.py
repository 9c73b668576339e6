"""A run directory: the one place that knows its layout.

    RUN/
      config.yaml          the whole config the run trains (`alae.config.Config`)
      stats.jsonl          one JSON line of averaged training statistics per log interval
      checkpoints/         ckpt-NNNNNNNNNNNN.safetensors, by images seen (`alae.checkpoint`)
      losses.png, reconstructions.png, traversals.png, generations.png, mixing.png
                           the report's figures (`alae.report`)
      table2.md, table2.json   Table 2 and the class check (MLP runs on MNIST)
      metrics.jsonl        one JSON line per metric computed (`alae metrics`)
      directions.json      latent directions fitted in w (`alae directions`)
      disentanglement.json the disentanglement scores (`alae eval disentanglement`)

A run directory appears whole or not at all: `Run.create` builds it beside its place with
config.yaml inside and renames it into place.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml

from . import checkpoint
from .config import Config, from_dict
from .errors import UserError
from .files import write_atomic

if TYPE_CHECKING:
    from .model import ALAE


class Run:
    """The files of one run directory, and the model it holds (`load`)."""

    CONFIG = "config.yaml"
    STATS = "stats.jsonl"
    CHECKPOINTS = "checkpoints"
    METRICS = "metrics.jsonl"
    DIRECTIONS = "directions.json"
    DISENTANGLEMENT = "disentanglement.json"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    @classmethod
    def open(cls, path: str | os.PathLike) -> Run:
        """An existing run directory; a one-line UserError if there is none at `path`."""
        run = cls(path)
        if not run.path.is_dir():
            raise UserError(f"run directory not found: {path}")
        return run

    @classmethod
    def create(cls, path: str | os.PathLike, cfg: Config, force: bool = False) -> Run:
        """A new run directory holding `cfg`; an existing non-empty one is refused unless `force`.

        The new directory is made beside `path` with its config.yaml and renamed into place, so
        a process killed at any moment leaves no run, or one that `--resume` continues; with
        `force` the old run is renamed away before the new one takes its place, then deleted.
        """
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise UserError(f"run directory {path} is a file")
        if run.path.is_dir() and any(run.path.iterdir()) and not force:
            raise UserError(f"run directory {path} already exists: pass --resume to continue it or --force to start over")
        try:
            run._replace_with_fresh(cfg)
        except OSError as e:
            raise UserError(f"cannot create run directory {path}: {e.strerror or e}") from None
        return run

    def _replace_with_fresh(self, cfg: Config) -> None:
        parent, name = self.path.parent, self.path.name
        parent.mkdir(parents=True, exist_ok=True)
        fresh, old = (Run(parent / f".{name}.{what}-{os.getpid()}") for what in ("new", "old"))
        fresh.path.mkdir()
        fresh.save_config(cfg)
        if self.path.exists():
            self.path.rename(old.path)
        fresh.path.rename(self.path)
        shutil.rmtree(old.path, ignore_errors=True)

    # -- files -----------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def stats_path(self) -> Path:
        return self.path / self.STATS

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def directions_path(self) -> Path:
        return self.path / self.DIRECTIONS

    @property
    def disentanglement_path(self) -> Path:
        return self.path / self.DISENTANGLEMENT

    @property
    def table2_paths(self) -> tuple[Path, Path]:
        """Where Table 2's report is written: (Markdown, JSON)."""
        return self.path / "table2.md", self.path / "table2.json"

    def figure_path(self, name: str) -> Path:
        """Where the report's figure `name` (losses, reconstructions, traversals, generations, mixing) is written."""
        return self.path / f"{name}.png"

    # -- config ----------------------------------------------------------------------------
    def config(self) -> Config:
        """The run's config.yaml; a one-line UserError where it is missing or not valid."""
        if not self.config_path.is_file():
            raise UserError(f"{self.path} is not a run directory (no {self.CONFIG})")
        try:
            tree = yaml.safe_load(self.config_path.read_text())
        except yaml.YAMLError as e:
            raise UserError(f"{self.config_path} is not valid YAML: {str(e).splitlines()[0]}") from None
        return from_dict(tree, str(self.config_path))

    def save_config(self, cfg: Config) -> None:
        """Write config.yaml atomically."""
        try:
            write_atomic(self.config_path, yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
        except OSError as e:
            raise UserError(f"cannot write {self.config_path}: {e.strerror or e}") from None

    # -- checkpoints -----------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """The run's checkpoints, oldest first."""
        return checkpoint.list_checkpoints(self.checkpoint_dir)

    def latest_checkpoint(self) -> Path:
        """The newest whole checkpoint (a damaged newest one is passed over with a warning)."""
        return checkpoint.latest(self.checkpoint_dir)

    def checkpoint_path(self, images: int) -> Path:
        """Where the checkpoint after `images` training images is written."""
        return checkpoint.checkpoint_path(self.checkpoint_dir, images)

    @classmethod
    def checkpoint_of(cls, path: str | os.PathLike) -> Path:
        """The newest whole checkpoint of run directory `path`, or `path` itself if it is a file;
        a one-line UserError if there is neither."""
        path = Path(path)
        if path.is_dir():
            return cls(path).latest_checkpoint()
        if not path.exists():
            raise UserError(f"run directory not found: {path}")
        return path

    def load(self, weights: str = "ema", device: str | torch.device = "cpu") -> ALAE:
        """The model of the newest checkpoint (`alae.model.load`): the EMA networks, or the trained
        ones with `weights="live"`, on `device`."""
        from .model import load
        return load(self.latest_checkpoint(), device, weights)

    # -- training statistics ---------------------------------------------------------------
    def stats(self) -> list[dict]:
        """The rows of stats.jsonl, without lines torn by a killed process."""
        if not self.stats_path.is_file():
            return []
        return [row for row in map(_log_row, self.stats_path.read_text().splitlines()) if row is not None]

    def append_stats(self, row: dict) -> None:
        with open(self.stats_path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def truncate_stats(self, images_seen: int) -> None:
        """Drop log lines written after the checkpoint being resumed (so the log has no repeats) and torn lines."""
        if self.stats_path.is_file():
            keep = "".join(json.dumps(row) + "\n" for row in self.stats() if row["kimg"] * 1000 <= images_seen)
            try:
                write_atomic(self.stats_path, keep.encode())
            except OSError as e:
                raise UserError(f"cannot write {self.stats_path}: {e.strerror or e}") from None

    def throughput(self) -> tuple[dict[int, float], float]:
        """Images per second of each level and the seconds of training, from the intervals of
        stats.jsonl: the run's whole history, across resumptions and runs begun from another's
        checkpoint with its log, not one process's share."""
        images, seconds, last = {}, {}, 0.0
        for row in self.stats():
            level, n = int(row.get("level", 0)), (row["kimg"] - last) * 1000
            images[level] = images.get(level, 0) + n
            seconds[level] = seconds.get(level, 0) + n / row["img_per_s"]
            last = row["kimg"]
        return {lv: images[lv] / seconds[lv] for lv in images}, sum(seconds.values())


def _log_row(line: str) -> dict | None:
    """One line of stats.jsonl, or None for a line torn by a killed process."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("kimg"), (int, float)) else None
