"""Train ALAE and the two AE baselines on MNIST, then print Table 2 for each, with wall times.

The paper's schedule is 400 epochs (the default); `--epochs` sets a shorter one, e.g.
`--epochs 18` for about 30 minutes of ALAE training on a 2-core CPU. Runs go to
`--out/{alae,ae-l1,ae-l2}` and are resumed if present.

    python bench/table2_full.py --epochs 18 --out runs/bench-table2
"""

import argparse
import json
import time
from pathlib import Path

from alae import config
from alae.report import table2_report
from alae.train import train

PRESETS = {"alae": "mnist-mlp", "ae-l1": "mnist-ae-l1", "ae-l2": "mnist-ae-l2"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=400.0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-table2"))
    parser.add_argument("--only", choices=sorted(PRESETS), action="append", help="train only these models")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = {}
    for name in args.only or PRESETS:
        cfg = config.load(PRESETS[name], [f"train.kimg={args.epochs * 60}", f"train.seed={args.seed}"])
        run = args.out / name
        t0 = time.perf_counter()
        train(cfg, run, resume=(run / "checkpoints").is_dir())
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        data, md = table2_report([run])
        eval_s = time.perf_counter() - t0
        results[name] = {"train_seconds": train_s, "eval_seconds": eval_s, "epochs": args.epochs, **data}
        print(md)
        print(f"{name}: {args.epochs:g} epochs trained in {train_s / 60:.1f} min, evaluated in {eval_s / 60:.1f} min\n")
    summary = {n: {c: {k: round(v["mean"], 2) for k, v in r["accuracy"][c].items()} for c in r["accuracy"]}
               for n, r in results.items()}
    print("summary (accuracy %, short/long):", json.dumps(summary, indent=1))
    if {"alae", "ae-l1", "ae-l2"} <= results.keys():
        drop = {n: {p: round(summary[n][f"1nn {p}"]["short"] - summary[n][f"svm {p}"]["short"], 2) for p in ("SW", "DW")}
                for n in summary}
        print("drop from 1NN to linear SVM on short features:", drop)
    (args.out / "bench.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
