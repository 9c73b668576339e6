"""Table 2 as the paper reports it: ALAE and the AE (L1) and AE (L2) baselines, each trained
`--trials` times on the SW split (50k) and on the DW split (60k), scored on the protocol
each model was trained for, written with mean ± std beside the paper's rows.

Runs go to `--out/MODEL/SPLIT/sSEED`. Each finished run's scores are written to
`--out/scores/MODEL-SPLIT-sSEED.json` as soon as they exist, and a rerun skips them
(training resumes from a run's newest checkpoint), so the command can be stopped and
started again at any time. Copies given disjoint `--seeds` share one `--out` (one per
core, with `--set train.threads=1`); `--table` writes the tables from what is scored.
Besides the classification, each run's reconstructions of its protocol's 10k test digits
are judged by `alae.metrics.class_kept` (class kept and background level).
The tables are written to `--out/table2.md` and `--out/table2.json`, with the wall time of
training from each run's log (its whole history, a shorter bench's part included) and of
scoring.

`--start-from DIR [DIR ...]` (earlier, shorter benches) begins each run that `--out` does not
hold yet from a copy of the newest checkpoint, among the DIRs' runs of the same model, split
and seed, that is not past the asked length, so a longer table continues the shorter ones'
training (the learning rate is constant, so this is the same as training that long from the
start); the DIRs are only read.

By default ALAE trains 70 epochs (`EPOCHS`) and the AEs their presets' length: the table as
README reports it. A score file made at another length than the one asked is refused, not mixed in.

    python bench/table2_full.py
    python bench/table2_full.py --models alae --epochs 20 --out runs/table2-20
    python bench/table2_full.py --models alae --epochs 40 --start-from runs/table2-20 --out runs/table2-40
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from alae import checkpoint, config
from alae.data import source
from alae.errors import UserError
from alae.metrics import class_kept, table2
from alae.model import load
from alae.run import Run
from alae.training import train

from runs import begin_from

MODELS = {"alae": "mnist-mlp", "l1": "mnist-ae-l1", "l2": "mnist-ae-l2"}
# Table 2's length for ALAE: its short-feature SVM climbs to 70 epochs (bench/results.md, "training
# length"); the AEs train their presets' 300 kimg
EPOCHS = {"alae": 70}


def kimg_for(cfg, epochs: float) -> float:
    """Training length in kimg for `epochs` passes over the run's own training split."""
    return epochs * len(source.images(cfg)[1]) / 1000


def same_training(a, b) -> str | None:
    """The first setting, other than length and threads, in which configs `a` and `b` differ, or None."""
    trees = [c.to_dict() for c in (a, b)]
    for tree in trees:
        for key in ("kimg", "threads"):
            tree["train"].pop(key)
    for section, values in trees[0].items():
        for key, value in values.items():
            if trees[1][section].get(key) != value:
                return f"{section}.{key} {value!r} against {trees[1][section].get(key)!r}"
    return None


def start_from(source_runs: list[Path], run: Path, cfg) -> Path | None:
    """Begin `run` (not made yet) as a copy of the newest checkpoint among `source_runs` that is
    not past cfg's length, with its run's stats; the checkpoint copied, or None where there is none.
    A run of that length ends within one batch past it (the trainer stops at the first batch
    that reaches it), so a source of the same length is copied finished, not retrained."""
    end = round(cfg.train.kimg * 1000) + cfg.train.batch_size
    found = sorted((p for r in source_runs for p in Run(r).checkpoints() if checkpoint.images_of(p) < end),
                   key=checkpoint.images_of)
    if not found:
        return None
    source_run = found[-1].parent.parent
    differs = same_training(Run(source_run).config(), cfg)
    if differs:
        raise UserError(f"--start-from: {source_run} was trained differently ({differs})")
    begin_from(run, found[-1], checkpoint.images_of(found[-1]), Run(source_run).stats_path)
    return found[-1]


def trial_config(name: str, split: str, seed: int, args):
    """The configuration of one trial: the model's preset on `split`, at `--epochs` or the table's length."""
    cfg = config.load(MODELS[name], args.set + [f"train.seed={seed}", f"data.split={split}"])
    epochs = args.epochs if args.epochs is not None else EPOCHS.get(name)
    if epochs is not None:
        cfg.train.kimg = kimg_for(cfg, epochs)
    return cfg


def run_trial(name: str, split: str, seed: int, cfg, args) -> dict:
    """Train (or resume) one model on one split and score it on that split's protocol."""
    run = args.out / name / split / f"s{seed}"
    if args.start_from and not run.is_dir():
        begun = start_from([d / name / split / f"s{seed}" for d in args.start_from], run, cfg)
        if begun:
            print(f"{run}: continues {begun}", flush=True)
    train(cfg, run, resume=run.is_dir(), progress=False)
    t0 = time.perf_counter()
    model = load(run, weights=cfg.report.table2_weights)
    result = table2.evaluate(model, table2.protocol_of(cfg), log=lambda m: None, jobs=args.jobs)
    result["reconstructions"] = class_kept.evaluate(model, cfg)
    return result | {"run": str(run), "model": name, "seed": seed,
                     "run_train_seconds": Run(run).throughput()[1], "kimg": cfg.train.kimg,
                     "overrides": args.set, "eval_seconds": time.perf_counter() - t0}


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


def write_tables(args) -> None:
    scores = [json.loads(p.read_text()) for p in sorted((args.out / "scores").glob("*.json"))]
    summary = {}
    for name in args.models:
        trials = [r for r in scores if r["model"] == name]
        if trials:
            summary[name] = {"accuracy": table2.aggregate(trials),
                             "runs": {p: [r["run"] for r in trials if r["protocol"] == p] for p in table2.PROTOCOLS},
                             "reconstructions": {r["run"]: r["reconstructions"] for r in trials},
                             "run_train_minutes": sum(r["run_train_seconds"] for r in trials) / 60,
                             "eval_minutes": sum(r["eval_seconds"] for r in trials) / 60}
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
    parser.add_argument("--start-from", type=Path, nargs="+", metavar="DIR",
                        help="shorter benches' --out whose runs begin this one's (read only)")
    parser.add_argument("--out", type=Path, default=Path("runs/table2-full"))
    args = parser.parse_args()
    if any(d.resolve() == args.out.resolve() for d in args.start_from or []):
        parser.error("--start-from must name other benches than --out")
    (args.out / "scores").mkdir(parents=True, exist_ok=True)
    for seed in [] if args.table else args.seeds if args.seeds is not None else range(args.trials):
        for name in args.models:
            for split in args.splits:
                path = args.out / "scores" / f"{name}-{split}-s{seed}.json"
                try:
                    cfg = trial_config(name, split, seed, args)
                    if path.is_file():
                        scored = json.loads(path.read_text())["kimg"]
                        if abs(scored - cfg.train.kimg) > 1e-6:
                            raise UserError(f"{path} was scored at {scored:g} kimg, this bench asks {cfg.train.kimg:g}: "
                                            "give another --out")
                        continue
                    result = run_trial(name, split, seed, cfg, args)
                except UserError as e:
                    parser.exit(1, f"table2_full.py: {e}\n")
                path.write_text(json.dumps(result, indent=1))
                print(f"{result['run']}: {result['kimg']:g} kimg, {result['run_train_seconds'] / 60:.1f} min of "
                      f"training in its log, scored in {result['eval_seconds'] / 60:.1f} min: {result['accuracy']}, class kept "
                      f"{result['reconstructions']['reconstructed']:.2f} %", flush=True)
    write_tables(args)


if __name__ == "__main__":
    main()
