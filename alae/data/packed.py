"""`alae dataset make`: pack images once, at every power-of-two resolution, for streaming.

A packed dataset is a folder holding `r004.npy`, `r008.npy`, ... up to the full
resolution (uint8 [N, C, R, R] each, read memory-mapped so training never decodes an
image again), and `meta.json` with the resolution, channels, the fixed train/test split
(indices), the source, and the files that were skipped because they could not be read.
Lower resolutions are 2x2 box averages of the one above, as progressive growing sees
real images (section 5).

A dataset of known generating factors (`shapes`) also holds `factors.npy`: per image, the
grid index of its value of each factor (uint8 [N, K], memory-mapped like the images, so
the rows of a split index both), and `meta.json` names the factors and their values
(`"factors": [{"name": ..., "values": [...]}, ...]`). Datasets without it have no labels.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError
from ..images import SIXTEEN_BIT, load_image
from . import mnist, shapes

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
META = "meta.json"
FACTORS_FILE = "factors.npy"
FORMAT = "alae-packed-images"
SPLIT_SEED = 20200611
CHUNK = 1024
GRAY_MODES = {"1", "L", "LA", "F", *SIXTEEN_BIT}  # Pillow modes of grayscale files


def level_file(folder: Path, resolution: int) -> Path:
    return Path(folder) / f"r{resolution:04d}.npy"


def _mnist_family(name: str, resolution: int):
    if resolution != 32:
        raise UserError(f"{name} is packed at 32x32 (28x28 digits zero-padded); got --resolution {resolution}")
    parts = [mnist.load(split, "", name)[0] for split in ("train", "test")]
    images = np.pad(np.concatenate(parts), ((0, 0), (2, 2), (2, 2)))[:, None]
    n_train = len(parts[0])
    return images, 1, {"train": list(range(n_train)), "test": list(range(n_train, len(images)))}, []


def is_grayscale(path: Path) -> bool:
    """Whether an image file stores gray levels only (read from its header; a palette of grays counts).
    An unreadable file counts as gray: it is skipped when packed and must not decide the channels."""
    try:
        with Image.open(path) as img:
            if img.mode == "P":
                palette = np.asarray(img.getpalette() or [], dtype=np.int64).reshape(-1, 3)
                return bool((palette == palette[:, :1]).all())
            return img.mode in GRAY_MODES
    except Exception:  # Pillow raises many types on damaged files
        return True


def _folder(src: Path, out: Path, resolution: int, channels: int | None, test_fraction: float):
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"no image files (jpg, png, webp, bmp) in {src}")
    if channels is None:
        channels = 1 if all(map(is_grayscale, files)) else 3
    full = np.lib.format.open_memmap(level_file(out, resolution), mode="w+", dtype=np.uint8,
                                     shape=(len(files), channels, resolution, resolution))
    kept, skipped = 0, []
    for path in files:
        try:
            image = load_image(path, resolution, channels)
        except UserError as e:
            skipped.append({"file": str(path.relative_to(src)), "why": str(e).split(": ", 1)[-1]})
            continue
        full[kept] = (image.numpy() * 255).round().astype(np.uint8)
        kept += 1
    if not kept:
        raise UserError(f"none of the {len(files)} image files in {src} could be read")
    full.flush()
    del full
    if kept < len(files):  # drop the rows of skipped files
        path, tmp = level_file(out, resolution), out / "kept.npy"
        np.save(tmp, np.load(path, mmap_mode="r")[:kept])
        tmp.replace(path)
    return None, channels, random_split(kept, test_fraction), skipped


def random_split(count: int, test_fraction: float) -> dict[str, list[int]]:
    """A fixed random share of `count` images held out for testing, the rest for training."""
    order = np.random.default_rng(SPLIT_SEED).permutation(count)
    n_test = int(round(count * test_fraction))
    return {"train": sorted(order[n_test:].tolist()), "test": sorted(order[:n_test].tolist())}


def _shapes(out: Path, resolution: int, test_fraction: float, keep: dict | None) -> tuple[dict, list[dict]]:
    """Render the shapes factor grid (`shapes.grid`, or the values `keep` names) into `out`
    with its factor labels; return the split and the factor table."""
    indices = shapes.grid(keep)
    full = np.lib.format.open_memmap(level_file(out, resolution), mode="w+", dtype=np.uint8,
                                     shape=(len(indices), 1, resolution, resolution))
    shapes.render_into(full, indices, resolution)
    full.flush()
    del full
    np.save(out / FACTORS_FILE, indices)
    return random_split(len(indices), test_fraction), shapes.factor_table()


def make(src: str, out: Path, resolution: int | None, channels: int | None = None, test_fraction: float = 0.1,
         force: bool = False, keep: dict[str, list[int]] | None = None) -> dict:
    """Pack `src` (a folder of images, 'mnist' / 'fashion-mnist', or 'shapes') into `out`; return
    the summary. `resolution` None is 32 for the named sets; `channels` None packs a folder whose
    files are all grayscale with 1 channel, any other with 3; `keep` picks factor values of shapes."""
    out = Path(out)
    if resolution is None:
        if src not in (*mnist.DATASETS, "shapes"):
            raise UserError("--resolution is needed for a folder of images (a power of two)")
        resolution = 32
    if resolution < 4 or resolution > 1024 or resolution & (resolution - 1):
        raise UserError(f"--resolution must be a power of two from 4 to 1024, got {resolution}")
    if channels not in (None, 1, 3):
        raise UserError(f"--channels must be 1 or 3, got {channels}")
    if not 0.0 <= test_fraction < 1.0:
        raise UserError(f"--test-fraction must lie in [0, 1), got {test_fraction}")
    if src == "shapes" and resolution not in shapes.RESOLUTIONS:
        raise UserError(f"shapes are rendered at 32x32 or 64x64; got --resolution {resolution}")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UserError(f"{out} already exists: pass --force to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    factors = None
    if src in mnist.DATASETS:
        images, channels, split, skipped = _mnist_family(src, resolution)
        np.save(level_file(out, resolution), images)
    elif src == "shapes":
        channels, skipped = 1, []
        split, factors = _shapes(out, resolution, test_fraction, keep)
    else:
        if not Path(src).is_dir():
            raise UserError(f"dataset source not found: {src} (a folder of images, or one of "
                            f"{', '.join(mnist.DATASETS)}, shapes)")
        _, channels, split, skipped = _folder(Path(src), out, resolution, channels, test_fraction)
    _downsample_all(out, resolution)
    meta = {"format": FORMAT, "version": 1, "source": str(src), "resolution": resolution, "channels": channels,
            "count": len(split["train"]) + len(split["test"]), "split": split, "skipped": skipped}
    if factors is not None:
        meta["factors"] = factors
    (out / META).write_text(json.dumps(meta))
    return {k: v for k, v in meta.items() if k != "split"} | {"train": len(split["train"]), "test": len(split["test"])}


def _downsample_all(out: Path, resolution: int) -> None:
    """Write each lower power-of-two resolution as 2x2 box averages of the one above, in chunks."""
    while resolution > 4:
        above = np.load(level_file(out, resolution), mmap_mode="r")
        half = resolution // 2
        below = np.lib.format.open_memmap(level_file(out, half), mode="w+", dtype=np.uint8,
                                          shape=(len(above), above.shape[1], half, half))
        for start in range(0, len(above), CHUNK):
            block = above[start:start + CHUNK].astype(np.float32)
            block = block.reshape(len(block), block.shape[1], half, 2, half, 2).mean(axis=(3, 5))
            below[start:start + CHUNK] = np.round(block).astype(np.uint8)
        below.flush()
        del below
        resolution = half


def meta(folder: Path) -> dict:
    """The meta.json of a packed dataset (format, resolution, channels, split, skipped files)."""
    meta_file = Path(folder) / META
    if not meta_file.is_file():
        raise UserError(f"{folder} is not a packed dataset (no {META}); make one with `alae dataset make`")
    try:
        data = json.loads(meta_file.read_text())
    except ValueError as e:
        raise UserError(f"{meta_file} is damaged (not JSON: {e}); make the dataset again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{meta_file} is not an alae packed dataset")
    missing = [k for k in ("resolution", "channels", "split") if k not in data]
    if missing:
        raise UserError(f"{meta_file} is damaged (lacks {', '.join(missing)}); make the dataset again")
    return data


def read(folder: Path, resolution: int, part: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(all images at `resolution`, memory-mapped; indices of the `part`, 'train' or 'test')."""
    folder = Path(folder)
    info = meta(folder)
    path = level_file(folder, resolution)
    if resolution > info["resolution"] or not path.is_file():
        raise UserError(f"{folder} has no {resolution}x{resolution} images (packed up to {info['resolution']})")
    try:
        images = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as e:
        raise UserError(f"cannot read {path}: {e}; make the dataset again") from None
    if images.dtype != np.uint8 or images.shape[1:] != (info["channels"], resolution, resolution):
        raise UserError(f"{path} holds {images.dtype} {images.shape[1:]}, not uint8 images "
                        f"({info['channels']}, {resolution}, {resolution}); make the dataset again")
    rows = np.asarray(info["split"][part], dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(images)):
        raise UserError(f"{folder / META}: the {part} split names images beyond the {len(images)} in {path}")
    return images, rows


