"""Table 2 as the paper reports it: ALAE and the AE (L1) and AE (L2) baselines, each trained
`--trials` times on the SW split (50k) and on the DW split (60k), scored on the protocol
each model was trained for, written with mean ± std beside the paper's rows.

Each trial (model, split, seed) trains into `--out/MODEL-SPLIT/sSEED` and is recorded with its
scores in `--out/trials.json` as soon as they exist, keyed by its length (bench/harness.py): a
rerun skips recorded trials and resumes a stopped training from its newest checkpoint, so the
command can be stopped and started again at any time, and copies given disjoint `--seeds`
share one `--out` (one per core, with `--set train.threads=1`); `--table` writes the tables
from what is recorded. Besides the classification, each run's reconstructions of its
protocol's 10k test digits are judged by `alae.metrics.class_kept` (class kept and background
level). The tables are written to `--out/table2.md` and `--out/table2.json` from the trials of
the asked length only, with the wall time of training from each run's log (its whole history,
a shorter bench's part included) and of scoring.

`--start-from DIR [DIR ...]` (earlier, shorter benches) begins each run that `--out` does not
hold yet from a copy of the newest checkpoint, among the DIRs' runs of the same model, split
and seed, that is not past the asked length, so a longer table continues the shorter ones'
training (the learning rate is constant, so this is the same as training that long from the
start); the DIRs are only read.

By default ALAE trains 70 epochs (`EPOCHS`) and the AEs their presets' length: the table as
README reports it.

    python bench/table2_full.py
    python bench/table2_full.py --models alae --epochs 20 --out runs/table2-20
    python bench/table2_full.py --models alae --epochs 40 --start-from runs/table2-20 --out runs/table2-40
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from alae import config
from alae.data import source
from alae.errors import UserError
from alae.metrics import class_kept, table2
from alae.run import Run
from alae.trials import Trials, run_trials, start_from

MODELS = {"alae": "mnist-mlp", "l1": "mnist-ae-l1", "l2": "mnist-ae-l2"}
# Table 2's length for ALAE: its short-feature SVM climbs to 70 epochs (bench/results.md, "training
# length"); the AEs train their presets' 300 kimg
EPOCHS = {"alae": 70}


def kimg_for(cfg, epochs: float) -> float:
    """Training length in kimg for `epochs` passes over the run's own training split."""
    return epochs * len(source.images(cfg)[1]) / 1000


def trial_config(variant: str, seed: int, args: argparse.Namespace) -> config.Config:
    """The configuration of one trial ("MODEL|SPLIT"): the model's preset on the split, at `--epochs`
    or the table's length."""
    name, split = variant.split("|")
    cfg = config.load(MODELS[name], args.set + [f"train.seed={seed}", f"data.split={split}"])
    epochs = args.epochs if args.epochs is not None else EPOCHS.get(name)
    if epochs is not None:
        cfg.train.kimg = kimg_for(cfg, epochs)
    return cfg


def score(run: Run, cfg: config.Config, jobs: int | None) -> dict:
    """Table 2's columns of the run's protocol and the class check of its reconstructions."""
    t0 = time.perf_counter()
    model = run.load(cfg.report.table2_weights)
    result = table2.evaluate(model, table2.protocol_of(cfg), log=lambda m: None, jobs=jobs)
    result["reconstructions"] = class_kept.evaluate(model, cfg)
    return result | {"run_train_seconds": run.throughput()[1], "eval_seconds": time.perf_counter() - t0}


def flat(record: dict) -> dict:
    """A trial's record as the tables read it: its scores with its model and run beside them."""
    return record["scores"] | {"model": record["variant"].split("|")[0], "run": record["run"]}


LABELS = {"alae": "ALAE", "l1": "AE (L1)", "l2": "AE (L2)"}


def cell(stats: dict) -> str:
    """'mean ± std' of short and long features."""
    return " / ".join(f"{stats[k]['mean']:.2f} ± {stats[k]['std']:.2f}" for k in table2.FEATURES)


def drop(accuracy: dict, protocol: str) -> str:
    """The short-feature drop from 1NN to the linear SVM (mean), or a dash where the protocol was not run."""
    if f"1nn {protocol}" not in accuracy:
        return "—"
    return f"{accuracy[f'1nn {protocol}']['short']['mean'] - accuracy[f'svm {protocol}']['short']['mean']:.2f}"


