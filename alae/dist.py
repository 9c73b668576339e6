"""Processes launched by torchrun: which one this is, and combining their partial results.

Under `torchrun --nproc_per_node K ...` the environment names each process's RANK and the
WORLD_SIZE; a process group (NCCL on GPUs, Gloo on CPUs) is started on first use. Without
torchrun everything here is the identity for a world of one.

Data-parallel training splits each global batch into equal shards, one per process, and
averages gradients before every optimizer step. Inside `batch_shard` every random draw of
a batch (`randn_rows`) is made for the whole global batch, identically in every process,
and each process keeps its own rows: a run on K processes makes the same draws as a run
on one, so the two train the same networks up to float rounding.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as tdist


def world() -> tuple[int, int]:
    """(rank, world size), starting the process group when launched by torchrun."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not tdist.is_initialized():
        # torch._dynamo (which fused Adam imports), imported after the group starts, keeps
        # references to it that destroy_process_group leaves: the group's Gloo threads then
        # outlive `close` and can free a tensor during interpreter exit, which aborts the process
        import torch._dynamo  # noqa: F401
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        tdist.init_process_group(backend)
    return (tdist.get_rank(), tdist.get_world_size()) if tdist.is_initialized() else (0, 1)


def device_for_rank(device: torch.device) -> torch.device:
    """On CUDA under torchrun each process uses its LOCAL_RANK's GPU."""
    if device.type == "cuda" and tdist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def sum_all(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over all processes (every process gets it)."""
    if not tdist.is_initialized():
        return tensor
    backend_device = torch.device("cuda", torch.cuda.current_device()) if tdist.get_backend() == "nccl" else torch.device("cpu")
    out = tensor.to(backend_device).clone()
    tdist.all_reduce(out)
    return out.to(tensor.device)


def gather_all(tensor: torch.Tensor) -> torch.Tensor:
    """The 1-D tensors of all processes, concatenated in rank order (lengths may differ)."""
    if not tdist.is_initialized():
        return tensor
    n = sum_all(torch.zeros(tdist.get_world_size(), dtype=torch.long).index_fill_(0, torch.tensor(tdist.get_rank()), len(tensor)))
    padded = torch.zeros(int(n.max()), dtype=tensor.dtype)
    padded[:len(tensor)] = tensor.cpu()
    parts = [sum_all(torch.zeros_like(padded).copy_(padded) if r == tdist.get_rank() else torch.zeros_like(padded))
             for r in range(tdist.get_world_size())]
    return torch.cat([p[:int(k)] for p, k in zip(parts, n)])


def barrier() -> None:
    if tdist.is_initialized():
        tdist.barrier()


def close() -> None:
    """End the process group and join its threads (at the end of a torchrun job)."""
    if tdist.is_initialized():
        tdist.destroy_process_group()


@dataclass(frozen=True)
class Shard:
    """This process's rows [offset, offset + size) of a global batch of `total` rows."""

    offset: int
    size: int
    total: int


_shard: Shard | None = None


@contextlib.contextmanager
def batch_shard(shard: Shard) -> Iterator[None]:
    """Within this block, `randn_rows` draws for the global batch and returns this process's rows."""
    global _shard
    outer, _shard = _shard, shard
    try:
        yield
    finally:
        _shard = outer


def randn_rows(n: int, *shape: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
               ) -> torch.Tensor:
    """N(0, 1) samples [n, *shape]: within `batch_shard` of local size n, this process's rows of a
    draw for the whole global batch (so every process advances the generator alike)."""
    s = _shard
    if s is None or n != s.size or s.total == n:
        return torch.randn(n, *shape, device=device, dtype=dtype)
    return torch.randn(s.total, *shape, device=device, dtype=dtype)[s.offset:s.offset + n]


def average_gradients(params: list[torch.Tensor]) -> None:
    """Replace each gradient by its mean over all processes (one flat all-reduce)."""
    if not tdist.is_initialized() or tdist.get_world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    tdist.all_reduce(flat)
    flat /= tdist.get_world_size()
    for g, part in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(part.view_as(g))
