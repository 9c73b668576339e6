"""Whether reconstructions keep their class, along a run's training: every checkpoint the run
holds now is scored once (pixel 1NN on G(E(x)) of the held-out images, `alae.metrics.class_kept`)
into a JSON file, so calling this while the run trains, before old checkpoints are pruned,
builds the curve.

    python bench/class_kept_curve.py runs/bench-style-cpu/run --json runs/bench-style-cpu/curve.json [--every 50]
"""

import argparse
import json
import time
from pathlib import Path

from alae import checkpoint
from alae.metrics import class_kept
from alae.model import load
from alae.run import Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--json", type=Path, required=True, help="scores so far; extended, never rewritten")
    parser.add_argument("--every", type=float, help="score only the first checkpoint at or past each multiple of "
                                                    "this many kimg, and the last")
    args = parser.parse_args()
    run = Run.open(args.run)
    cfg = run.config()
    scores = json.loads(args.json.read_text()) if args.json.is_file() else {}
    found = run.checkpoints()
    if args.every:
        bucket = [checkpoint.images_of(p) // int(args.every * 1000) for p in found]
        found = [p for i, p in enumerate(found) if i == 0 or bucket[i] != bucket[i - 1] or i == len(found) - 1]
    for path in found:
        kimg = f"{checkpoint.images_of(path) / 1000:g}"
        if kimg in scores:
            continue
        t0 = time.perf_counter()
        meta = checkpoint.load(path)[1]
        scores[kimg] = class_kept.evaluate(load(path), cfg) | {"level": meta["level"], "blend": meta["blend"],
                                                                "training_minutes": training_minutes(run, kimg),
                                                                "seconds": time.perf_counter() - t0}
        args.json.write_text(json.dumps(scores, indent=1))
        kept = scores[kimg]
        print(f"{kimg} kimg (level {kept['level']}, blend {kept['blend']:.2f}): reconstructed {kept['reconstructed']:.2f}% "
              f"(real {kept['real']:.2f}%), background {kept['background']:.4f}, MSE {kept['mse']:.4f}", flush=True)


def training_minutes(run: Run, kimg: str) -> float:
    """Minutes of training up to `kimg`, from the intervals of the run's log."""
    seconds, last = 0.0, 0.0
    for row in run.stats():
        if row["kimg"] > float(kimg) + 1e-9:
            break
        seconds += (row["kimg"] - last) * 1000 / row["img_per_s"]
        last = row["kimg"]
    return seconds / 60


if __name__ == "__main__":
    main()