def table_markdown(summary: dict, scores: list[dict]) -> str:
    """Table 2 with this bench's rows (mean ± std over the trials) above the paper's, the
    short-feature drops from 1NN to SVM, differences to the paper, and the class check."""
    head = " | ".join(["1NN SW", "Linear SVM SW", "1NN DW", "Linear SVM DW"])
    lines = ["# Table 2: MNIST classification from learned features (`bench/table2_full.py`)", "",
             "Accuracy in %, short / long features, mean ± std (population) over the trials; 1NN: exact Euclidean; "
             f"linear SVM: LinearSVC, C = {table2.SVM_C}, raw features. SW models trained on the 50k SW train part "
             "and scored on the other 10k; DW models trained on the official 60k, scored on the official 10k test set.",
             "", f"| model | trials SW / DW | {head} | drop short SW | drop short DW |", "|---" * 8 + "|"]
    for name, s in summary.items():
        acc = s["accuracy"]
        cells = [cell(acc[c]) if c in acc else "—" for c in table2.COLUMNS]
        lines.append(f"| **{LABELS[name]}** | {len(s['runs']['SW'])} / {len(s['runs']['DW'])} | " + " | ".join(cells)
                     + f" | {drop(acc, 'SW')} | {drop(acc, 'DW')} |")
    for name in LABELS.values():
        p = table2.PAPER[name]
        lines.append(f"| {name} (paper) | 5 / 5 | " + " | ".join(" / ".join(f"{v:.2f}" for v in p[c]) for c in table2.COLUMNS)
                     + f" | {p['1nn SW'][0] - p['svm SW'][0]:.2f} | {p['1nn DW'][0] - p['svm DW'][0]:.2f} |")
    for name, s in summary.items():
        acc, paper = s["accuracy"], table2.PAPER[LABELS[name]]
        cells = [" / ".join(f"{acc[c][k]['mean'] - v:+.2f}" for k, v in zip(table2.FEATURES, paper[c]))
                 if c in acc else "—" for c in table2.COLUMNS]
        lines.append(f"| {LABELS[name]}: this − paper | | " + " | ".join(cells) + " | | |")
    lines += ["", "Reconstructions G(E(x)) of each run's 10k test digits (`alae.metrics.class_kept`: a pixel 1NN "
              "fitted on the run's real training digits, 50k for SW, 60k for DW), mean ± std over the trials:", ""]
    for name in summary:
        for protocol in table2.PROTOCOLS:
            kept = [r["reconstructions"] for r in scores if r["model"] == name and r["protocol"] == protocol]
            if kept:
                rec, bg = (np.array([k[key] for k in kept]) for key in ("reconstructed", "background"))
                lines.append(f"- {LABELS[name]}, {protocol} models ({len(kept)}): class kept {rec.mean():.2f} ± "
                             f"{rec.std():.2f} % (real test digits {kept[0]['real']:.2f} %), background "
                             f"{bg.mean():.4f} ± {bg.std():.4f}")
    lines += ["", "Wall time (minutes, all trials; training from the runs' logs, from their first image, across "
              "resumptions and the shorter runs they continue): " + "; ".join(
                  f"{LABELS[n]} training {s['run_train_minutes']:.0f}, scoring {s['eval_minutes']:.0f}"
                  for n, s in summary.items())]
    notes = sorted({f"{r['run']}: {n}" for r in scores for n in r["notes"]})
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write_tables(args: argparse.Namespace, trials: Trials) -> None:
    """Table 2 from the recorded trials of the length this bench asks for each model and split."""
    asked = {f"{n}|{split}": trial_config(f"{n}|{split}", 0, args).train.kimg for n in args.models for split in args.splits}
    scores = [flat(r) for r in trials.all().values() if abs(asked.get(r["variant"], -1) - r["kimg"]) < 1e-6]
    summary = {}
    for name in args.models:
        runs = [r for r in scores if r["model"] == name]
        if runs:
            summary[name] = {"accuracy": table2.aggregate(runs),
                             "runs": {p: [r["run"] for r in runs if r["protocol"] == p] for p in table2.PROTOCOLS},
                             "reconstructions": {r["run"]: r["reconstructions"] for r in runs},
                             "run_train_minutes": sum(r["run_train_seconds"] for r in runs) / 60,
                             "eval_minutes": sum(r["eval_seconds"] for r in runs) / 60}
    md = table_markdown(summary, scores)
    (args.out / "table2.json").write_text(json.dumps(summary, indent=1))
    (args.out / "table2.md").write_text(md)
    print(md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="independently trained models per model and split")
    parser.add_argument("--seeds", type=int, nargs="+", help="the trials' seeds to run here (default: 0 to trials-1)")
    parser.add_argument("--epochs", type=float, help="passes over the training split, for every model "
                        "(default: 70 for ALAE, the AEs' presets' 300 kimg)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--splits", nargs="+", choices=["sw", "dw"], default=["sw", "dw"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    parser.add_argument("--jobs", type=int, help="processes for the SVM fits (default: one per core)")
    parser.add_argument("--table", action="store_true", help="only write the tables from the scores so far")
    parser.add_argument("--plan", action="store_true", help="only print each trial and its length")
    parser.add_argument("--start-from", type=Path, nargs="+", metavar="DIR",
                        help="shorter benches' --out whose runs begin this one's (read only)")
    parser.add_argument("--out", type=Path, default=Path("runs/table2-full"))
    args = parser.parse_args()
    if any(d.resolve() == args.out.resolve() for d in args.start_from or []):
        parser.error("--start-from must name other benches than --out")
    variants = [f"{n}|{split}" for n in args.models for split in args.splits]
    if args.plan:
        for variant in variants:
            cfg = trial_config(variant, 0, args)
            print(f"{variant}: {cfg.train.kimg:g} kimg ({cfg.data.split}, {MODELS[variant.split('|')[0]]}"
                  + "".join(f", {o}" for o in args.set) + ")")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    trials = Trials(args.out / "trials.json")
    seeds = [] if args.table else args.seeds if args.seeds is not None else range(args.trials)

    def before(run: Path, cfg: config.Config) -> None:
        if args.start_from:
            begun = start_from([d / run.relative_to(args.out) for d in args.start_from], run, cfg)
            if begun:
                print(f"{run}: continues {begun}", flush=True)
    try:
        run_trials(trials, args.out, variants, seeds,
                   lambda variant, seed: trial_config(variant, seed, args),
                   lambda run, cfg: score(run, cfg, args.jobs), before, {"overrides": args.set})
    except UserError as e:
        parser.exit(1, f"table2_full.py: {e}\n")
    write_tables(args, trials)


if __name__ == "__main__":
    main()
