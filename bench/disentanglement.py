"""The disentanglement comparison on shapes: ALAE's w and z, the pixel AE and beta-VAEs,
each trained with `--seeds`, scored by `alae eval disentanglement`, in one table of mean ±
spread over the seeds.

Each model is its preset (`shapes-alae`, `shapes-ae`, `shapes-vae` with `model.vae_beta`
from `--betas`) trained at its preset length into `--out/MODEL/sSEED`, and evaluated with
the defaults into that run's `disentanglement.json` and figures. A run that has its JSON
is skipped and a stopped training resumes from its newest checkpoint, so the command can
be stopped and started again, and two copies given different `--models` or `--seeds` can
share the machine's cores (the presets train on one thread). `--set` trains every model
with an override (an A/B: give it its own `--out`). `--table` only gathers the
JSONs that exist into `--out/disentanglement.md` and `--out/disentanglement.json`.

    python bench/disentanglement.py --dataset runs/shapes32 --out runs/dis
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from alae import config
from alae.disentanglement import evaluate as disentanglement
from alae.run import Run
from alae.training import train

METRICS = {"MIG": ("mig", "mig"), "DCI D": ("dci", "disentanglement"), "DCI C": ("dci", "completeness"),
           "DCI I": ("dci", "informativeness"), "SAP": ("sap", "sap")}


def models(betas: list[float]) -> dict[str, tuple[str, list[str]]]:
    """Model name -> (preset, overrides)."""
    named = {"alae": ("shapes-alae", []), "ae": ("shapes-ae", [])}
    named |= {f"vae-b{b:g}": ("shapes-vae", [f"model.vae_beta={b:g}"]) for b in betas}
    return named


def run_one(name: str, preset: str, overrides: list[str], seed: int, dataset: str, out: Path) -> None:
    """Train (or resume) and evaluate one model and seed, unless its JSON exists; `overrides`
    apply after the preset."""
    run = out / name / f"s{seed}"
    result_file = Run(run).disentanglement_path
    if result_file.is_file():
        return
    cfg = config.load(preset, [*overrides, f"train.seed={seed}", f"data.dataset={dataset}"])
    t0 = time.perf_counter()
    train(cfg, run, resume=run.is_dir(), progress=False)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result, _ = disentanglement.report(run, None, disentanglement.NUM, disentanglement.FIT, None,
                                       log=lambda m: None)
    result |= {"model": name, "seed": seed, "kimg": cfg.train.kimg, "overrides": overrides, "train_seconds": train_s,
               "eval_seconds": time.perf_counter() - t0}
    result_file.write_text(json.dumps(result, indent=2))
    print(f"{run}: {cfg.train.kimg:g} kimg trained in {train_s / 60:.1f} min, "
          f"evaluated in {result['eval_seconds'] / 60:.1f} min", flush=True)


def beta_of(name: str) -> float | None:
    """The beta in a beta-VAE's model name (`vae-bBETA`, as `models` names it); None for the others."""
    return float(name.removeprefix("vae-b")) if name.startswith("vae-b") else None


def row_cells(results: list[dict], code: str) -> dict:
    """Mean and spread (half the range) over seeds of every metric and probe accuracy."""
    values = {label: [r["codes"][code][a][b] for r in results] for label, (a, b) in METRICS.items()}
    factors = results[0]["factors"]
    for k, factor in enumerate(factors):
        values[f"probe {factor}"] = [r["codes"][code]["probe"]["accuracy"][k] for r in results]
    return {label: {"mean": float(np.mean(v)), "spread": float(np.ptp(v) / 2), "values": v}
            for label, v in values.items()}


def gather(out: Path) -> tuple[dict, str]:
    """The summary JSON and the Markdown table of every evaluated run under `out`."""
    by_model: dict[str, list[dict]] = {}
    for path in sorted(out.glob(f"*/s*/{Run.DISENTANGLEMENT}")):
        r = json.loads(path.read_text())
        if "model" in r:
            by_model.setdefault(r["model"], []).append(r)
    rank = {kind: i for i, kind in enumerate(disentanglement.KIND_NAMES)}  # ALAE, AE, beta-VAEs by beta
    summary, lines = {}, []
    for name, results in sorted(by_model.items(), key=lambda item: (rank[item[1][0]["kind"]], beta_of(item[0]) or 0)):
        beta = beta_of(name)
        for code in results[0]["codes"]:
            label = disentanglement.row_label(results[0]["kind"], code)
            label = label if beta is None else f"{label} (beta {beta:g})"
            summary[label] = {"seeds": [r["seed"] for r in results], "cells": row_cells(results, code),
                              "train_minutes": [r["train_seconds"] / 60 for r in results],
                              "eval_minutes": [r["eval_seconds"] / 60 for r in results],
                              "inversion_residual": [r["codes"][code].get("inversion_residual") for r in results]}
    if summary:
        head = list(next(iter(summary.values()))["cells"])
        lines = ["| code | seeds | " + " | ".join(head) + " | train min |", "|" + "---|" * (len(head) + 3)]
        for label, s in summary.items():
            cells = [f"{c['mean']:.3f} ± {c['spread']:.3f}" for c in s["cells"].values()]
            minutes = "/".join(f"{m:.0f}" for m in s["train_minutes"])
            lines.append(f"| {label} | {len(s['seeds'])} | " + " | ".join(cells) + f" | {minutes} |")
    return summary, "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="the folder made by `alae dataset make shapes` (needed to train)")
    parser.add_argument("--out", type=Path, default=Path("runs/dis"))
    parser.add_argument("--betas", type=float, nargs="+", default=[1.0, 4.0], help="the beta-VAEs' betas")
    parser.add_argument("--models", nargs="+", help="of alae, ae, vae-bBETA (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an override for every model, as for alae train (repeatable; use its own --out)")
    parser.add_argument("--table", action="store_true", help="only gather the finished runs into the table")
    args = parser.parse_args()
    named = models(args.betas)
    if not args.table:
        if args.dataset is None:
            parser.error("--dataset is needed to train (or give --table)")
        unknown = [m for m in args.models or [] if m not in named]
        if unknown:
            parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(named)}")
        for seed in args.seeds:
            for name in args.models or named:
                preset, overrides = named[name]
                run_one(name, preset, [*overrides, *args.set], seed, args.dataset, args.out)
    summary, md = gather(args.out)
    (args.out / "disentanglement.json").write_text(json.dumps(summary, indent=1))
    (args.out / "disentanglement.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
