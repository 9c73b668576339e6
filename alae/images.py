"""Reading what a user passes as images (files, PIL images, arrays, tensors) into model inputs,
and writing image grids."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, TypeAlias

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from .errors import UserError

MAX_PIXELS = 64 * 1024 * 1024  # larger images are refused before decoding, as decompression bombs
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # and Pillow itself refuses those beyond twice this, wherever it opens one
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # modes Pillow opens 16-bit grayscale PNGs in
PIXEL_SLACK = 1e-3  # float pixels may stray this far outside [0, 1] (rounding) before they are refused
# what a user may pass as images (`to_batch`): a file path, a PIL image, a list of either, a tensor or array
ImagesLike: TypeAlias = (str | os.PathLike | Image.Image | Sequence[str | os.PathLike | Image.Image]
                         | torch.Tensor | npt.ArrayLike)


def load_image(path: Path, resolution: int, channels: int) -> torch.Tensor:
    """One image file -> [channels, resolution, resolution] floats in [0, 1]: centre-cropped
    to a square, resized with a box filter, converted to grayscale or RGB.

    Grayscale, palette, RGBA and 16-bit images are converted (alpha dropped, 16-bit values
    scaled to [0, 1]); a file that is not a readable image, or has more than MAX_PIXELS
    pixels, is refused with a UserError.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    return to_input(*decode(path, channels), resolution, channels)


def to_input(img: Image.Image, peak: float, resolution: int, channels: int) -> torch.Tensor:
    """A decoded image (see `decode`) -> [channels, resolution, resolution] floats in [0, 1],
    centre-cropped to a square and resized with a box filter."""
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((resolution, resolution), Image.BOX)
    array = np.clip(np.asarray(img, dtype=np.float32) / peak, 0.0, 1.0).reshape(resolution, resolution, -1)
    if array.shape[2] != channels:  # 16-bit grayscale read as RGB
        array = np.repeat(array, channels, axis=2)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


def decode(path: Path | BinaryIO, channels: int, name: str | None = None,
           max_pixels: int = MAX_PIXELS) -> tuple[Image.Image, float]:
    """Decode an image file (a path or an open binary file called `name`) into mode L or RGB,
    or 16-bit grayscale into mode F; return it and its peak value.

    Any failure of the decoder on a damaged or hostile file, or more than `max_pixels`
    pixels, is a UserError naming the file.
    """
    name = name or path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > max_pixels:
                    raise UserError(f"cannot read image {name}: {img.width}x{img.height} pixels is more than "
                                    f"{max_pixels // 2**20} megapixels (a decompression bomb?)")
                img.load()
                return to_mode(img, channels)
    except UserError:
        raise
    except Exception as e:  # Pillow's decoders raise many types on damaged input
        reason = str(e).replace(f" {path!r}", "") or type(e).__name__  # Pillow names an open file by its repr
        raise UserError(f"cannot read image {name}: {reason}") from None


def to_mode(img: Image.Image, channels: int) -> tuple[Image.Image, float]:
    """A PIL image in mode L (channels 1) or RGB (3), or 16-bit grayscale in mode F; and its peak value."""
    if img.mode in SIXTEEN_BIT:
        return img.convert("F"), 65535.0
    return img.convert("L" if channels == 1 else "RGB"), 255.0


def load_images(paths: list[Path], resolution: int, channels: int) -> torch.Tensor:
    return torch.stack([load_image(p, resolution, channels) for p in paths])


def as_floats(x: torch.Tensor | npt.ArrayLike) -> torch.Tensor:
    """A tensor or array of pixels -> floats in [0, 1]: uint8 is divided by 255; floats must already
    lie in [0, 1] (a one-line UserError otherwise, e.g. for floats in 0-255)."""
    try:
        # a copy: arrays may be read-only (memory-mapped datasets), which torch warns about
        x = torch.as_tensor(np.array(x)) if not isinstance(x, torch.Tensor) else x.detach().cpu()
    except (TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"images must be a tensor, an array, a PIL image or image file paths; got {type(x).__name__} "
                        f"({str(e).splitlines()[0]})") from None
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise UserError(f"images must be uint8 (0-255) or floats in [0, 1], got {x.dtype}")
    x = x.float()
    if x.numel() and not torch.isfinite(x).all():
        raise UserError("images hold NaN or infinite values")
    if x.numel() and (x.min() < -PIXEL_SLACK or x.max() > 1 + PIXEL_SLACK):
        raise UserError(f"float images must lie in [0, 1] (pass uint8 for 0-255); these range from "
                        f"{x.min().item():g} to {x.max().item():g}")
    return x


def to_batch(x: ImagesLike, resolution: int, channels: int) -> torch.Tensor:
    """What a user passes as images -> floats [N, channels, H, W] in [0, 1].

    Accepted: an image file path; a PIL image; a list of either (each centre-cropped and resized
    to `resolution`); a tensor or array of uint8 (0-255) or floats in [0, 1], shaped [N, C, H, W],
    [C, H, W] (one image, C = `channels`), [N, H, W] (grayscale) or [H, W] (one grayscale image).
    Anything else is a one-line UserError.
    """
    if isinstance(x, (str, os.PathLike)):
        return load_image(Path(x), resolution, channels)[None]
    if isinstance(x, Image.Image):
        return to_input(*to_mode(x, channels), resolution, channels)[None]
    if isinstance(x, (list, tuple)) and x and all(isinstance(i, (str, os.PathLike, Image.Image)) for i in x):
        return torch.cat([to_batch(i, resolution, channels) for i in x])
    x = as_floats(x)
    if x.dim() == 2:
        x = x[None, None]
    elif x.dim() == 3:
        x = x[None] if channels > 1 and x.shape[0] == channels else x[:, None]
    if x.dim() != 4 or x.shape[1] != channels:
        raise UserError(f"images must be [N, {channels}, H, W] (or [{channels}, H, W], [N, H, W] or [H, W] where "
                        f"they fit), got {list(x.shape)}")
    return x


def save(image: Image.Image, out: Path) -> None:
    """Save a figure; the folder must exist and the format must be one Pillow writes."""
    out = Path(out)
    if not out.parent.is_dir():
        raise UserError(f"output folder does not exist: {out.parent}")
    try:
        image.save(out)
    except (ValueError, OSError) as e:
        raise UserError(f"cannot write {out}: {e}") from None
