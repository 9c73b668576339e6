"""Figures: image grids for reconstructions (Figure 3) and traversals (Figure 4), the loss plot.

Grids are drawn with Pillow: each row an image strip, a label on its left.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageDraw

from .latent import STYLE_GROUPS, invert_F, lerp_rows, style_group_inputs

if TYPE_CHECKING:
    from .model import ALAE

PAD = 2
LABEL_WIDTH = 70


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] floats in [0, 1] -> [N, H, W, C] uint8 (values outside [0, 1] clipped)."""
    return (images.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def grid(rows: list[torch.Tensor], labels: list[str], scale: int = 2, label_width: int = LABEL_WIDTH) -> Image.Image:
    """Rows of images (each [N, C, H, W] in [0, 1]) side by side, with a text label per row."""
    cols = max(len(r) for r in rows)
    h, w = rows[0].shape[2] * scale, rows[0].shape[3] * scale
    sheet = Image.new("RGB", (label_width + cols * (w + PAD) + PAD, len(rows) * (h + PAD) + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (row, label) in enumerate(zip(rows, labels)):
        y = PAD + i * (h + PAD)
        draw.text((4, y + h // 2 - 5), label, fill="black")
        for j, img in enumerate(to_uint8(row)):
            tile = Image.fromarray(img.squeeze(2) if img.shape[2] == 1 else img).resize((w, h), Image.NEAREST)
            sheet.paste(tile.convert("RGB"), (label_width + PAD + j * (w + PAD), y))
    return sheet


def reconstructions(model: ALAE, images: torch.Tensor) -> Image.Image:
    """Figure 3: a row of test digits (images [N, C, R, R] in [0, 1]) and the row of their reconstructions G(E(x))."""
    return grid([images, model.reconstruct(images)], ["input", "G(E(x))"])


def traversals(model: ALAE, a: torch.Tensor, b: torch.Tensor, steps: int = 9) -> tuple[Image.Image, float]:
    """Figure 4: for pairs of encoded test digits, G(F(z)) along a line in z, and G(w) along a line in w.

    The pairs are (a[i], b[i]) of images a, b [N, C, R, R] in [0, 1]. The w end points are E(a)
    and E(b); the z end points are found by inverting F. Returns the figure and the relative
    residual of that inversion.
    """
    wa, wb = model.encode(a), model.encode(b)
    rows, labels = [], []
    with torch.enable_grad():
        za, res_a = invert_F(model, wa)
        zb, res_b = invert_F(model, wb)
    z_path, w_path = lerp_rows(za, zb, steps), lerp_rows(wa, wb, steps)
    for i in range(len(a)):
        rows.append(model.decode(model.map(z_path[i])))
        labels.append(f"pair {i + 1}: z")
        rows.append(model.decode(w_path[i]))
        labels.append(f"pair {i + 1}: w")
    return grid(rows, labels), max(res_a, res_b)


def w_traversals(model: ALAE, a: torch.Tensor, b: torch.Tensor, steps: int = 9) -> Image.Image:
    """Traversals in w only, for a pixel autoencoder (which has no z); a, b as `traversals` takes them."""
    w_path = lerp_rows(model.encode(a), model.encode(b), steps)
    return grid([model.decode(p) for p in w_path], [f"pair {i + 1}: w" for i in range(len(a))])


def loss_plot(rows: list[dict], out: Path) -> None:
    """Training losses against kimg from the rows of a run's stats (`Run.stats`), one panel per
    statistic; a statistic some intervals lack (R1 under lazy R1) is drawn where it was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys(k for r in rows for k in r if k not in ("kimg", "step", "img_per_s")))
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        logged = [r for r in rows if key in r]
        ax.plot([r["kimg"] for r in logged], [r[key] for r in logged])
        ax.set_title(key)
        ax.set_xlabel("kimg")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def generations(model: ALAE, num: int, seed: int, truncations: tuple[float | None, ...] = (None,),
                per_row: int = 8) -> Image.Image:
    """num generated images G(F(z)) in rows of per_row, once per truncation psi (None: none),
    all from the same z and noise, so that the blocks show what truncation does."""
    rows, labels = [], []
    for psi in truncations:
        block = list(model.generate(num, seed=seed, truncation=psi).split(per_row))
        rows += block
        labels += [f"psi {psi:g}" if psi is not None else "samples"] + [""] * (len(block) - 1)
    return grid(rows, labels)


def interpolation(model: ALAE, a: torch.Tensor, b: torch.Tensor, steps: int) -> Image.Image:
    """Two real images (a, b: [C, R, R] in [0, 1]) and G(w) along the straight line between E(a) and E(b) (`ALAE.interpolate`)."""
    return grid([torch.cat([a[None], model.interpolate(a, b, steps), b[None]])], ["a, w path, b"])


def style_mixing(model: ALAE, src: torch.Tensor, dst: torch.Tensor) -> Image.Image:
    """Figure 9: each destination image with the coarse, middle or fine styles of each source (`ALAE.mix`);
    src and dst are images [N, C, R, R] in [0, 1]."""
    blank = torch.ones_like(src[:1])
    rows, labels = [torch.cat([blank, src])], ["source"]
    for group in STYLE_GROUPS:
        if not style_group_inputs(model, group):
            continue
        for i, mixed in enumerate(model.mix(dst, src, group)):
            rows.append(torch.cat([dst[i:i + 1], mixed]))
            labels.append(f"{group} {i + 1}")
    return grid(rows, labels)
