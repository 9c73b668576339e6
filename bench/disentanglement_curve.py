"""Reconstruction error and MIG of every kept checkpoint of shapes runs: how a model's code
forms over training (`alae eval disentanglement` scores only a run's newest checkpoint).

For each checkpoint: the mean squared pixel error of G(E(x)) and MIG, overall and per factor,
of w = E(x) (a VAE: the posterior mean), on the test images `alae eval disentanglement` draws
(`--num`, default its 10,000), printed as one Markdown table.

    python bench/disentanglement_curve.py runs/dis-conv/conv-vae/s0 [RUN ...] [--num 10000]
"""

import argparse

import numpy as np
import torch

from alae import checkpoint
from alae.disentanglement import evaluate, scores
from alae.model import load
from alae.run import Run


def curve(run: Run, num: int) -> tuple[list[str], list[tuple[str, float, dict]]]:
    """(the factors' names, (kimg, pixel MSE, MIG result) per kept checkpoint of `run`, oldest first)."""
    cfg = run.config()
    images, factors, table = evaluate.labelled_test_images(cfg.data.dataset, cfg.model.resolution, num)
    x = torch.from_numpy(images)
    rows = []
    for path in run.checkpoints():
        model = load(path)
        mse = float((model.reconstruct(x) - x.float() / 255).pow(2).mean())
        rows.append((f"{checkpoint.images_of(path) / 1000:,.3f}", mse, scores.mig(model.encode(x).numpy(), factors)))
    return table.names, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories")
    parser.add_argument("--num", type=int, default=evaluate.NUM, help="test images (default: %(default)s)")
    args = parser.parse_args()
    for i, path in enumerate(args.runs):
        names, rows = curve(Run.open(path), args.num)
        if i == 0:
            print("| run | kimg | pixel MSE | MIG | " + " | ".join(f"MIG {n}" for n in names) + " |")
            print("|" + "---|" * (len(names) + 4))
        for kimg, mse, mig in rows:
            per = " | ".join(f"{g:.2f}" for g in np.asarray(mig["per_factor"]))
            print(f"| {path} | {kimg} | {mse:.4f} | {mig['mig']:.3f} | {per} |", flush=True)


if __name__ == "__main__":
    main()
