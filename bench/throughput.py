"""Throughput of one ALAE iteration (the three steps of Algorithm 1) at batch 128 on this machine.

Prints images per second, the FLOPs of one iteration (counted by torch's profiler over
every matrix product of forward, backward and the R1 double-backward), the achieved
GFLOP/s, and that as a fraction of a plain large fp32 matrix product measured in the
same run.

    python bench/throughput.py
"""

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from alae import config
from alae.train import Trainer


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--preset", default="mnist-mlp")
    args = parser.parse_args()
    cfg = config.load(args.preset, ["train.batch_size=128"])
    trainer = Trainer(cfg, "unused")
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        trainer.step()
    flops = sum(event.flops for event in prof.events() if event.flops)
    for _ in range(5):
        trainer.step()
    synchronize(trainer.device)
    t0 = time.perf_counter()
    for _ in range(args.iterations):
        trainer.step()
    synchronize(trainer.device)
    seconds = (time.perf_counter() - t0) / args.iterations
    peak = matmul_gflops(trainer.device)
    achieved = flops / seconds / 1e9
    print(f"device {trainer.device}, threads {torch.get_num_threads()}, preset {args.preset}, batch 128")
    print(f"iteration: {seconds * 1000:.1f} ms, {128 / seconds:.0f} images/s")
    print(f"FLOPs per iteration: {flops / 1e9:.2f} GFLOP ({flops / 128 / 1e6:.1f} MFLOP per image)")
    print(f"achieved: {achieved:.1f} GFLOP/s; 2048^3 fp32 matmul: {peak:.1f} GFLOP/s; ratio {achieved / peak:.2f}")


if __name__ == "__main__":
    main()
