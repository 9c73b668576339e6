"""The disentanglement comparison on shapes: ALAE's w and z, the pixel AE and beta-VAEs,
each trained with `--seeds`, scored by `alae eval disentanglement`, in one table of mean ±
std over the seeds.

Each model is its preset trained at its preset's length. `--net conv` (the default):
disentanglement_lib's convolutional E and G, `conv-alae` (`shapes-conv-alae`), `conv-ae`
(`shapes-conv-ae`), `conv-vae` (`shapes-conv-vae`: beta 16, then 8 from 2,000 kimg) and
`conv-vae-bBETA` for each of `--betas` (`shapes-conv-vae` with that beta throughout); `--net
mlp`: the same models of the MLP E and G of section 7.1, `alae` (`shapes-alae`), `ae`, `vae`
and `vae-bBETA`. Each trains into `--out/MODEL/sSEED`, is evaluated with the
defaults into that run's `disentanglement.json` and figures, and recorded in
`--out/trials.json` (`alae.trials`): a recorded trial is skipped and a stopped training
resumes from its newest checkpoint, so the command can be stopped and started again, and two
copies given different `--models` or `--seeds` can share the machine's cores (the presets
train on one thread). `--set` trains every model with an override (an A/B: give it its own
`--out`). `--table` only writes the table of what is recorded into `--out/disentanglement.md`
and `--out/disentanglement.json`; `--figures DIR` also copies every recorded run's figures
there as `shapes-MODEL-sSEED-*.png`. `--rescore` scores the recorded trials of `--models` and
`--seeds` again without training (after a change in the evaluation).

    python bench/disentanglement.py --dataset runs/shapes32               # into runs/dis-conv
    python bench/disentanglement.py --dataset runs/shapes32 --net mlp     # into runs/dis-mlp
"""

import argparse
import json
import shutil
import time
from pathlib import Path

from alae import config
from alae.disentanglement import evaluate as disentanglement
from alae.run import Run
from alae.trials import Trials, cell, groups, run_trials

METRICS = {"MIG": ("mig", "mig"), "DCI D": ("dci", "disentanglement"), "DCI C": ("dci", "completeness"),
           "DCI I": ("dci", "informativeness"), "SAP": ("sap", "sap"), "FactorVAE": ("factor_vae", "score")}
NETS = {"mlp": "", "conv": "conv-"}  # each network family's prefix of the model names (conv-alae: shapes-conv-alae)


def models(betas: list[float], net: str = "mlp") -> list[str]:
    """The model names of a network family: its three presets, and a beta-VAE of each constant beta."""
    return [NETS[net] + name for name in ("alae", "ae", "vae", *(f"vae-b{b:g}" for b in betas))]


def split(name: str) -> tuple[str, str]:
    """A model name's family prefix (`conv-` or none) and the rest (`alae`, `ae`, `vae`, `vae-bBETA`)."""
    prefix = NETS["conv"] if name.startswith(NETS["conv"]) else NETS["mlp"]
    return prefix, name.removeprefix(prefix)


def spec(name: str) -> tuple[str, list[str]]:
    """A model name's preset and overrides (`vae-bBETA`: shapes-vae, or shapes-conv-vae, with that beta throughout)."""
    beta = beta_of(name)
    if beta is None:
        return f"shapes-{name}", []
    return f"shapes-{split(name)[0]}vae", [f"model.vae_beta={beta:g}", "train.vae_beta_late_kimg=0"]


def beta_label(cfg: config.Config) -> str:
    """A beta-VAE's KL weights as the table names them: `beta 16`, or `beta 16, then 8 from 8,000 kimg`."""
    t = cfg.train
    late = f", then {t.vae_beta_late:g} from {t.vae_beta_late_kimg:,.0f} kimg" if t.vae_beta_late_kimg else ""
    return f"beta {cfg.model.vae_beta:g}{late}"


def score(run: Run, cfg: config.Config) -> dict:
    """`alae eval disentanglement` of the run with its defaults (JSON and figures into the run), and
    the run's training seconds over its whole log (resumptions included)."""
    t0 = time.perf_counter()
    result, _ = disentanglement.report(run, None, disentanglement.NUM, disentanglement.FIT, None, log=lambda m: None)
    return result | {"eval_seconds": time.perf_counter() - t0, "run_train_seconds": run.throughput()[1]}


def rescore(trials: Trials, models: list[str], seeds: list[int]) -> None:
    """Score the recorded trials of these models and seeds again (after a change in the evaluation)."""
    for key, record in trials.all().items():
        if record["variant"] in models and record["seed"] in seeds:
            run = Run(record["run"])
            trials.record(key, record | {"scores": score(run, run.config())})
            print(f"{key}: scored again", flush=True)


def beta_of(name: str) -> float | None:
    """The constant beta in a beta-VAE's model name (`vae-bBETA`, as `models` names it); None for the others."""
    rest = split(name)[1]
    return float(rest.removeprefix("vae-b")) if rest.startswith("vae-b") else None


