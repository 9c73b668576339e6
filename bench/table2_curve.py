"""How Table 2's short-feature accuracies grow with training length: one MLP ALAE run
trained on and on, scored at each milestone (epochs over its training split).

At each milestone: short-feature 1NN and linear SVM (EMA and live encoder) on the run's
own protocol, and whether reconstructions keep their class (`class_kept`: pixel 1NN and
background level), scored as `table2_ab.py` scores. Each milestone is a trial of
`alae.trials`, recorded in `--out/trials.json` as soon as it is scored; the run lives in
`--out/CONFIG/sSEED`, and a rerun continues its training from the newest checkpoint and skips
scored milestones, so the curve can be extended over several sittings.

    python bench/table2_curve.py --epochs 5 10 20 40 70 100 --out runs/curve
"""

import argparse
from pathlib import Path

from alae import config
from alae.data import source
from alae.trials import Trials, run_trials

from table2_ab import score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, nargs="+", default=[5, 10, 20, 40, 70, 100])
    parser.add_argument("--config", default="mnist-mlp")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/curve"))
    args = parser.parse_args()
    trials = Trials(args.out / "trials.json")
    for epochs in sorted(args.epochs):
        def milestone(variant: str, seed: int, epochs: float = epochs) -> config.Config:
            cfg = config.load(args.config, args.set + [f"train.seed={seed}"])
            cfg.train.kimg = epochs * len(source.images(cfg)[1]) / 1000
            return cfg
        run_trials(trials, args.out, [args.config], [args.seed], milestone, score,
                   extra={"epochs": epochs, "overrides": args.set})
    for r in sorted(trials.all().values(), key=lambda r: r["kimg"]):
        s = r["scores"]
        print(f"{r['epochs']:g} epochs: 1NN {s['ema']['1nn']:.2f} SVM {s['ema']['svm']:.2f} (live {s['live']['svm']:.2f}); "
              f"class kept {s['reconstructions']['reconstructed']:.2f} %, background "
              f"{s['reconstructions']['background']:.4f}; trained {r['train_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
