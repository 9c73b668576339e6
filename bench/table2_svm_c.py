"""How Table 2's linear-SVM cells depend on the SVM's C and on the features' scale.

Table 2 fits LinearSVC with C = 0.02 on raw features (the reference code's setting). For
each run given, on its own protocol, this fits the short and the long features with each
`--C`, raw and standardised (mean and scale of the train part), and prints test accuracy
in %: a diagnostic of whether the regularisation binds, not a protocol (the test part
chooses nothing in Table 2). `--solvers` picks liblinear's primal (the default, as the
recorded results were computed; the dual solver slows as C grows) and dual solvers (Table
2's); with both, it ends with each fit's dual/primal time ratio. Each fit is also scored on
the digits it was fitted on: a train accuracy as low as the test one says the SVM is limited
by how linearly separable the features are, not by overfitting. Results go to `--json` as
they come, fit times under its "seconds", train accuracies under "train".

    python bench/table2_svm_c.py runs/table2-full/alae/dw/s0 runs/table2-full/l1/dw/s0 --json runs/svm_c.json
    python bench/table2_svm_c.py runs/table2-full/alae/dw/s0 --C 0.02 --scalings raw --solvers primal dual --json F
"""

import argparse
import itertools
import json
import time
from pathlib import Path

from alae.data import mnist
from alae.metrics import table2
from alae.model import load
from alae.run import Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--C", type=float, nargs="+", default=[0.02, 0.2, 2.0])
    parser.add_argument("--scalings", nargs="+", choices=["raw", "standardised"], default=["raw", "standardised"])
    parser.add_argument("--features", nargs="+", choices=list(table2.FEATURES), default=list(table2.FEATURES))
    parser.add_argument("--solvers", nargs="+", choices=["primal", "dual"], default=["primal"])
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    out = json.loads(args.json.read_text()) if args.json.is_file() else {}
    for run in args.runs:
        cfg = Run(run).config()
        protocol = table2.protocol_of(cfg)
        model = load(run, weights=cfg.report.table2_weights)
        split = mnist.table2_split(protocol)
        feats = {part: table2.features(model, images) for part, (images, _) in split.items()}
        for k, kind in enumerate(table2.FEATURES):
            if kind not in args.features:
                continue
            tr, te = (feats[p][k] for p in ("train", "test"))
            mean, scale = tr.mean(0), tr.std(0) + 1e-8
            scaled = {"raw": (tr, te), "standardised": ((tr - mean) / scale, (te - mean) / scale)}
            for scaling in args.scalings:
                a, b = scaled[scaling]
                for c, solver in itertools.product(args.C, args.solvers):
                    key = f"{run} {kind} {scaling} C={c:g}" + (" dual" if solver == "dual" else "")
                    if key in out:
                        continue
                    t0 = time.perf_counter()
                    svm, _ = table2.fit_svm(a, split["train"][1], c=c, dual=solver == "dual")
                    out.setdefault("seconds", {})[key] = time.perf_counter() - t0
                    out[key] = 100 * svm.score(b, split["test"][1])
                    out.setdefault("train", {})[key] = 100 * svm.score(a, split["train"][1])
                    args.json.write_text(json.dumps(out, indent=1))
                    print(f"{key}: {out[key]:.2f} % (train {out['train'][key]:.2f} %, "
                          f"{out['seconds'][key]:.1f} s)", flush=True)
    seconds = out.get("seconds", {})
    for key in sorted(k for k in seconds if not k.endswith(" dual") and k + " dual" in seconds):
        print(f"{key}: dual/primal time {seconds[key + ' dual'] / seconds[key]:.2f}, "
              f"accuracy {out[key + ' dual'] - out[key]:+.2f} points")


if __name__ == "__main__":
    main()