def code_cells(runs: list[dict], code: str) -> dict[str, str]:
    """Column -> mean ± std over the runs (their scores) of one code."""
    def of(a: str, b: str):
        return lambda r: r["codes"][code][a][b]
    cells = {label: cell(runs, of(a, b), 3) for label, (a, b) in METRICS.items()}
    for k, factor in enumerate(runs[0]["factors"]):
        cells[f"probe {factor}"] = cell(runs, lambda r, k=k: r["codes"][code]["probe"]["accuracy"][k], 3)
    cells["pixel MSE"] = cell(runs, lambda r: r["reconstruction_mse"], 4)
    cells["inversion residual"] = cell(runs, lambda r: r["codes"][code]["inversion_residual"], 3)  # z only
    return cells


def copy_figures(records: list[dict], folder: Path) -> None:
    """Each recorded run's figures (`disentanglement-*.png`) into `folder` as `shapes-MODEL-sSEED-*.png`."""
    folder.mkdir(parents=True, exist_ok=True)
    for r in records:
        for figure in Path(r["run"]).glob("disentanglement-*.png"):
            shutil.copy2(figure, folder / figure.name.replace("disentanglement", f"shapes-{r['variant']}-s{r['seed']}"))


def table(records: list[dict]) -> tuple[dict, str]:
    """The summary (row label -> cells, seeds, minutes) and its Markdown table, one row per model and code."""
    rank = {kind: i for i, kind in enumerate(disentanglement.KIND_NAMES)}  # ALAE, AE, the preset's beta-VAE, by beta
    by_model = groups(records, lambda r: (r["variant"], r["kimg"]))
    summary = {}
    for (name, kimg), runs in sorted(by_model.items(), key=lambda item: (split(item[0][0])[0], rank[item[1][0]["scores"]["kind"]],
                                                                         beta_of(item[0][0]) or 0, item[0][1])):
        scores = [r["scores"] for r in runs]
        for code in scores[0]["codes"]:
            label = disentanglement.row_label(scores[0]["kind"], code)
            if scores[0]["kind"] == "vae":
                label = f"{label} ({beta_label(config.load(*spec(name)))})"
            if split(name)[0]:
                label = f"{label}, conv E and G"
            summary[f"{label}, {kimg:g} kimg"] = {
                "seeds": [r["seed"] for r in runs], "cells": code_cells(scores, code),
                "train_minutes": [r["scores"].get("run_train_seconds", r["train_seconds"]) / 60 for r in runs],
                "inversion_residual": [s["codes"][code].get("inversion_residual") for s in scores]}
    if not summary:
        return summary, ""
    head = list(next(iter(summary.values()))["cells"])
    lines = ["| code | seeds | " + " | ".join(head) + " | train min |", "|" + "---|" * (len(head) + 3)]
    for label, s in summary.items():
        minutes = "/".join(f"{m:.0f}" for m in s["train_minutes"])
        lines.append(f"| {label} | {len(s['seeds'])} | " + " | ".join(s["cells"].values()) + f" | {minutes} |")
    return summary, "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="the folder made by `alae dataset make shapes` (needed to train)")
    parser.add_argument("--out", type=Path, help="the trials' folder (default runs/dis-NET)")
    parser.add_argument("--betas", type=float, nargs="+", default=[16.0, 8.0],
                        help="a beta-VAE with each of these betas throughout (vae-bBETA)")
    parser.add_argument("--net", choices=list(NETS), default="conv",
                        help="the network family: conv (shapes-conv-alae, ...) or mlp (shapes-alae, ...)")
    parser.add_argument("--models", nargs="+", help="of conv-alae, conv-ae, conv-vae, conv-vae-bBETA (--net conv); "
                                                    "of alae, ae, vae, vae-bBETA (--net mlp); default: all of --net")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an override for every model, as for alae train (repeatable; use its own --out)")
    parser.add_argument("--table", action="store_true", help="only write the table of the recorded trials")
    parser.add_argument("--figures", type=Path, help="copy the recorded runs' figures into this folder")
    parser.add_argument("--rescore", action="store_true",
                        help="score the recorded trials of --models and --seeds again, training nothing")
    args = parser.parse_args()
    args.out = args.out or Path(f"runs/dis-{args.net}")
    named = models(args.betas, args.net)
    trials = Trials(args.out / "trials.json")
    if args.rescore:
        rescore(trials, args.models or named, args.seeds)
    elif not args.table:
        if args.dataset is None:
            parser.error("--dataset is needed to train (or give --table)")
        unknown = [m for m in args.models or [] if m not in named]
        if unknown:
            parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(named)}")
        def trial_config(name: str, seed: int) -> config.Config:
            preset, overrides = spec(name)
            return config.load(preset, [*overrides, *args.set, f"train.seed={seed}", f"data.dataset={args.dataset}"])
        run_trials(trials, args.out, args.models or named, args.seeds, trial_config, score,
                   extra={"overrides": args.set})
    records = list(trials.all().values())
    summary, md = table(records)
    if args.figures:
        copy_figures(records, args.figures)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "disentanglement.json").write_text(json.dumps(summary, indent=1))
    (args.out / "disentanglement.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
