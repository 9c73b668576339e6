"""Image sets named on the command line, for metrics that compare two sets (`alae fid A B`).

A set is `mnist:train`, `mnist:test`, `fashion-mnist:train`, `fashion-mnist:test` (28x28
digits as distributed), a dataset folder made by `alae dataset make` (its training part at
its full resolution; `FOLDER:test` for the held-out part), or a folder of image files
(searched recursively, each at its own size, converted to RGB). Each set has a content key:
a digest of its pixels or file bytes, so statistics computed from it can be cached safely.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import UserError
from ..images import decode
from ..nn import downsample_to
from . import mnist, packed

KEY_CHUNK = 4096  # images hashed per read


@dataclass
class ImageSet:
    name: str
    count: int
    content_key: str
    read: Callable[[int, int], torch.Tensor | list[torch.Tensor]]  # (start, stop) -> uint8 images



def array_set(name: str, images: np.ndarray, rows: np.ndarray, size: int | None = None) -> ImageSet:
    """Rows of a uint8 array [M, C, H, W] (possibly memory-mapped), averaged down to `size`
    pixels a side (rounded back to uint8) when that is smaller than H."""
    factor = images.shape[-1] // size if size else 1
    digest = hashlib.sha256(f"{images.shape[1:]}|{len(rows)}|{factor}".encode())
    for start in range(0, len(rows), KEY_CHUNK):
        digest.update(np.ascontiguousarray(images[rows[start:start + KEY_CHUNK]]).tobytes())

    def read(a: int, b: int) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images[rows[a:b]]))
        return x if factor <= 1 else downsample_to(x.float(), size).round().to(torch.uint8)
    return ImageSet(name, len(rows), digest.hexdigest(), read)


def read_file(path: Path) -> torch.Tensor:
    """An image file at its own size as uint8 RGB [3, H, W] (16-bit images scaled to 8 bits)."""
    img, peak = decode(path, 3)
    array = np.clip(np.round(np.asarray(img, dtype=np.float32) * (255.0 / peak)), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


def file_set(folder: Path, limit: int | None = None) -> ImageSet:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in packed.IMAGE_SUFFIXES)[:limit]
    if not files:
        raise UserError(f"no image files (jpg, png, webp, bmp) in {folder}")
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return ImageSet(str(folder), len(files), digest.hexdigest(), lambda a, b: [read_file(p) for p in files[a:b]])


def open_set(spec: str, limit: int | None = None) -> ImageSet:
    """The image set a command-line argument names (see the module docstring), its first `limit` images."""
    name, _, part = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if name in mnist.DATASETS:
        if part not in ("train", "test"):
            raise UserError(f"{spec}: name a part, {name}:train or {name}:test")
        images, _ = mnist.load(part, "", name)
        return array_set(spec, images[:, None], np.arange(len(images))[:limit])
    folder = Path(name if part in ("train", "test") else spec)
    if not folder.is_dir():
        raise UserError(f"image set not found: {spec} (a folder, or mnist:train, mnist:test, fashion-mnist:test, ...)")
    if (folder / packed.META).is_file():
        resolution = packed.meta(folder)["resolution"]
        images, rows = packed.read(folder, resolution, part or "train")
        return array_set(spec, images, rows[:limit])
    return file_set(folder, limit)
