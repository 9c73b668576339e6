"""Training throughput: images per second of one ALAE iteration (the three steps of Algorithm 1).

Measures, on this machine, MLP ALAE at batch 128 and StyleALAE at the top level of each
style preset with its own last-level batch (`mnist-style` only on a CPU, every preset on a
GPU), in fp32 and bf16. For each it prints milliseconds per iteration, images per second,
the FLOPs of one iteration (every matrix product and convolution the three steps run,
R1's gradient and its backward included, by torch's flop formulas), the achieved FLOP/s,
and that as a fraction of a large matrix product of the same precision measured in the
same run. It also times the data stream alone (the real images of one iteration, scaled
and blended), to show it is not the limit. With `--repeat`, it measures everything again
after each pause and ends with each case's range and median over the runs: on a machine
shared with other work, one run shows only the load of its moment.

    python bench/throughput.py                    # all that fits this device
    python bench/throughput.py --presets mnist-mlp --precisions fp32 --iterations 50
    python bench/throughput.py --presets mnist-mlp --precisions fp32 --repeat 12 --pause 300

The reference implementation measured on a 2-core CPU: MLP ALAE (batch 128) 83 ms per
iteration (1540 images/s); StyleALAE at the MNIST configuration (32x32, channels 64/256,
latent 32, batch 64) 6.6 s per iteration (about 10 images/s).
"""

import argparse
import json
import time

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from alae import config
from alae.device import resolve_device
from alae.training import Trainer

REFERENCE = {"mnist-mlp": 1540.0, "mnist-style": 10.0}
GPU_PRESETS = ["mnist-mlp", "mnist-style", "fashion-style", "celeba-128", "celebahq-256", "bedroom-256"]


class CountFlops(TorchDispatchMode):
    """Adds up the FLOPs of every operator torch has a formula for (matrix products, convolutions).

    torch's FlopCounterMode also tracks modules with hooks that autograd.grad (R1) rejects.
    """

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 4096, seconds: float = 2.0) -> float:
    """FLOP/s of an n x n matrix product in `dtype`, the best of repeated timings."""
    n = n if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        synchronize(device)
        t0 = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def top_level_trainer(preset: str, precision: str, device: str, batch: int | None) -> Trainer:
    """A Trainer of `preset` at its last level, faded in, on random images of the preset's shape."""
    overrides = [f"train.precision={precision}", f"train.device={device}"]
    if batch:
        overrides += [f"train.batch_size={batch}", "train.level_batch=[]"]
    cfg = config.load(preset, overrides)
    m, t = cfg.model, cfg.train
    size = m.resolution if m.net == "style" else 28
    images = np.random.default_rng(0).integers(0, 256, (1024, m.channels, size, size), dtype=np.uint8)
    trainer = Trainer(cfg, "unused", data=(images, np.arange(len(images))))
    trainer.images_seen = int(((m.levels - 1) * t.level_kimg + t.fade_kimg) * 1000) if m.net == "style" else 0
    return trainer


