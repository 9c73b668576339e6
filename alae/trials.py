"""Experiments over trials: train a trial or resume it, score it, record it, tabulate.

What every script under bench/ that trains and scores shares.

A trial is one configuration trained with one seed into its own run directory. `run_trials`
trains (or resumes, from the newest checkpoint) each trial not yet recorded, scores it and
records it at once in one JSON file, `Trials`, keyed by "VARIANT/sSEED/KIMG", each record
holding at least variant, seed, kimg, train_seconds and scores. So a command can be stopped and
run again, and copies with disjoint seeds or variants can share the machine and the file.
`cell` formats mean ± std over the seeds of a group.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from . import checkpoint
from .config import Config
from .errors import UserError
from .files import write_atomic
from .run import Run
from .training import train


class Trials:
    """The file of recorded trials; read afresh at every access, as another copy may write it."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def all(self) -> dict[str, dict]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def __contains__(self, key: str) -> bool:
        return key in self.all()

    def record(self, key: str, record: dict) -> None:
        records = self.all()
        records[key] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(records, indent=1).encode())


def trial_key(variant: str, seed: int, kimg: float) -> str:
    return f"{variant}/s{seed}/{kimg:g}"


def trial_dir(out: Path, variant: str, seed: int) -> Path:
    """The run directory of a trial: `out/VARIANT/sSEED`, the variant's spaces and bars made file-safe."""
    return Path(out) / variant.replace(" ", "_").replace("|", "-") / f"s{seed}"


def run_trials(trials: Trials, out: Path, variants: Iterable[str], seeds: Iterable[int],
               config: Callable[[str, int], Config], score: Callable[[Run, Config], dict],
               before: Callable[[Path, Config], None] | None = None, extra: dict | None = None) -> None:
    """Train, score and record every (variant, seed) not yet in `trials`, seeds outermost.

    `config(variant, seed)` gives the trial's Config, whose `train.kimg` is the trial's length
    (a trial of another length is another record, so a run can be scored at several lengths);
    `score(run, cfg)` its scores; `before(run_dir, cfg)` prepares a run directory not made yet
    (e.g. a copy of a checkpoint to continue from); `extra` joins every record."""
    for seed in seeds:
        for variant in variants:
            cfg = config(variant, seed)
            kimg = cfg.train.kimg
            key = trial_key(variant, seed, kimg)
            if key in trials:
                continue
            path = trial_dir(out, variant, seed)
            if before is not None and not path.is_dir():
                before(path, cfg)
            t0 = time.perf_counter()
            train(cfg, path, resume=path.is_dir(), progress=False)
            train_s = time.perf_counter() - t0
            scores = score(Run(path), cfg)
            trials.record(key, {"variant": variant, "seed": seed, "kimg": kimg, "run": str(path),
                                "train_seconds": train_s, "scores": scores} | (extra or {}))
            print(f"{key}: trained in {train_s / 60:.1f} min; {json.dumps(scores)[:300]}", flush=True)


def groups(records: Iterable[dict], by: Callable[[dict], tuple]) -> dict[tuple, list[dict]]:
    """Records grouped by `by(record)`, in the order groups first appear."""
    out: dict[tuple, list[dict]] = {}
    for r in records:
        out.setdefault(by(r), []).append(r)
    return out


def cell(records: list[dict], get: Callable[[dict], float], digits: int = 2) -> str:
    """mean ± std of get(record) over the records (the value alone for one; — where any lacks it)."""
    try:
        v = np.array([get(r) for r in records], dtype=float)
    except (KeyError, TypeError):
        return "—"
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}" if len(v) > 1 else f"{v[0]:.{digits}f}"


def begin_from(run: Path, source: Path, images: int, stats: Path | None = None) -> Path:
    """Make `run` (not there yet) start from a copy of checkpoint `source`, named as the checkpoint
    after `images` training images (the name the trainer resumes from, whatever the file's), with
    a copy of the log `stats` if given; returns the checkpoint's copy."""
    run = Run(run)
    copy = run.checkpoint_path(images)
    copy.parent.mkdir(parents=True)
    shutil.copy2(source, copy)
    if stats is not None and Path(stats).is_file():
        shutil.copy2(stats, run.stats_path)
    return copy


def same_training(a: Config, b: Config) -> str | None:
    """The first setting, other than length and threads, in which configs `a` and `b` differ, or None."""
    trees = [c.to_dict() for c in (a, b)]
    for tree in trees:
        for key in ("kimg", "threads"):
            tree["train"].pop(key)
    for section, values in trees[0].items():
        for key, value in values.items():
            if trees[1][section].get(key) != value:
                return f"{section}.{key} {value!r} against {trees[1][section].get(key)!r}"
    return None


def start_from(source_runs: list[Path], run: Path, cfg: Config) -> Path | None:
    """Begin `run` (not made yet) as a copy of the newest checkpoint among `source_runs` that is
    not past cfg's length, with its run's stats; the checkpoint copied, or None where there is none.
    A run of that length ends within one batch past it (the trainer stops at the first batch
    that reaches it), so a source of the same length is copied finished, not retrained."""
    end = round(cfg.train.kimg * 1000) + cfg.train.batch_size
    found = sorted((p for r in source_runs for p in Run(r).checkpoints() if checkpoint.images_of(p) < end),
                   key=checkpoint.images_of)
    if not found:
        return None
    source_run = found[-1].parent.parent
    differs = same_training(Run(source_run).config(), cfg)
    if differs:
        raise UserError(f"--start-from: {source_run} was trained differently ({differs})")
    begin_from(run, found[-1], checkpoint.images_of(found[-1]), Run(source_run).stats_path)
    return found[-1]
