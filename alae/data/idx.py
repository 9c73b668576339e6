"""Reader for the idx format of MNIST and Fashion-MNIST (optionally gzipped), with checksums."""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from pathlib import Path

import numpy as np

from ..errors import UserError

# idx magic: two zero bytes, a type code, the number of dimensions; 0x08 is unsigned byte.
_UBYTE = 0x08
MAX_DIMS = 16  # more dimensions than any idx data set has, fewer than numpy's limit


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(folder: Path, sums_file: Path) -> None:
    """Check every file named in a `sha256sum`-style list; raise naming the first mismatch."""
    for line in sums_file.read_text().splitlines():
        expected, name = line.split()
        path = folder / name
        if not path.is_file():
            raise UserError(f"missing data file {path}")
        if sha256(path) != expected:
            raise UserError(f"checksum mismatch for {path}: the file is damaged or not the original")


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file of unsigned bytes into an array of its stored shape.

    A damaged file (bad gzip stream, wrong magic number, truncated header, body of the wrong
    length) is refused with a UserError saying what is wrong.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"cannot read idx file {path}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _UBYTE:
        raise UserError(f"{path} is not an idx file of unsigned bytes (wrong magic number)")
    ndim = data[3]
    if ndim > MAX_DIMS:
        raise UserError(f"{path}: idx header gives {ndim} dimensions, more than {MAX_DIMS}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{path}: idx header is truncated")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = math.prod(shape)
    if len(data) - header != size:
        raise UserError(f"{path}: idx body has {len(data) - header} bytes, its header says {size}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
