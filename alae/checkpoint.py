"""Checkpoints: tensors in safetensors, everything else as JSON in its metadata; atomic writes.

One file per checkpoint, `ckpt-NNNNNNNNNNNN.safetensors` (images seen) in a run's checkpoint
folder (`alae.run.Run.checkpoint_dir`), so a
checkpoint is either whole or absent: it is written to a temporary file, flushed,
fsynced and renamed. A temporary file left by a killed write is never taken for a
checkpoint and is removed by the next save; a failed write (disk full, read-only
folder) removes its temporary file and leaves the previous checkpoints as they were.
Loading never unpickles anything. The metadata names the checkpoint format version
(a checkpoint without one is format 1) and the alae version that wrote it.
"""

from __future__ import annotations

import json
import os
import sys
from importlib.metadata import version as package_version
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import Config, from_dict
from .errors import UserError
from .files import TEMP_SUFFIX, write_atomic

FORMAT = "alae-checkpoint"
FORMAT_VERSION = 1
PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # a pickle's protocol opcode; torch.save's zip container
LEGACY_BUFFERS = ("w_avg",)  # buffers that checkpoints written before alae recorded its version lack


def list_checkpoints(folder: Path) -> list[Path]:
    """The checkpoints in `folder` (a run's `Run.checkpoint_dir`), oldest first."""
    return sorted(Path(folder).glob("ckpt-*.safetensors"))


def latest(folder: Path) -> Path:
    """The newest whole checkpoint in `folder` (temporary files of unfinished writes are not checkpoints).

    A newest checkpoint that is truncated or has no readable header (damaged after it was
    written) is passed over for the next older whole one, with a one-line warning naming
    it; if none is whole, reading the newest raises its error."""
    found = list_checkpoints(folder)
    if not found:
        raise UserError(f"no checkpoint in {folder}")
    for path in reversed(found):
        if is_whole(path):
            if path != found[-1]:
                damaged = ", ".join(p.name for p in found[found.index(path) + 1:])
                print(f"warning: damaged checkpoint {damaged} in {folder}; using {path.name}", file=sys.stderr)
            return path
    load(found[-1])  # raises the reason it cannot be read
    return found[-1]


def is_whole(path: Path) -> bool:
    """Whether a checkpoint file holds its whole safetensors header and every byte the header
    promises (a check of its length, without reading the tensors)."""
    try:
        with open(path, "rb") as f:
            prefix = f.read(8)
            size = int.from_bytes(prefix, "little")
            header = _safetensors_header(prefix + f.read(size))
            length = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if header is None:
        return False
    ends = [v["data_offsets"][1] for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and isinstance(v.get("data_offsets"), list)]
    return length == 8 + size + max(ends, default=0)


def alae_version() -> str:
    return package_version("alae")


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def checkpoint_path(folder: Path, images: int) -> Path:
    """Where the checkpoint after `images` training images is written in `folder`."""
    return Path(folder) / f"ckpt-{images:012d}.safetensors"


def images_of(path: Path) -> int:
    """The training images seen when checkpoint `path` (named by `checkpoint_path`) was written."""
    return int(Path(path).stem.removeprefix("ckpt-"))


def save(folder: Path, images: int, tensors: dict[str, torch.Tensor], meta: dict, keep: int) -> Path:
    """Write checkpoint `ckpt-<images>` into `folder` and delete all but the newest `keep`.

    A failed write raises a UserError and leaves the checkpoints already there intact.
    """
    folder = Path(folder)
    path = checkpoint_path(folder, images)
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "alae_version": alae_version(),
              "meta": json.dumps(meta)}
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f".ckpt-*{TEMP_SUFFIX}"):
            stale.unlink()
        write_atomic(path, st_save(contiguous, metadata=header))
    except OSError as e:
        raise UserError(f"cannot write checkpoint {path}: {_reason(e)}") from None
    for old in list_checkpoints(folder)[:-keep]:
        try:
            old.unlink()
        except OSError as e:
            raise UserError(f"cannot remove old checkpoint {old}: {_reason(e)}") from None
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
    """Read a checkpoint: (tensors, metadata with `alae_version`, the version that wrote it, or None).

    Pickles, truncated files, other formats and newer format versions are refused with a clear message.
    """
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
    _check_format_version(path, header)
    try:
        meta = json.loads(header["meta"])
    except (KeyError, ValueError):
        meta = None
    if not isinstance(meta, dict):
        raise UserError(f"{path} is not a readable checkpoint (damaged): its metadata is not a JSON object")
    return tensors, meta | {"alae_version": header.get("alae_version")}


def _check_format_version(path: Path, header: dict) -> None:
    """Refuse a checkpoint format newer than this alae reads, naming the alae version that wrote it."""
    text = header.get("format_version", "1")
    writer = header.get("alae_version")
    needed = f"alae {writer} or newer" if writer else "a newer alae"
    if not text.isdigit():
        raise UserError(f"{path} has an unknown checkpoint format version {text!r}: it needs {needed}")
    if int(text) > FORMAT_VERSION:
        raise UserError(f"{path} has checkpoint format {text}; this alae {alae_version()} reads format "
                        f"{FORMAT_VERSION}: it needs {needed}")


def require(meta: dict, keys: tuple[str, ...], path: Path) -> None:
    """Refuse a checkpoint whose metadata lacks any of `keys`, saying whether an older alae wrote it."""
    missing = [k for k in keys if k not in meta]
    if not missing:
        return
    if meta.get("alae_version") is None:
        raise UserError(f"{path} lacks {', '.join(missing)}: it was written by an earlier alae, before checkpoints "
                        f"recorded their version; use the alae that wrote it")
    raise UserError(f"{path} lacks {', '.join(missing)} in its metadata: not a checkpoint of alae train, or damaged")


def saved_config(meta: dict, path: Path) -> Config:
    """The config a checkpoint was trained with; one this alae cannot read names the alae version that can."""
    require(meta, ("config",), path)
    try:
        return from_dict(meta["config"], str(path))
    except UserError as e:
        writer = meta.get("alae_version")
        if writer in (None, alae_version()):
            raise UserError(f"{path}: its config is invalid: {e}") from None
        raise UserError(f"{path} was written by alae {writer} and its config does not fit this alae "
                        f"{alae_version()} ({e}): load it with alae {writer}") from None


def load_into(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, origin: Path) -> None:
    """Copy `prefix`-ed tensors into `module`, naming any missing, unexpected or misshapen entry."""
    own = module.state_dict()
    given = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(own) - set(given))
    extra = sorted(set(given) - set(own))
    if missing or extra:
        raise UserError(f"{origin} does not match this architecture: missing {missing[:3]}, unexpected {extra[:3]}")
    for name, value in sorted(given.items()):
        if value.shape != own[name].shape:
            raise UserError(f"{origin}: {prefix}{name} has shape {tuple(value.shape)}, "
                            f"the model expects {tuple(own[name].shape)}")
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


def upgrade_legacy(tensors: dict[str, torch.Tensor], meta: dict, module: torch.nn.Module,
                   prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Fill in what checkpoints of the alae versions that recorded no version (MLP runs only) lack:
    the average w of the truncation trick (unused by MLP networks; zero) and the growing stage
    (level 0, fully blended). Checkpoints that record their version are returned as they are."""
    if meta.get("alae_version") is not None:
        return tensors, meta
    own = module.state_dict()
    filled = {f"{prefix}{name}": own[name] for name in LEGACY_BUFFERS} | tensors
    return filled, {"level": 0, "blend": 1.0} | meta
