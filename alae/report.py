"""The report a finished MLP run gets: Table 2, Figures 3 and 4, the loss plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from . import figures
from .data import mnist
from .errors import UserError
from .metrics import table2
from .model import load
from .train import STATS_FILE, read_config

FIGURE_DIGITS = 10    # digits in the reconstruction row
TRAVERSAL_PAIRS = 4   # digit pairs in the traversal figure


def table2_report(runs: list[Path], log=print) -> tuple[dict, str]:
    """Evaluate each run (a trial) and return (JSON summary, Markdown table)."""
    trials, notes, kinds = [], [], set()
    for run in runs:
        cfg = read_config(run)
        if cfg.model.net != "mlp" or cfg.data.dataset != "mnist":
            raise UserError(f"{run}: Table 2 is defined for the MLP networks on MNIST (this run: {cfg.model.net} on {cfg.data.dataset})")
        kinds.add("alae" if cfg.model.kind == "alae" else cfg.model.ae_loss)
        log(f"table2: evaluating {run}")
        result = table2.evaluate(load(run), cfg.data.root, log=log)
        trials.append(result)
        notes += [f"{run}: {n}" for n in result["notes"]]
    if len(kinds) > 1:
        raise UserError(f"table2 trials must be runs of one model kind, got {sorted(kinds)}")
    summary = table2.aggregate(trials)
    kind = kinds.pop()
    names = [str(r) for r in runs]
    data = {"runs": names, "model": kind, "svm": {"C": table2.SVM_C, "max_iter": table2.SVM_MAX_ITER, "scaling": "none"},
            "accuracy": summary, "paper": table2.PAPER, "notes": notes}
    return data, table2.markdown(summary, names, kind, notes)


def digit_indices(labels: np.ndarray, n: int, offset: int = 0) -> list[int]:
    """Indices of n digits of classes offset, offset + 1, ... (mod 10), each the (offset // 10)-th of its class."""
    return [int(np.flatnonzero(labels == (offset + i) % 10)[offset // 10]) for i in range(n)]


def test_digits(root: str, n: int, offset: int = 0) -> torch.Tensor:
    """n official test digits (see `digit_indices`) as [n, 1, 28, 28] floats in [0, 1]."""
    images, labels = mnist.load("test", root)
    return torch.from_numpy(images[digit_indices(labels, n, offset)].astype(np.float32) / 255.0).unsqueeze(1)


def write(run: Path, log=print) -> None:
    """Write table2.{md,json}, reconstructions.png, traversals.png and losses.png into `run`."""
    run = Path(run)
    cfg = read_config(run)
    model = load(run)
    if (run / STATS_FILE).is_file():
        figures.loss_plot(run / STATS_FILE, run / "losses.png")
    if cfg.report.figures:
        figures.reconstructions(model, test_digits(cfg.data.root, FIGURE_DIGITS)).save(run / "reconstructions.png")
        a = test_digits(cfg.data.root, TRAVERSAL_PAIRS, offset=0)
        b = test_digits(cfg.data.root, TRAVERSAL_PAIRS, offset=15)
        if model.F is not None:
            image, residual = figures.traversals(model, a, b)
            log(f"traversals: z end points found by inverting F, relative residual {residual:.2e}")
        else:
            image = figures.w_traversals(model, a, b)
        image.save(run / "traversals.png")
    if cfg.report.table2:
        data, md = table2_report([run], log=log)
        (run / "table2.json").write_text(json.dumps(data, indent=2))
        (run / "table2.md").write_text(md)
        log(md)