@dataclass
class Factors:
    """The generating factors of a packed dataset's images."""

    names: list[str]          # factor names, e.g. shape, scale, orientation, x, y
    values: list[list]        # each factor's values (strings for a categorical factor, numbers otherwise)
    indices: np.ndarray       # [M, K] integers, memory-mapped: image m has value values[k][indices[m, k]]


def factors(folder: Path) -> Factors | None:
    """The factor labels of a packed dataset, indexed like its images; None for a dataset without."""
    folder = Path(folder)
    info = meta(folder)
    if "factors" not in info:
        return None
    table, path = info["factors"], folder / FACTORS_FILE
    if not (isinstance(table, list) and table and all(
            isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("values"), list)
            and f["values"] for f in table)):
        raise UserError(f"{folder / META} is damaged (its factors are not a list of names and values); "
                        f"make the dataset again")
    try:
        indices = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as e:
        raise UserError(f"cannot read the factor labels {path}: {e}; make the dataset again") from None
    if indices.dtype.kind not in "iu" or indices.shape != (info.get("count"), len(table)):
        raise UserError(f"{path} holds {indices.dtype} {indices.shape}, not integer labels "
                        f"({info.get('count')}, {len(table)}); make the dataset again")
    sizes = np.array([len(f["values"]) for f in table])
    if len(indices) and (indices.min() < 0 or (indices.max(axis=0) >= sizes).any()):
        raise UserError(f"{path} names factor values beyond those in {folder / META}; make the dataset again")
    return Factors([f["name"] for f in table], [f["values"] for f in table], indices)
