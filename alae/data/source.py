"""The images a config trains and is judged on: the MNIST family or a packed dataset, at the model's size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..errors import UserError
from . import mnist, packed


def images(cfg: Config, part: str = "train") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(images uint8 [M, C, R, R], rows of the `part` ('train' or 'test') among them, their labels or None).

    The MNIST family's 28x28 images are zero-padded to the model's resolution
    and labelled; with `data.split: sw` both parts come from the official training set:
    the 50k train and 10k test rows of Table 2's SW protocol (`mnist.sw_indices`). A folder
    made by `alae dataset make` is read at the model's resolution, memory-mapped, and has
    no labels.
    """
    if cfg.data.dataset not in mnist.DATASETS:
        data, rows = packed.read(Path(cfg.data.dataset), cfg.model.resolution, part)
        if data.shape[1] != cfg.model.channels:
            raise UserError(f"{cfg.data.dataset} has {data.shape[1]} channels, model.channels is {cfg.model.channels}")
        return data, rows, None
    data, labels = mnist.load("train" if cfg.data.split == "sw" else part, cfg.data.root, cfg.data.dataset)
    rows = mnist.sw_indices(len(data))[part == "test"] if cfg.data.split == "sw" else np.arange(len(data))
    pad = cfg.model.resolution - 28
    if pad < 0 or cfg.model.channels != 1:
        raise UserError(f"{cfg.data.dataset} is 28x28 grayscale: set model.resolution >= 28 and model.channels 1")
    sides = (pad // 2, pad - pad // 2)
    return np.pad(data, ((0, 0), sides, sides))[:, None], rows, labels


def pick(labels: np.ndarray | None, count: int, n: int, offset: int = 0) -> list[int]:
    """n indices among `count` images for a figure: with labels, classes offset, offset + 1, ...
    (mod 10), each the (offset // 10)-th image of its class; without, evenly spaced from offset."""
    if labels is None:
        return [(offset + i * max(count // n, 1)) % count for i in range(n)]
    return [int(np.flatnonzero(labels == (offset + i) % 10)[offset // 10]) for i in range(n)]


def figure_images(cfg: Config, n: int, offset: int = 0) -> torch.Tensor:
    """n held-out test images (see `pick`) as [n, C, R, R] floats in [0, 1]."""
    data, rows, labels = images(cfg, "test")
    chosen = rows[pick(labels, len(rows), n, offset)]
    return torch.from_numpy(np.asarray(data[chosen], dtype=np.float32) / 255.0)
