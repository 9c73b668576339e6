"""Perceptual path length (StyleGAN, Karras et al. 2019, section 4.1), the paper's Table 4.

For endpoint pairs z0, z1 ~ N(0, I) and t on the path, PPL is the mean of
    d(G(p(t)), G(p(t + eps))) / eps^2,   eps = 1e-4,
with p the spherical interpolation of the normalised z (space "z", then mapped by F) or the
linear interpolation of w0 = F(z0), w1 = F(z1) (space "w"); t ~ U[0, 1] ("full") or
t in {0, 1} ("end"; StyleGAN's code takes t = 0, which by the symmetry z0 <-> z1 has the
same distribution to first order in eps). Both images of a pair get the same noise inputs.
d is LPIPS-VGG16 on images in [-1, 1], optionally centre-cropped (faces) and averaged down
to at most 256x256. Values outside the 1st-99th percentile are dropped before the mean.
Every draw depends on (seed, pair index) only, so the pairs can be split across processes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..draws import derived_seed
from ..nn import downsample_to

EPSILON = 1e-4
SPACES = ("z", "w")
SAMPLINGS = ("full", "end")


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between the directions of a and b (unit-length result)."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(-1, keepdim=True).clamp(-1, 1)
    p = t[:, None] * torch.acos(d)
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    return a * torch.cos(p) + c * torch.sin(p)


def endpoints(start: int, stop: int, latent: int, sampling: str, seed: int) -> tuple[torch.Tensor, ...]:
    """z0, z1 [n, latent], t [n] and a noise seed for pairs start .. stop - 1, from (seed, start)."""
    gen = torch.Generator().manual_seed(derived_seed(seed, start))
    n = stop - start
    z0 = torch.randn(n, latent, generator=gen, dtype=torch.float64)
    z1 = torch.randn(n, latent, generator=gen, dtype=torch.float64)
    if sampling == "full":
        t = torch.rand(n, generator=gen, dtype=torch.float64)
    else:
        t = torch.randint(0, 2, (n,), generator=gen).double()
    return z0, z1, t, int(torch.randint(0, 2**31 - 1, (1,), generator=gen))


def prepare(images: torch.Tensor, crop: bool) -> torch.Tensor:
    """G's [0, 1] images -> LPIPS input in [-1, 1]: StyleGAN's face crop if asked, then at most 256x256."""
    if crop:
        c = images.shape[2] // 8
        images = images[:, :, c * 3:c * 7, c * 2:c * 6]
    return downsample_to(images, 256) * 2 - 1


def path_lengths(generate: Callable[[torch.Tensor], torch.Tensor], mapping: Callable[[torch.Tensor], torch.Tensor],
                 distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], latent: int, space: str,
                 sampling: str, start: int, stop: int, seed: int = 0, eps: float = EPSILON,
                 crop: bool = False) -> torch.Tensor:
    """d / eps^2 for pairs start .. stop - 1; generate: w -> images in [0, 1], mapping: z -> w."""
    z0, z1, t, noise_seed = endpoints(start, stop, latent, sampling, seed)
    if space == "z":
        w_a, w_b = mapping(slerp(z0, z1, t).float()), mapping(slerp(z0, z1, t + eps).float())
    else:
        w0, w1 = mapping(z0.float()).double(), mapping(z1.float()).double()
        w_a, w_b = torch.lerp(w0, w1, t[:, None]).float(), torch.lerp(w0, w1, (t + eps)[:, None]).float()
    images = []
    for w in (w_a, w_b):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(noise_seed)
            images.append(prepare(generate(w), crop))
    return distance(*images).double().cpu() / eps**2


def trimmed_mean(values: np.ndarray) -> float:
    """Mean of the values between the 1st and 99th percentiles (inclusive)."""
    lo, hi = np.percentile(values, 1, method="lower"), np.percentile(values, 99, method="higher")
    return float(values[(values >= lo) & (values <= hi)].mean())
