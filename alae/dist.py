"""Processes launched by torchrun: which one this is, and combining their partial results.

Under `torchrun --nproc_per_node K ...` the environment names each process's RANK and the
WORLD_SIZE; a process group (NCCL on GPUs, Gloo on CPUs) is started on first use. Without
torchrun everything here is the identity for a world of one.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as tdist


def world() -> tuple[int, int]:
    """(rank, world size), starting the process group when launched by torchrun."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not tdist.is_initialized():
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
