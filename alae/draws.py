"""Every random draw of a training step, taken through one object (section 5, Algorithm 1).

A step of ALAE draws its latent codes z, the second code z' and the crossover of style
mixing, and the per-pixel noise inputs of the style G. The steps (`alae.losses`), the
style-mixing regularisation (`ALAE.styles`) and G's noise inputs (`alae.nn.NoiseInput`)
take each of these from `current()`, an instance of `Draws`: by default the one below,
which draws from torch's generators, so training is a function of the per-step seed
(`alae.training`). Another instance installed with `using` replaces every draw, e.g. by
draws recorded from the authors' code to replay one of their iterations
(tests/test_iteration_conformance.py); subclasses override the methods they replace.

Draws of a batch go through `dist.randn_rows`: under data-parallel training each process
takes its rows of one draw for the global batch.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch

from .dist import randn_rows


class Draws:
    """Draws from torch's global generators, in the order a step asks for them."""

    def z(self, n: int, latent_size: int) -> torch.Tensor:
        """A step's z ~ N(0, I) [n, latent_size], drawn on the CPU so that a run draws alike on any device."""
        return randn_rows(n, latent_size)

    def mixes(self, prob: float) -> bool:
        """Whether this batch mixes styles (probability `prob`: style_mixing_prob)."""
        return bool(torch.rand(()) < prob)

    def z2(self, z: torch.Tensor) -> torch.Tensor:
        """The second code z' of style mixing, shaped, placed and typed as z."""
        return randn_rows(*z.shape, device=z.device, dtype=z.dtype)

    def crossover(self, styles_now: int) -> int:
        """Style inputs with index below the crossover take F(z), the others F(z'): uniform on
        [1, styles_now], styles_now the number G uses at the current level, 2 (level + 1)."""
        return int(torch.randint(1, styles_now + 1, ()))

    def noise(self, x: torch.Tensor, shared: bool) -> torch.Tensor:
        """N(0, 1) noise for map x [N, C, H, W]: [N, 1, H, W], one map per image, or with `shared`
        [1, 1, H, W], one map for the batch (G's constant input, as the reference), drawn alike
        by every process."""
        if shared:
            return torch.randn(1, 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        return randn_rows(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)


def derived_seed(seed: int, k: int) -> int:
    """The seed of stream k of a run seeded `seed`: seed * 1,000,003 + k. Streams are a training
    step (k: images seen), an epoch's data order (k: the epoch) or a metric's batch (k: its first
    index); those of one run differ, and so do those of runs with different seeds."""
    return seed * 1_000_003 + k


_DEFAULT = Draws()
_current: contextvars.ContextVar[Draws | None] = contextvars.ContextVar("draws", default=None)


def current() -> Draws:
    """The draws of the step now running."""
    return _current.get() or _DEFAULT


@contextlib.contextmanager
def using(draws: Draws) -> Iterator[Draws]:
    """Within this block every training draw comes from `draws`."""
    token = _current.set(draws)
    try:
        yield draws
    finally:
        _current.reset(token)
