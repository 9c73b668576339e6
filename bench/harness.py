"""What the bench's experiments share: train a trial or resume it, record it, tabulate.

A trial is one configuration trained with one seed into its own run directory. `run_trials`
trains (or resumes, from the newest checkpoint) each trial not yet recorded, scores it and
records it at once in one JSON file, `Trials`, keyed by "VARIANT/sSEED/KIMG", each record
holding at least variant, seed, kimg, train_seconds and scores. So a command can be stopped and
run again, and copies with disjoint seeds or variants can share the machine and the file.
`cell` formats mean ± std over the seeds of a group.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from alae.files import write_atomic
from alae.run import Run
from alae.training import train


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


def run_trials(trials: Trials, out: Path, variants: Iterable[str], seeds: Iterable[int], kimg: float,
               config: Callable[[str, int], object], score: Callable[[Run, object], dict],
               before: Callable[[Path], None] | None = None, extra: dict | None = None) -> None:
    """Train, score and record every (variant, seed) not yet in `trials`, seeds outermost.

    `config(variant, seed)` gives the trial's Config (of length `kimg`), `score(run, cfg)` its
    scores; `before(run_dir)` prepares a run directory not made yet (e.g. a copy of a checkpoint
    to continue from); `extra` joins every record."""
    for seed in seeds:
        for variant in variants:
            key = trial_key(variant, seed, kimg)
            if key in trials:
                continue
            path = Path(out) / variant.replace(" ", "_").replace("|", "-") / f"s{seed}"
            if before is not None and not path.is_dir():
                before(path)
            cfg = config(variant, seed)
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
