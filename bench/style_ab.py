"""A/B of StyleALAE training settings at one budget: do reconstructions keep their class?

Each variant is the `--preset` (default `fashion-style-cpu`) with config overrides, trained
for `--kimg` into `--out/VARIANT/sSEED`; its reconstructions of the 10k test images are
judged by the pixel 1NN fitted on the real training images (`alae.metrics.class_kept`),
with the EMA and with the live networks. Every finished (variant, seed) goes into
`--out/ab.json` at once and a rerun skips it (training resumes from the newest
checkpoint), so the command can be stopped and run again, and two copies with different
`--variants` or `--seeds` can share the machine (give each `--set train.threads=1`).
With `--start CHECKPOINT` every variant continues a copy of that checkpoint (its weights,
EMA and Adam state) to `--kimg` instead of training from the start: an A/B of one phase of
training, e.g. the 32x32 level alone.

    python bench/style_ab.py --kimg 150 --seeds 0 1 --variants today "R1 gamma 1" --out runs/style-ab
    python bench/style_ab.py --start runs/style/checkpoints/ckpt-000000200000.safetensors --kimg 250 \
        --seeds 1 2 --variants today "lr 0.003" --out runs/style-ab-32
"""

import argparse
from pathlib import Path

from alae import checkpoint, config
from alae.errors import UserError
from alae.metrics import class_kept
from alae.trials import Trials, begin_from, cell, groups, run_trials

VARIANTS = {
    "today": [],
    "D zero-gradient step": ["train.d_zero_grad_step=true"],
    "no D zero-gradient step": ["train.d_zero_grad_step=false"],
    "R1 gamma 1": ["train.r1_gamma=1"],
    "R1 gamma 0.1": ["train.r1_gamma=0.1"],
    "lr 0.003": ["train.lr=0.003"],
    "EMA half-life 3 kimg": ["train.ema_kimg=3"],
    "batch 16 at 32x32": ["train.level_batch=[64,64,32,16]"],
}


def score(run, cfg) -> dict:
    """Class kept, MSE and background of the EMA and the live networks' reconstructions."""
    return {weights: class_kept.evaluate(run.load(weights), cfg) for weights in ("ema", "live")}


def summary(records: dict) -> str:
    rows = ["| variant | kimg | seeds | class kept % EMA | class kept % live | MSE EMA | background EMA |",
            "|" + "---|" * 7]
    for (variant, kimg), same in groups(records.values(), lambda r: (r["variant"], r["kimg"])).items():
        rows.append(f"| {variant} | {kimg:g} | {len(same)} | {cell(same, lambda r: r['scores']['ema']['reconstructed'])} | "
                    f"{cell(same, lambda r: r['scores']['live']['reconstructed'])} | "
                    f"{cell(same, lambda r: r['scores']['ema']['mse'], 4)} | "
                    f"{cell(same, lambda r: r['scores']['ema']['background'], 3)} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fashion-style-cpu")
    parser.add_argument("--kimg", type=float, default=150)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an override for every variant, as for alae train (repeatable)")
    parser.add_argument("--start", type=Path, help="a checkpoint every variant continues from")
    parser.add_argument("--out", type=Path, default=Path("runs/style-ab"))
    args = parser.parse_args()
    before = None
    if args.start:
        try:
            _, meta = checkpoint.load(args.start)
            checkpoint.require(meta, ("images_seen",), args.start)
        except UserError as e:
            parser.error(f"--start: {e}")
        images = int(meta["images_seen"])

        def before(run: Path, cfg: config.Config) -> None:  # under the name the trainer resumes from, whatever the file's
            begin_from(run, args.start, images)
    trials = Trials(args.out / "ab.json")
    run_trials(trials, args.out, args.variants, args.seeds,
               lambda variant, seed: config.load(args.preset, [*VARIANTS[variant], *args.set, f"train.seed={seed}",
                                                                f"train.kimg={args.kimg:g}"]),
               score, before, {"overrides_common": args.set, "start": str(args.start) if args.start else None})
    print(summary(trials.all()))


if __name__ == "__main__":
    main()
