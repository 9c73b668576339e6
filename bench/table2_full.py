"""Table 2 as the paper reports it: ALAE and the AE (L1) and AE (L2) baselines, each trained
`--trials` times on the SW split (50k) and on the DW split (60k), scored on the protocol
each model was trained for, written with mean ± std beside the paper's rows.

Runs go to `--out/MODEL/SPLIT/sSEED`. Each finished run's scores are kept in
`--out/scores.json` as soon as they exist, and a rerun skips them (training resumes from
a run's newest checkpoint), so the command can be stopped and started again at any time.
The tables are written to `--out/table2.md` and `--out/table2.json`.

    python bench/table2_full.py --trials 5 --out runs/table2-full
"""

import argparse
import json
import time
from pathlib import Path

from alae import config
from alae.data import source
from alae.metrics import table2
from alae.model import load
from alae.train import train

MODELS = {"alae": "mnist-mlp", "l1": "mnist-ae-l1", "l2": "mnist-ae-l2"}


def kimg_for(cfg, epochs: float) -> float:
    """Training length in kimg for `epochs` passes over the run's own training split."""
    return epochs * len(source.images(cfg)[1]) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="independently trained models per model and split")
    parser.add_argument("--epochs", type=float, help="passes over the training split (default: each preset's length)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--out", type=Path, default=Path("runs/table2-full"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    scores_file = args.out / "scores.json"
    scores = json.loads(scores_file.read_text()) if scores_file.is_file() else {}
    for seed in range(args.trials):
        for name in args.models:
            for split in ("sw", "dw"):
                run = args.out / name / split / f"s{seed}"
                if str(run) in scores:
                    continue
                cfg = config.load(MODELS[name], [f"train.seed={seed}", f"data.split={split}"])
                if args.epochs is not None:
                    cfg.train.kimg = kimg_for(cfg, args.epochs)
                t0 = time.perf_counter()
                train(cfg, run, resume=run.is_dir(), progress=False)
                train_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                result = table2.evaluate(load(run, weights=cfg.report.table2_weights), table2.protocol_of(cfg),
                                         log=lambda m: None)
                scores[str(run)] = result | {"model": name, "train_seconds": train_s, "kimg": cfg.train.kimg,
                                             "eval_seconds": time.perf_counter() - t0}
                scores_file.write_text(json.dumps(scores, indent=1))
                print(f"{run}: {cfg.train.kimg:g} kimg trained in {train_s / 60:.1f} min, "
                      f"scored in {scores[str(run)]['eval_seconds'] / 60:.1f} min: {result['accuracy']}", flush=True)
    tables, summary = [], {}
    for name in args.models:
        trials = [r for r in scores.values() if r["model"] == name]
        by_protocol = {p: [run for run, r in scores.items() if r["model"] == name and r["protocol"] == p]
                       for p in table2.PROTOCOLS}
        notes = [n for r in trials for n in r["notes"]]
        summary[name] = {"accuracy": table2.aggregate(trials), "runs": by_protocol,
                         "train_minutes": sum(r["train_seconds"] for r in trials) / 60,
                         "eval_minutes": sum(r["eval_seconds"] for r in trials) / 60}
        tables.append(table2.markdown(summary[name]["accuracy"], by_protocol, name, notes))
    (args.out / "table2.json").write_text(json.dumps(summary, indent=1))
    (args.out / "table2.md").write_text("\n".join(tables))
    print("\n".join(tables))
    for name, s in summary.items():
        print(f"{name}: training {s['train_minutes']:.0f} min, scoring {s['eval_minutes']:.0f} min in all")


if __name__ == "__main__":
    main()
