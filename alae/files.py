"""Writing files so that a crash leaves either the old file or the new one, never a torn one."""

from __future__ import annotations

import os
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def temporary_path(path: Path) -> Path:
    """Where `write_atomic` stages `path`: a hidden file beside it, never taken for the file itself,
    named by this process so that processes writing the same file do not share one."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` by a temporary file beside it, flushed, fsynced and renamed into place.

    On an OSError the temporary file is removed and the error propagates.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
