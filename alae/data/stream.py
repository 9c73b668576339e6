"""The training images as one endless stream in a fixed order (Algorithm 1's minibatches of real data)."""

from __future__ import annotations

import numpy as np
import torch

from ..draws import derived_seed
from ..errors import UserError
from ..nn import downsample_to, fade_in


class DataStream:
    """Real images in a fixed order: stream position p is image rows[perm_(p // N)[p % N]], with
    `mirror` flipped horizontally where flips_(p // N)[p % N] (the reference's mirror augmentation).

    `images` is uint8 [M, C, H, W], in memory or memory-mapped; `rows` picks the N training
    images among them. Epoch k's permutation and flips come from the seed and k alone, so a
    resumed run sees the same images.
    """

    def __init__(self, images: np.ndarray, rows: np.ndarray, seed: int, device: torch.device, mirror: bool = False):
        self.images, self.rows, self.seed, self.device = images, torch.as_tensor(rows), seed, device
        self.mirror = mirror
        self._epoch, self._perm, self._flips = -1, None, None
        if len(rows) == 0:
            raise UserError("the training set is empty")

    def __len__(self) -> int:
        return len(self.rows)

    def _order(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Epoch `epoch`'s image rows in stream order, and which of them are flipped."""
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(derived_seed(self.seed, epoch))
            self._epoch, self._perm = epoch, self.rows[torch.randperm(len(self.rows), generator=gen)]
            self._flips = torch.randint(0, 2, (len(self.rows),), generator=gen).bool() if self.mirror else None
        return self._perm, self._flips

    def batch(self, start: int, size: int, resolution: int | None = None, blend: float = 1.0) -> torch.Tensor:
        """Images at stream positions [start, start + size) as floats in [0, 1].

        With `resolution` below the stored one they are averaged down to it; with
        `blend` < 1 they are blended with their copy at half that resolution, upsampled,
        as real images are while a new level fades in (section 5).
        """
        x = self._take(start, size)
        return fade_in(x if resolution is None else downsample_to(x, resolution), blend)

    def _take(self, start: int, size: int) -> torch.Tensor:
        n = len(self.rows)
        pos = torch.arange(start, start + size)
        epoch = pos.div(n, rounding_mode="floor")
        idx, flip = torch.empty(size, dtype=torch.long), torch.zeros(size, dtype=torch.bool)
        for k in epoch.unique().tolist():
            here = epoch == k
            perm, flips = self._order(k)
            idx[here] = perm[pos[here] % n]
            if flips is not None:
                flip[here] = flips[pos[here] % n]
        x = torch.from_numpy(np.ascontiguousarray(self.images[idx.numpy()]))
        if flip.any():
            x[flip] = x[flip].flip(-1)
        return x.to(self.device).float() / 255.0
