"""The MNIST family (MNIST, Fashion-MNIST): the bundled canonical idx files, checksum-verified; the splits of Table 2."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import UserError
from .idx import read_idx, verify

BUNDLED = Path(__file__).parent / "bundled"
DATASETS = ("mnist", "fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SW_SEED = 20200101  # fixed seed of the same-writers split of the official train set


@lru_cache(maxsize=4)
def load(split: str, root: str = "", dataset: str = "mnist") -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 [N, 28, 28], labels int64 [N]) of the official `split` of `dataset`.

    `root` is a folder with the four idx files; empty means the bundled copy, whose
    checksums are verified before use.
    """
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r} (datasets: {', '.join(DATASETS)})")
    if split not in FILES:
        raise UserError(f"unknown {dataset} split {split!r} (splits: train, test)")
    folder = Path(root) if root else BUNDLED / dataset
    if not root:
        verify(folder, folder / "SHA256SUMS")
    images_file, labels_file = (folder / name for name in FILES[split])
    for path in (images_file, labels_file):
        if not path.is_file():
            raise UserError(f"{dataset} file not found: {path}")
    images = read_idx(images_file)
    labels = read_idx(labels_file).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{dataset} {split} files in {folder} disagree: {images.shape} images, {labels.shape} labels")
    return images, labels


def sw_indices(n: int = 60_000) -> tuple[np.ndarray, np.ndarray]:
    """Indices into the official train set of the SW train (first 50k) and test (last 10k) parts."""
    order = np.random.default_rng(SW_SEED).permutation(n)
    return order[:n - 10_000], order[n - 10_000:]


def table2_split(protocol: str, root: str = "") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The train/test sets of Table 2 (section 7.1).

    DW ("different writers"): the official 60k train and 10k test sets.
    SW ("same writers"): the official train set split 50k / 10k with a fixed seed;
    the official test set is not used.
    """
    train = load("train", root)
    if protocol == "DW":
        return {"train": train, "test": load("test", root)}
    if protocol == "SW":
        tr, te = sw_indices(len(train[0]))
        return {"train": (train[0][tr], train[1][tr]), "test": (train[0][te], train[1][te])}
    raise UserError(f"unknown Table 2 protocol {protocol!r} (SW or DW)")
