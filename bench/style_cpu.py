"""Train StyleALAE's CPU preset on Fashion-MNIST, then check that reconstructions keep their class.

Trains `fashion-style-cpu` (about 50 minutes on a 2-core CPU; resumed if the run exists),
then prints: images per second per level (from the run's stats.jsonl), the accuracy of a
pixel 1-nearest-neighbour classifier fitted on the real training images, on the real test
images and on their reconstructions, the pixel MSE of the reconstructions, FID of
generations (against training images) and of reconstructions (against the held-out
images they reconstruct) beside the FID of real training against real test images, all
with `--fid-num` images a side, and the figures written into the run (reconstructions,
generations, style mixing, traversals, losses).

    python bench/style_cpu.py --out runs/bench-style-cpu
    python bench/style_cpu.py --set data.dataset=mnist --out runs/bench-style-cpu-mnist
"""

import argparse
import json
import time
from pathlib import Path

from alae import config, report
from alae.metrics import class_kept
from alae.metrics.evaluate import run_metrics
from alae.model import load
from alae.run import Run
from alae.training import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-style-cpu"))
    parser.add_argument("--preset", default="fashion-style-cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override, as for alae train (repeatable)")
    parser.add_argument("--fid-num", type=int, default=1000, help="images a side for each FID (0: no FID)")
    args = parser.parse_args()
    run = args.out / "run"
    cfg = config.load(args.preset, [f"train.seed={args.seed}", *args.set])
    train(cfg, run, resume=bool(Run(run).path.is_dir() and Run(run).checkpoints()))
    rates, train_s = Run(run).throughput()
    model = load(run)
    t0 = time.perf_counter()
    kept = class_kept.evaluate(model, cfg)
    eval_s = time.perf_counter() - t0
    paths = report.write(run, log=lambda m: None)
    fids = {}
    if args.fid_num:
        t0 = time.perf_counter()
        fids = {row["metric"]: row["value"] for row in run_metrics(run, "fid,fid_rec,fid_real", args.fid_num, progress=False)}
        fids["seconds"] = time.perf_counter() - t0
    print(f"{args.preset} on {cfg.data.dataset}: {cfg.train.kimg:g} kimg trained in {train_s / 60:.1f} min "
          f"({cfg.train.kimg * 1000 / train_s:.1f} images/s overall)")
    for level, rate in sorted(rates.items()):
        size = 4 * 2**level
        print(f"  level {level} ({size}x{size}): {rate:.1f} images/s")
    print(f"pixel 1NN fitted on {cfg.data.dataset} train, on {kept['test_images']} test images: "
          f"real {kept['real']:.2f}%, reconstructed {kept['reconstructed']:.2f}% "
          f"(gap {kept['real'] - kept['reconstructed']:.2f} points); reconstruction pixel MSE {kept['mse']:.4f}; "
          f"evaluated in {eval_s:.0f} s")
    if fids:
        print(f"FID with {args.fid_num} images a side: generations {fids['fid']:.2f}, reconstructions "
              f"{fids['fid_rec']:.2f}, real training vs real test images {fids['fid_real']:.2f} "
              f"(in {fids['seconds'] / 60:.1f} min)")
    print("figures:", ", ".join(str(p) for p in paths))
    result = {"preset": args.preset, "overrides": args.set, "kimg": cfg.train.kimg, "train_seconds": train_s,
              "images_per_second": {str(k): v for k, v in rates.items()}, "class_kept": kept,
              "fid": fids | {"num": args.fid_num}, "figures": [str(p) for p in paths]}
    (args.out / "bench.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
