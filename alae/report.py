"""The report a finished run gets: the loss plot, figures from held-out images, and Table 2 for MLP runs on MNIST."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from . import figures
from .data import source
from .errors import UserError
from .metrics import class_kept, table2
from .nn import downsample_to
from .run import Run

FIGURE_IMAGES = 10    # test images in the reconstruction figure (one per class for labelled data)
TRAVERSAL_PAIRS = 4   # image pairs in the traversal figure
MIX_IMAGES = 4        # sources and destinations of the style-mixing figure
SAMPLES = 32          # generated images per generation figure


def table2_report(runs: list[Path], log=print, protocol: str | None = None) -> tuple[dict, str]:
    """Evaluate each run (a trial) on the protocol it was trained for and return (JSON summary,
    Markdown table): SW columns come from SW-trained runs, DW columns from DW-trained runs.

    With `protocol` ("SW" or "DW") only those columns are made, and a run trained for the
    other is refused: its scores would count digits it trained on, or the wrong writers.
    """
    trials, notes, kinds = [], [], set()
    by_protocol = {p: [] for p in table2.PROTOCOLS}
    for run in map(Run.open, runs):
        cfg = run.config()
        if cfg.model.net != "mlp" or cfg.data.dataset != "mnist":
            raise UserError(f"{run}: Table 2 is defined for the MLP networks on MNIST "
                            f"(this run: {cfg.model.net} on {cfg.data.dataset})")
        trained = table2.protocol_of(cfg)
        if protocol is not None and protocol != trained:
            raise UserError(f"{run} was trained on the {trained} split (data.split={cfg.data.split}), so it cannot give "
                            f"Table 2's {protocol} columns: train one with --set data.split={protocol.lower()}")
        kinds.add("alae" if cfg.model.kind == "alae" else cfg.model.ae_loss)
        log(f"table2: evaluating {run} ({trained}, {cfg.report.table2_weights} weights)")
        result = table2.evaluate(run.load(weights=cfg.report.table2_weights), trained, cfg.data.root, log=log)
        trials.append(result)
        by_protocol[trained].append(str(run))
        notes += [f"{run}: {n}" for n in result["notes"]]
    if len(kinds) > 1:
        raise UserError(f"table2 trials must be runs of one model kind, got {sorted(kinds)}")
    summary = table2.aggregate(trials)
    kind = kinds.pop()
    data = {"runs": by_protocol, "model": kind,
            "svm": {"C": table2.SVM_C, "max_iter": table2.SVM_MAX_ITER, "solver": table2.SVM_SOLVER, "scaling": "none"},
            "accuracy": summary, "paper": table2.PAPER, "notes": notes}
    return data, table2.markdown(summary, by_protocol, kind, notes)


def draw_figures(run: Run, cfg, model, log=print) -> list[Path]:
    """Figures of a trained run from held-out test images; returns the files written.

    Every run: reconstructions.png (Figure 3) and traversals.png (Figure 4: lines in z and
    in w for ALAE, in w for a pixel AE). Style networks also get generations.png (psi 1 and
    psi `model.truncation_psi`) and mixing.png (Figure 9).
    """
    def held_out(n: int, offset: int = 0) -> torch.Tensor:  # at the size the model works at now
        return downsample_to(source.figure_images(cfg, n, offset), model.resolution)

    out = {"reconstructions": figures.reconstructions(model, held_out(FIGURE_IMAGES))}
    a, b = held_out(TRAVERSAL_PAIRS), held_out(TRAVERSAL_PAIRS, offset=15)
    if model.F is not None:
        out["traversals"], residual = figures.traversals(model, a, b)
        log(f"traversals: z end points found by inverting F, relative residual {residual:.2e}")
    else:
        out["traversals"] = figures.w_traversals(model, a, b)
    if model.growing:
        out["generations"] = figures.generations(model, SAMPLES, 0, (None, cfg.model.truncation_psi))
        out["mixing"] = figures.style_mixing(model, held_out(MIX_IMAGES, offset=10), held_out(MIX_IMAGES, offset=24))
    paths = []
    for name, image in out.items():
        paths.append(run.figure_path(name))
        image.save(paths[-1])
    return paths


def write(run: Run | Path, log=print) -> list[Path]:
    """Write losses.png, the figures (`draw_figures`) and, for MLP runs on MNIST, table2.{md,json} into
    `run`; returns the image files written."""
    run = Run.open(run)
    cfg = run.config()
    model = run.load()
    paths = []
    if run.stats_path.is_file():
        paths.append(run.figure_path("losses"))
        figures.loss_plot(run.stats_path, paths[-1])
    if cfg.report.figures:
        paths += draw_figures(run, cfg, model, log)
    for path in paths:
        log(f"wrote {path}")
    if cfg.report.table2:
        data, md = table2_report([run], log=log)
        data["reconstructions"] = kept = class_kept.evaluate(model, cfg)
        md += reconstruction_markdown(kept)
        run.report_path("table2.json").write_text(json.dumps(data, indent=2))
        run.report_path("table2.md").write_text(md)
        log(md)
    return paths


def reconstruction_markdown(kept: dict) -> str:
    """The class check of `class_kept` as a Markdown paragraph for table2.md."""
    return (f"\nReconstructions G(E(x)) of the {kept['test_images']} test digits (`alae.metrics.class_kept`): "
            f"a pixel-space 1NN fitted on the real training digits labels {kept['reconstructed']:.2f} % of them "
            f"correctly ({kept['real']:.2f} % of the real test digits); background level (mean of the clipped "
            f"reconstruction where the digit is 0) {kept['background']:.4f}; pixel MSE {kept['mse']:.4f}.\n")
