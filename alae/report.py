"""The report a finished run gets: the loss plot, figures from held-out images, and Table 2 for MLP runs on MNIST."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from . import figures
from .data import source
from .device import resolve_device
from .metrics import class_kept, table2
from .nn import downsample_to
from .run import Run

if TYPE_CHECKING:
    from .config import Config
    from .model import ALAE

FIGURE_IMAGES = 10    # test images in the reconstruction figure (one per class for labelled data)
TRAVERSAL_PAIRS = 4   # image pairs in the traversal figure
MIX_IMAGES = 4        # sources and destinations of the style-mixing figure
SAMPLES = 32          # generated images per generation figure


def draw_figures(run: Run, cfg: Config, model: ALAE, log: Callable[[str], None] = print) -> list[Path]:
    """Figures of a trained run from held-out test images; returns the files written.

    Every run: the reconstructions (Figure 3) and traversals (Figure 4: lines in z and in w for
    ALAE, in w for a pixel AE). Style networks also get generations (psi 1 and psi
    `model.truncation_psi`) and mixing (Figure 9). Where each is written: `Run.figure_path`.
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
    if model.is_style:
        out["generations"] = figures.generations(model, SAMPLES, 0, (None, cfg.model.truncation_psi))
        out["mixing"] = figures.style_mixing(model, held_out(MIX_IMAGES, offset=10), held_out(MIX_IMAGES, offset=24))
    paths = []
    for name, image in out.items():
        paths.append(run.figure_path(name))
        image.save(paths[-1])
    return paths


def write(run: Run | Path, log: Callable[[str], None] = print, device: str = "cpu") -> list[Path]:
    """Write the loss plot, the figures (`draw_figures`) and, for MLP runs on MNIST, Table 2's report
    into `run`; returns the image files written."""
    run = Run.open(run)
    cfg = run.config()
    model = run.load(device=resolve_device(device))
    paths = []
    rows = run.stats()
    if rows:
        paths.append(run.figure_path("losses"))
        figures.loss_plot(rows, paths[-1])
    if cfg.report.figures:
        paths += draw_figures(run, cfg, model, log)
    for path in paths:
        log(f"wrote {path}")
    if cfg.report.table2:
        data, md = table2.evaluate_runs([run], log=log, device=device)
        data["reconstructions"] = kept = class_kept.evaluate(model, cfg)
        md += reconstruction_markdown(kept)
        md_path, json_path = run.table2_paths
        json_path.write_text(json.dumps(data, indent=2))
        md_path.write_text(md)
        log(md)
    return paths


def reconstruction_markdown(kept: dict) -> str:
    """The class check of `class_kept` as a Markdown paragraph for table2.md."""
    return (f"\nReconstructions G(E(x)) of the {kept['test_images']} test digits (`alae.metrics.class_kept`): "
            f"a pixel-space 1NN fitted on the real training digits labels {kept['reconstructed']:.2f} % of them "
            f"correctly ({kept['real']:.2f} % of the real test digits); background level (mean of the clipped "
            f"reconstruction where the digit is 0) {kept['background']:.4f}; pixel MSE {kept['mse']:.4f}.\n")
