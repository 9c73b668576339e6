"""Operations in the latent spaces z and w that figures, the demo and the metrics share: straight
lines, style mixing by groups of style inputs (Figure 9), and inverting F."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .model import ALAE

STYLE_GROUPS = {"coarse": (4, 8), "middle": (16, 32), "fine": (64, 1024)}  # resolutions, Figure 9
INVERSION_POOL = 20_000  # random z whose F(z) are searched for the inversion's start


def style_group_inputs(model: ALAE, group: str) -> list[int]:
    """Indices of G's style inputs whose level's resolution lies in the group's range."""
    low, high = STYLE_GROUPS[group]
    return [i for i in range(model.G.num_styles) if low <= 4 * 2 ** (i // 2) <= high and i // 2 <= model.G.level]


def invert_F(model: ALAE, w: torch.Tensor, steps: int = 1000, lr: float = 0.05,
             pool: int = INVERSION_POOL) -> tuple[torch.Tensor, float]:
    """z with F(z) close to w (F has no closed-form inverse): starting from the z whose F(z) is
    nearest to w among `pool` random draws, Adam on ||F(z) - w||^2 with a step decaying along a
    cosine. A start from one random z leaves some codes in a poor local minimum.

    Returns z and the final mean squared residual relative to the mean squared w.
    """
    z = nearest_draw(model, w, pool).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        loss = (model.F(z) - w).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
    with torch.no_grad():
        residual = ((model.F(z) - w).pow(2).mean() / w.pow(2).mean()).item()
    return z.detach(), residual


@torch.no_grad()
def nearest_draw(model: ALAE, w: torch.Tensor, pool: int, chunk: int = 1000) -> torch.Tensor:
    """Per row of w, the z among `pool` draws (a fixed seed) whose F(z) is nearest to it."""
    draws = torch.randn(pool, w.shape[-1], generator=torch.Generator().manual_seed(0)).to(w.device)
    drawn_w = model.F(draws)
    nearest = torch.cat([torch.cdist(part, drawn_w).argmin(1) for part in w.split(chunk)])
    return draws[nearest]  # indexing by a tensor copies


def lerp_rows(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """[pairs, steps, dim]: straight lines from a to b."""
    t = torch.linspace(0, 1, steps)[None, :, None]
    return a[:, None] + t * (b - a)[:, None]


def mixed_styles(model: ALAE, w_dst: torch.Tensor, w_src: torch.Tensor, group: str) -> torch.Tensor:
    """G's style inputs ws [N, num_styles, latent] for one destination w [latent] and N source
    ws [N, latent]: the destination's w everywhere but at the group's inputs, which take the source's."""
    ws = w_dst.expand(len(w_src), model.G.num_styles, -1).clone()
    ws[:, style_group_inputs(model, group)] = w_src[:, None]
    return ws
