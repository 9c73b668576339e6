"""Reading a user's image files into model inputs, and writing image grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import UserError

Image.MAX_IMAGE_PIXELS = 64 * 1024 * 1024  # refuse decompression bombs beyond 64 megapixels


def load_image(path: Path, resolution: int, channels: int) -> torch.Tensor:
    """One image file -> [channels, resolution, resolution] floats in [0, 1]: centre-cropped
    to a square, resized with a box filter, converted to grayscale or RGB."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            img = img.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise UserError(f"cannot read image {path}: {e}") from None
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((resolution, resolution), Image.BOX)
    array = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(array.reshape(resolution, resolution, channels)).permute(2, 0, 1)


def load_images(paths: list[Path], resolution: int, channels: int) -> torch.Tensor:
    return torch.stack([load_image(p, resolution, channels) for p in paths])


def save(image: Image.Image, out: Path) -> None:
    """Save a figure; the folder must exist and the format must be one Pillow writes."""
    out = Path(out)
    if not out.parent.is_dir():
        raise UserError(f"output folder does not exist: {out.parent}")
    try:
        image.save(out)
    except (ValueError, OSError) as e:
        raise UserError(f"cannot write {out}: {e}") from None
