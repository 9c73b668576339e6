"""How Table 2's short-feature accuracies grow with training length: one MLP ALAE run
trained on and on, scored at each milestone (epochs over its training split).

At each milestone: short-feature 1NN and linear SVM (EMA and live encoder) on the run's
own protocol, and whether reconstructions keep their class (`class_kept`: pixel 1NN and
background level), scored as `table2_ab.py` scores. `--out/curve.json` gains each milestone's scores as soon as they
exist; a rerun continues training from the newest checkpoint and skips scored
milestones, so the curve can be extended over several sittings.

    python bench/table2_curve.py --epochs 5 10 20 40 70 100 --out runs/curve
"""

import argparse
import json
import time
from pathlib import Path

from alae import config
from alae.data import source
from alae.training import train

from table2_ab import score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, nargs="+", default=[5, 10, 20, 40, 70, 100])
    parser.add_argument("--config", default="mnist-mlp")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/curve"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "curve.json"
    curve = json.loads(log.read_text()) if log.is_file() else {}
    run = args.out / "run"
    for epochs in sorted(args.epochs):
        if f"{epochs:g}" in curve:
            continue
        cfg = config.load(args.config, args.set + [f"train.seed={args.seed}"])
        cfg.train.kimg = epochs * len(source.images(cfg)[1]) / 1000
        t0 = time.perf_counter()
        train(cfg, run, resume=run.is_dir(), progress=False)
        train_s = time.perf_counter() - t0
        curve[f"{epochs:g}"] = score(run, cfg) | {"epochs": epochs, "kimg": cfg.train.kimg, "train_seconds": train_s,
                                                 "overrides": args.set}
        log.write_text(json.dumps(curve, indent=1))
        r = curve[f"{epochs:g}"]
        print(f"{epochs:g} epochs: 1NN {r['ema']['1nn']:.2f} SVM {r['ema']['svm']:.2f} (live {r['live']['svm']:.2f}); "
              f"class kept {r['reconstructions']['reconstructed']:.2f} %, background "
              f"{r['reconstructions']['background']:.4f}; trained {train_s / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