def step_seconds(trainer: Trainer, iterations: int, seconds: float = float("inf")) -> float:
    """Median seconds of whole iterations, timed one by one (`iterations` of them, or fewer,
    but at least 3, once about `seconds` have passed)."""
    synchronize(trainer.device)
    times = []
    start = time.perf_counter()
    while len(times) < iterations and (time.perf_counter() - start < seconds or len(times) < 3):
        t0 = time.perf_counter()
        trainer.step()
        synchronize(trainer.device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure(trainer: Trainer, iterations: int, seconds: float) -> dict:
    """Warm up, then time whole iterations (at least `iterations`, at most about `seconds`)."""
    with CountFlops() as counter:
        trainer.step()
    flops = counter.total
    for _ in range(2):
        trainer.step()
    step_s = step_seconds(trainer, iterations, seconds)
    batch = trainer.cfg.train.level_batch[-1] if trainer.cfg.train.level_batch else trainer.cfg.train.batch_size
    return {"batch": batch, "ms_per_iteration": step_s * 1000, "images_per_s": batch / step_s,
            "gflop_per_iteration": flops / 1e9, "gflop_per_s": flops / step_s / 1e9}


def loader_rate(trainer: Trainer, seconds: float = 2.0) -> float:
    """Images per second of the data stream alone at the trainer's level (blended, as during a fade)."""
    m, n, count = trainer.model, 256, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        trainer.stream.batch(count, n, m.resolution, 0.5)
        count += n
    synchronize(trainer.device)
    return count / (time.perf_counter() - start)


def one_run(presets: list[str], precisions: list[str], device: torch.device, iterations: int, seconds: float) -> list[dict]:
    """Measure every case once (the matrix-product peak first), printing a row per case."""
    peaks = {p: matmul_peak(device, {"fp32": torch.float32, "bf16": torch.bfloat16}[p]) / 1e9 for p in precisions}
    print(f"{time.strftime('%H:%M:%S')} matrix-product peak: "
          + ", ".join(f"{p} {v:.1f} GFLOP/s" for p, v in peaks.items()))
    print(f"{'preset':14} {'prec':5} {'batch':>5} {'ms/iter':>9} {'img/s':>9} {'GFLOP/it':>9} {'GFLOP/s':>8} "
          f"{'of peak':>7} {'vs ref':>7} {'loader img/s':>12}")
    rows = []
    for preset in presets:
        for precision in precisions:
            batch = 128 if preset == "mnist-mlp" else None
            trainer = top_level_trainer(preset, precision, str(device), batch)
            row = {"preset": preset, "precision": precision, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                   "peak_gflop_per_s": peaks[precision]} | measure(trainer, iterations, seconds)
            row["fraction_of_peak"] = row["gflop_per_s"] / peaks[precision]
            row["loader_images_per_s"] = loader_rate(trainer)
            ref = REFERENCE.get(preset) if device.type == "cpu" else None
            row["vs_reference"] = row["images_per_s"] / ref if ref else None
            rows.append(row)
            ratio = f"{row['vs_reference']:.2f}x" if ref else "-"
            print(f"{preset:14} {precision:5} {row['batch']:5d} {row['ms_per_iteration']:9.1f} {row['images_per_s']:9.1f} "
                  f"{row['gflop_per_iteration']:9.3f} {row['gflop_per_s']:8.1f} {row['fraction_of_peak']:7.2f} "
                  f"{ratio:>7} {row['loader_images_per_s']:12.0f}", flush=True)
            del trainer
    return rows


def summarize(rows: list[dict]) -> None:
    """Over repeated runs: each case's ms per iteration (min, median, max), images per second
    at the median, and how many runs reach 1.5x the reference."""
    print("over all runs:  ms/iter min / median / max   img/s at median   runs at 1.5x reference or more")
    for case in dict.fromkeys((r["preset"], r["precision"]) for r in rows):
        runs = [r for r in rows if (r["preset"], r["precision"]) == case]
        ms = np.array([r["ms_per_iteration"] for r in runs])
        ratios = [r["vs_reference"] for r in runs if r["vs_reference"]]
        goal = f"{sum(x >= 1.5 for x in ratios)} of {len(ratios)}" if ratios else "-"
        print(f"{case[0]:14} {case[1]:5} {ms.min():9.1f} / {np.median(ms):.1f} / {ms.max():.1f} "
              f"{1000 * runs[0]['batch'] / np.median(ms):12.1f}   {goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", help="comma-separated presets (default: mnist-mlp and mnist-style on CPU, "
                                          "all up to 256x256 on GPU)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--iterations", type=int, default=30, help="timed iterations per case (fewer if slow)")
    parser.add_argument("--seconds", type=float, default=30.0, help="time limit per case")
    parser.add_argument("--repeat", type=int, default=1, help="measure everything this many times, then summarize")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds to wait between repeats")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.repeat < 1 or args.pause < 0:
        parser.error("--repeat must be at least 1 and --pause not negative")
    device = resolve_device(args.device)
    default = GPU_PRESETS if device.type == "cuda" else ["mnist-mlp", "mnist-style"]
    presets = args.presets.split(",") if args.presets else default
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}")
    rows = []
    for run in range(args.repeat):
        if run:
            time.sleep(args.pause)
        rows += one_run(presets, args.precisions.split(","), device, args.iterations, args.seconds)
        if args.json:  # after every run, so that an interrupted repeat keeps what it measured
            with open(args.json, "w") as f:
                json.dump({"device": name, "rows": rows}, f, indent=2)
    if args.repeat > 1:
        summarize(rows)


if __name__ == "__main__":
    main()
