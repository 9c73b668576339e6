"""Train StyleALAE's CPU preset on Fashion-MNIST, then check that reconstructions keep their class.

Trains `fashion-style-cpu` (resumed if the run exists) into `--out/PRESET/sSEED`, then
prints: images per second per level (from the run's stats.jsonl), the accuracy of a pixel
1-nearest-neighbour classifier fitted on the real training images, on the real test images
and on their reconstructions, the pixel MSE of the reconstructions, FID of generations
(against training images) and of reconstructions (against the held-out images they
reconstruct) beside the FID of real training against real test images, all with `--fid-num`
images a side, and the figures written into the run (reconstructions, generations, style
mixing, traversals, losses). The scores are recorded in `--out/trials.json` (`alae.trials`).

    python bench/style_cpu.py --out runs/bench-style-cpu
    python bench/style_cpu.py --set data.dataset=mnist --out runs/bench-style-cpu-mnist
"""

import argparse
import time
from pathlib import Path

from alae import config, report
from alae.metrics import class_kept
from alae.metrics.evaluate import run_metrics
from alae.run import Run
from alae.trials import Trials, run_trials


def score(run: Run, cfg: config.Config, fid_num: int) -> dict:
    """Throughput per level, class kept by the reconstructions, FIDs and the figures."""
    rates, train_s = run.throughput()
    t0 = time.perf_counter()
    kept = class_kept.evaluate(run.load(), cfg)
    eval_s = time.perf_counter() - t0
    paths = report.write(run, log=lambda m: None)
    fids = {}
    if fid_num:
        t0 = time.perf_counter()
        fids = {row["metric"]: row["value"] for row in run_metrics(run, "fid,fid_rec,fid_real", fid_num, progress=False)}
        fids["seconds"] = time.perf_counter() - t0
    return {"run_train_seconds": train_s, "images_per_second": {str(k): v for k, v in rates.items()},
            "class_kept": kept, "class_kept_seconds": eval_s, "fid": fids | {"num": fid_num},
            "figures": [str(p) for p in paths]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-style-cpu"))
    parser.add_argument("--preset", default="fashion-style-cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override, as for alae train (repeatable)")
    parser.add_argument("--fid-num", type=int, default=1000, help="images a side for each FID (0: no FID)")
    args = parser.parse_args()
    trials = Trials(args.out / "trials.json")
    run_trials(trials, args.out, [args.preset], [args.seed],
               lambda preset, seed: config.load(preset, [f"train.seed={seed}", *args.set]),
               lambda run, cfg: score(run, cfg, args.fid_num), extra={"overrides": args.set})
    r = max((r for r in trials.all().values() if r["seed"] == args.seed and r["overrides"] == args.set),
            key=lambda r: r["kimg"])
    s, kept, fids = r["scores"], r["scores"]["class_kept"], r["scores"]["fid"]
    print(f"{args.preset}: {r['kimg']:g} kimg trained in {s['run_train_seconds'] / 60:.1f} min "
          f"({r['kimg'] * 1000 / s['run_train_seconds']:.1f} images/s overall)")
    for level, rate in sorted(s["images_per_second"].items()):
        size = 4 * 2 ** int(level)
        print(f"  level {level} ({size}x{size}): {rate:.1f} images/s")
    print(f"pixel 1NN fitted on the training images, on {kept['test_images']} test images: "
          f"real {kept['real']:.2f}%, reconstructed {kept['reconstructed']:.2f}% "
          f"(gap {kept['real'] - kept['reconstructed']:.2f} points); reconstruction pixel MSE {kept['mse']:.4f}; "
          f"evaluated in {s['class_kept_seconds']:.0f} s")
    if "fid" in fids:
        print(f"FID with {fids['num']} images a side: generations {fids['fid']:.2f}, reconstructions "
              f"{fids['fid_rec']:.2f}, real training vs real test images {fids['fid_real']:.2f} "
              f"(in {fids['seconds'] / 60:.1f} min)")
    print("figures:", ", ".join(s["figures"]))


if __name__ == "__main__":
    main()
