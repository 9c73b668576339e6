"""Minor page faults per MLP ALAE iteration, with glibc's malloc defaults and with
`alae.device.keep_freed_memory` (which the trainer applies on CPU runs).

Each setting runs in a fresh process (mallopt cannot be undone): MLP ALAE at batch 128,
two warm-up iterations, then `--steps` timed ones; it prints page faults and milliseconds
per iteration for both and their ratio. glibc serves allocations over 128 KiB with fresh
pages from the kernel and hands them back when freed, so with its defaults every iteration
faults its large tensors in again (about 3,500 faults per iteration on the 2-core machine
of README.md); keeping freed memory brings that near zero. The count depends on the C
library and the kernel, so it is measured here rather than asserted by a test.

    python bench/page_faults.py [--steps 5]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time


def child(keep: bool, steps: int) -> None:
    import resource

    import numpy as np

    from alae import config, training

    if not keep:
        training.keep_freed_memory = lambda: None  # the trainer calls it on CPU runs
    cfg = config.load("mnist-mlp", ["train.batch_size=128", "train.device=cpu"])
    images = np.random.default_rng(0).integers(0, 256, (256, 1, 28, 28), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as run:
        trainer = training.Trainer(cfg, run, data=(images, np.arange(256)))
        for _ in range(2):
            trainer.step()
        faults, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        for _ in range(steps):
            trainer.step()
        seconds = time.perf_counter() - t0
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps({"faults": faults / steps, "ms": 1000 * seconds / steps}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed iterations per setting")
    parser.add_argument("--child", choices=["default", "keep"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child == "keep", args.steps)
        return
    rows = {}
    for name in ("default", "keep"):
        done = subprocess.run([sys.executable, __file__, "--child", name, "--steps", str(args.steps)],
                              capture_output=True, text=True, check=True)
        rows[name] = json.loads(done.stdout.splitlines()[-1])
    print("| malloc | page faults per iteration | ms per iteration |")
    print("| --- | ---: | ---: |")
    for name, label in (("default", "glibc defaults"), ("keep", "keep_freed_memory")):
        print(f"| {label} | {rows[name]['faults']:.0f} | {rows[name]['ms']:.1f} |")
    ratio = rows["default"]["faults"] / max(rows["keep"]["faults"], 1.0)
    print(f"faults: {ratio:.0f}x fewer with keep_freed_memory; time: x{rows['default']['ms'] / rows['keep']['ms']:.2f}")


if __name__ == "__main__":
    main()
