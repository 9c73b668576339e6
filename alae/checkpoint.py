"""Checkpoints: tensors in safetensors, everything else as JSON in its metadata; atomic writes.

One file per checkpoint, `RUN/checkpoints/ckpt-NNNNNNNNN.safetensors` (images seen), so a
checkpoint is either whole or absent: it is written to a temporary file, flushed,
fsynced and renamed. Loading never unpickles anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import UserError

FORMAT = "alae-checkpoint"
FORMAT_VERSION = 1
PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # a pickle's protocol opcode; torch.save's zip container


def checkpoint_dir(run: Path) -> Path:
    return Path(run) / "checkpoints"


def list_checkpoints(run: Path) -> list[Path]:
    return sorted(checkpoint_dir(run).glob("ckpt-*.safetensors"))


def latest(run: Path) -> Path:
    found = list_checkpoints(run)
    if not found:
        raise UserError(f"no checkpoint in {checkpoint_dir(run)}")
    return found[-1]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def save(run: Path, images: int, tensors: dict[str, torch.Tensor], meta: dict, keep: int) -> Path:
    """Write checkpoint `ckpt-<images>` and delete all but the newest `keep`."""
    folder = checkpoint_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "meta": json.dumps(meta)}
    path = folder / f"ckpt-{images:012d}.safetensors"
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    write_atomic(path, st_save(contiguous, metadata=header))
    for old in list_checkpoints(run)[:-keep]:
        old.unlink()
    return path


def _safetensors_header(data: bytes) -> dict | None:
    """The JSON header of a safetensors file (8-byte little-endian length, then JSON), or None."""
    size = int.from_bytes(data[:8], "little")
    if len(data) < 8 or size > len(data) - 8:
        return None
    try:
        header = json.loads(data[8: 8 + size])
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint; refuse pickles, truncated files and other formats with a clear message."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    header = _safetensors_header(data)
    if header is None:
        if data[:4] == PICKLE_MAGIC[1] or data[:1] == PICKLE_MAGIC[0]:
            raise UserError(f"{path} is a pickle; alae loads only safetensors checkpoints and never unpickles")
        raise UserError(f"{path} is not a readable checkpoint (truncated or damaged): no safetensors header")
    try:
        tensors = st_load(data)
    except SafetensorError as e:
        raise UserError(f"{path} is not a readable checkpoint (truncated or damaged): {e}") from None
    header = header.get("__metadata__") or {}
    if header.get("format") != FORMAT:
        raise UserError(f"{path} is a safetensors file but not an alae checkpoint")
    version = int(header.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise UserError(f"{path} has checkpoint format {version}; this alae reads up to {FORMAT_VERSION}: upgrade alae")
    return tensors, json.loads(header["meta"])


def load_into(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, origin: Path) -> None:
    """Copy `prefix`-ed tensors into `module`, naming any missing, unexpected or misshapen entry."""
    own = module.state_dict()
    given = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(own) - set(given))
    extra = sorted(set(given) - set(own))
    if missing or extra:
        raise UserError(f"{origin} does not match this architecture: missing {missing[:3]}, unexpected {extra[:3]}")
    for name, value in given.items():
        if value.shape != own[name].shape:
            raise UserError(f"{origin}: {prefix}{name} has shape {tuple(value.shape)}, the model expects {tuple(own[name].shape)}")
    module.load_state_dict(given)


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], list]:
    """Split an optimizer's state into tensors (for safetensors) and its JSON-able param groups."""
    sd = opt.state_dict()
    tensors = {f"{prefix}{idx}.{key}": torch.as_tensor(val) for idx, st in sd["state"].items() for key, val in st.items()}
    return tensors, sd["param_groups"]


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str, groups: list) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, name = key[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})
