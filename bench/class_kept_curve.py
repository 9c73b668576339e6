"""Whether reconstructions keep their class, along a run's training: every checkpoint the run
holds now is scored once (pixel 1NN on G(E(x)) of the held-out images, `alae.metrics.class_kept`)
into a JSON file, so calling this while the run trains, before old checkpoints are pruned,
builds the curve.

    python bench/class_kept_curve.py runs/bench-style-cpu/run --json runs/bench-style-cpu/curve.json
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
    args = parser.parse_args()
    run = Run.open(args.run)
    cfg = run.config()
    scores = json.loads(args.json.read_text()) if args.json.is_file() else {}
    for path in run.checkpoints():
        kimg = f"{checkpoint.images_of(path) / 1000:g}"
        if kimg in scores:
            continue
        t0 = time.perf_counter()
        meta = checkpoint.load(path)[1]
        scores[kimg] = class_kept.evaluate(load(path), cfg) | {"level": meta["level"], "blend": meta["blend"],
                                                                "seconds": time.perf_counter() - t0}
        args.json.write_text(json.dumps(scores, indent=1))
        kept = scores[kimg]
        print(f"{kimg} kimg (level {kept['level']}, blend {kept['blend']:.2f}): reconstructed {kept['reconstructed']:.2f}% "
              f"(real {kept['real']:.2f}%), background {kept['background']:.4f}, MSE {kept['mse']:.4f}", flush=True)


if __name__ == "__main__":
    main()
