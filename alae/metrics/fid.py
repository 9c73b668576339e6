"""Fréchet Inception Distance (Heusel et al. 2017), as in the paper's Table 3 (section 7.2).

FID = ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) between Gaussians fitted to the
Inception features of two image sets. Feature statistics accumulate in float64 batch by
batch (sum and sum of outer products), can be merged across processes, and those of a real
dataset are cached on disk keyed by the images' content and the network file.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch

from .. import dist
from ..files import write_atomic


class FeatureStats:
    """Running sums of features: count, sum, sum of outer products (float64)."""

    def __init__(self, dim: int = 2048):
        self.count = 0
        self.total = torch.zeros(dim, dtype=torch.float64)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64)

    def add(self, features: torch.Tensor) -> None:
        f = features.double().cpu()
        self.count += len(f)
        self.total += f.sum(0)
        self.outer += f.T @ f

    def sum_all(self) -> "FeatureStats":
        """The statistics of all processes' features together (alae.dist)."""
        out = FeatureStats(len(self.total))
        out.count = int(dist.sum_all(torch.tensor(self.count)))
        out.total, out.outer = dist.sum_all(self.total), dist.sum_all(self.outer)
        return out

    def gaussian(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and unbiased covariance of the features seen."""
        if self.count < 2:
            raise ValueError("FID needs at least two images per set")
        mu = self.total / self.count
        sigma = (self.outer - self.count * torch.outer(mu, mu)) / (self.count - 1)
        return mu.numpy(), sigma.numpy()


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

    tr((S1 S2)^(1/2)) is the sum of square roots of the eigenvalues of S1 S2, which equal
    those of the symmetric positive semi-definite R^T S2 R for any R with R R^T = S1: the
    Cholesky factor when S1 is positive definite, else R = S1^(1/2) from a symmetric
    eigendecomposition. Negative rounding noise in the eigenvalues is clipped to 0.
    """
    s1, s2 = torch.as_tensor(sigma1, dtype=torch.float64), torch.as_tensor(sigma2, dtype=torch.float64)
    root, info = torch.linalg.cholesky_ex(s1)
    if info != 0:
        vals, vecs = torch.linalg.eigh(s1)
        root = (vecs * vals.clamp(min=0).sqrt()) @ vecs.T
    middle = root.T @ s2 @ root
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum().item()
    diff = np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def fid_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    return frechet_distance(*a.gaussian(), *b.gaussian())


# -- cache of real-data statistics ---------------------------------------------------
def cache_dir() -> Path:
    """$ALAE_CACHE, else $XDG_CACHE_HOME/alae, else ~/.cache/alae."""
    if os.environ.get("ALAE_CACHE"):
        return Path(os.environ["ALAE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "alae"



def stats_path(content_key: str, network: Path) -> Path:
    """Cache file for the statistics of images with `content_key` under the network file `network`."""
    stat = Path(network).stat()
    key = hashlib.sha256(f"{content_key}|{Path(network).resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    return cache_dir() / "fid-stats" / f"{key[:32]}.pt"


def load_stats(path: Path) -> FeatureStats | None:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, weights_only=True)
        stats = FeatureStats(len(data["total"]))
        stats.count, stats.total, stats.outer = int(data["count"]), data["total"], data["outer"]
        return stats
    except Exception:  # a damaged cache entry is recomputed
        return None


def save_stats(path: Path, stats: FeatureStats) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"count": torch.tensor(stats.count), "total": stats.total, "outer": stats.outer}, buffer)
    write_atomic(path, buffer.getvalue())
