"""Where the networks run: the device, the precision, and the CPU's memory allocator."""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable

import torch

from .errors import UserError


def resolve_device(name: str, what: str = "--device") -> torch.device:
    """"auto" (CUDA where torch sees a GPU, else the CPU), "cpu", "cuda" or "cuda:N"; `what`
    names the setting in the error for a CUDA device that torch does not see."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{what}: {name} asked for, but torch sees no CUDA device")
    return torch.device(name)


def autocast_for(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A context factory running the networks in `precision` (bf16: autocast, on CPU or GPU)."""
    if precision == "fp32":
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def keep_freed_memory() -> None:
    """Have the C library's malloc keep freed memory for reuse instead of handing it back.

    Each training step allocates and frees the same large tensors (activations, gradients).
    glibc serves allocations over 128 KiB from fresh pages of the kernel and returns them when
    freed, so every step pays thousands of page faults and zero-fills (about 3,500 per
    MLP ALAE iteration); with a higher mmap threshold and trim threshold the freed blocks
    are reused. The process then keeps its peak memory. No-op where malloc has no mallopt.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mallopt(M_MMAP_THRESHOLD, 1 << 30)
    mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1)
