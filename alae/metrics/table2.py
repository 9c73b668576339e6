"""The protocol of Table 2 (section 7.1): classify MNIST digits from learned features.

Features: "short" is w = E(x) (latent size), "long" the activations of E's layer before
the last (1024-D). Splits: SW and DW (see `alae.data.mnist.table2_split`); a model is
scored only on the protocol it was trained for (`data.split`): an SW model never saw its
test digits, a DW model trained on the official 60k. Classifiers:
exact Euclidean 1-nearest-neighbour, and a linear SVM (scikit-learn's LinearSVC) with
the reference code's setting: C = 0.02, max_iter 5000, the dual solver, on raw unscaled
features, fitted on the train part and scored once on the test part (no choice is made on test data).
Several runs are several trials: the report gives mean and standard deviation.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..data import mnist
from ..device import resolve_device
from ..errors import UserError
from ..run import Run

if TYPE_CHECKING:
    from sklearn.svm import LinearSVC

    from ..config import Config
    from ..model import ALAE

SVM_C = 0.02
SVM_MAX_ITER = 5000
SVM_DUAL = True  # liblinear's dual solver, the reference code's (svm_accuracy)
SVM_SOLVER = "dual" if SVM_DUAL else "primal"
PROTOCOLS = ("SW", "DW")
FEATURES = ("short", "long")
CLASSIFIERS = ("1nn", "svm")

# Table 2 of the paper, accuracy in %: (1NN SW, SVM SW, 1NN DW, SVM DW), each (short, long).
PAPER = {
    "AE (L1)": {"1nn SW": (97.15, 97.43), "svm SW": (88.71, 97.27), "1nn DW": (96.84, 96.80), "svm DW": (89.78, 97.72)},
    "AE (L2)": {"1nn SW": (97.52, 97.37), "svm SW": (88.78, 97.23), "1nn DW": (97.05, 96.77), "svm DW": (89.78, 97.72)},
    "LR": {"1nn SW": (92.79, 97.28), "svm SW": (89.74, 97.56), "1nn DW": (91.90, 96.69), "svm DW": (90.03, 97.80)},
    "JLR": {"1nn SW": (92.54, 97.02), "svm SW": (89.23, 97.19), "1nn DW": (91.97, 96.45), "svm DW": (90.82, 97.62)},
    "BiGAN": {"1nn SW": (95.83, 97.14), "svm SW": (90.52, 97.59), "1nn DW": (95.38, 96.81), "svm DW": (91.34, 97.74)},
    "ALAE": {"1nn SW": (93.79, 97.61), "svm SW": (93.47, 98.20), "1nn DW": (94.59, 97.47), "svm DW": (94.23, 98.64)},
}
COLUMNS = ("1nn SW", "svm SW", "1nn DW", "svm DW")


def nn1_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 block: int = 2048, candidates: int = 8) -> float:
    """Exact 1-nearest-neighbour accuracy (Euclidean distance).

    Squared distances come from blocked float32 matrix products
    (||a - b||^2 = ||a||^2 - 2 a.b + ||b||^2, ||a||^2 dropped as constant per row); the
    `candidates` closest are then re-ranked by float64 distances computed directly, so
    rounding in the fast pass cannot change the neighbour found.
    """
    train = torch.as_tensor(train_x, dtype=torch.float32)
    train64 = torch.as_tensor(train_x, dtype=torch.float64)
    train_sq = train.pow(2).sum(1)
    nearest = []
    for chunk in torch.as_tensor(test_x, dtype=torch.float64).split(block):
        dist = torch.addmm(train_sq, chunk.float(), train.T, alpha=-2.0)
        cand = dist.topk(candidates, dim=1, largest=False).indices
        exact = (train64[cand] - chunk[:, None, :]).pow(2).sum(2)
        nearest.append(cand.gather(1, exact.argmin(1, keepdim=True)).squeeze(1))
    pred = np.asarray(train_y)[torch.cat(nearest).numpy()]
    return float((pred == np.asarray(test_y)).mean())


def fit_svm(train_x: np.ndarray, train_y: np.ndarray, c: float = SVM_C,
            dual: bool = SVM_DUAL) -> tuple[LinearSVC, bool]:
    """Table 2's linear SVM (LinearSVC, C = 0.02 unless `c` is given, features as given) fitted, and whether liblinear converged.

    The dual coordinate-descent solver (`dual`, the default) is the one the reference code's
    scikit-learn used; at C 0.02 it gives the primal solver's accuracy to 0.01 point in a
    quarter to a third of its time (bench/results.md). Its order of coordinates is seeded (random_state 0).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    svm = LinearSVC(C=c, max_iter=SVM_MAX_ITER, dual=dual, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        svm.fit(train_x, train_y)
    return svm, not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def svm_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 c: float = SVM_C, dual: bool = SVM_DUAL) -> tuple[float, bool]:
    """Test accuracy of `fit_svm` fitted on the train part, and whether liblinear converged."""
    svm, converged = fit_svm(train_x, train_y, c=c, dual=dual)
    return float(svm.score(test_x, test_y)), converged


def protocol_of(cfg: Config) -> str:
    """The Table 2 protocol a run's model was trained for: its `data.split`, "SW" or "DW"."""
    return cfg.data.split.upper()


def features(model: ALAE, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Short and long features (float64) of uint8 digits [N, 28, 28]."""
    short, long_ = model.features(torch.from_numpy(images.copy()).unsqueeze(1))
    return short.double().cpu().numpy(), long_.double().cpu().numpy()


def evaluate(model: ALAE, protocol: str, root: str = "", log: Callable[[str], None] = print, jobs: int | None = None) -> dict:
    """Table 2's `protocol` columns for one trained model: accuracies in % keyed
    'classifier protocol' -> {short, long}.

    The SVM fits (short and long features) are independent and run in `jobs` processes
    (default: one per core).
    """
    from joblib import Parallel, delayed

    results, notes, cases = {}, [], []
    split = mnist.table2_split(protocol, root)
    feats = {}
    for part, (images, labels) in split.items():
        short, long_ = features(model, images)
        feats[part] = {"short": short, "long": long_, "y": labels}
    for kind in FEATURES:
        tr, te = feats["train"], feats["test"]
        t0 = time.perf_counter()
        nn1 = nn1_accuracy(tr[kind], tr["y"], te[kind], te["y"])
        results.setdefault(f"1nn {protocol}", {})[kind] = 100 * nn1
        log(f"table2 {protocol} {kind:5s}: 1NN {100 * nn1:.2f}% ({time.perf_counter() - t0:.0f}s)")
        cases.append((kind, (tr[kind], tr["y"], te[kind], te["y"])))
    t0 = time.perf_counter()
    fits = Parallel(n_jobs=jobs or min(len(cases), os.cpu_count() or 1))(
        delayed(svm_accuracy)(*data) for _, data in cases)
    for (kind, _), (svm, converged) in zip(cases, fits):
        results.setdefault(f"svm {protocol}", {})[kind] = 100 * svm
        log(f"table2 {protocol} {kind:5s}: linear SVM {100 * svm:.2f}%")
        if not converged:
            notes.append(f"LinearSVC did not converge in {SVM_MAX_ITER} iterations on {protocol} {kind}")
    log(f"table2: linear SVMs fitted in {time.perf_counter() - t0:.0f}s")
    return {"protocol": protocol, "accuracy": results, "notes": notes}


def aggregate(trials: list[dict]) -> dict:
    """Mean and (population) standard deviation over the trials that have each column, per feature."""
    out = {}
    for col in COLUMNS:
        have = [t["accuracy"][col] for t in trials if col in t["accuracy"]]
        if have:
            out[col] = {}
            for kind in FEATURES:
                values = np.array([a[kind] for a in have])
                out[col][kind] = {"mean": float(values.mean()), "std": float(values.std()), "values": values.tolist()}
    return out


def _pair(values) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def _cells(summary: dict, fmt) -> str:
    """One Markdown row's cells: `fmt(column)` where the column was measured, a dash elsewhere."""
    return " | ".join(fmt(c) if c in summary else "—" for c in COLUMNS)


def markdown(summary: dict, runs: dict[str, list[str]], kind: str, notes: list[str]) -> str:
    """Table 2 as Markdown: this model's row (mean ± std), the paper's rows, and differences.

    `runs` names the runs behind each protocol's columns ("SW", "DW"); a protocol without
    runs shows dashes.
    """
    reference = "ALAE" if kind == "alae" else f"AE ({kind.upper()})"
    label = {"alae": "ALAE", "l1": "AE (L1)", "l2": "AE (L2)"}[kind]

    def mean(c: str) -> str:
        return _pair((summary[c]["short"]["mean"], summary[c]["long"]["mean"]))

    def std(c: str) -> str:
        return _pair((summary[c]["short"]["std"], summary[c]["long"]["std"]))

    def diff(c: str) -> str:
        return " / ".join(f"{summary[c][k]['mean'] - v:+.2f}" for k, v in zip(FEATURES, PAPER[reference][c]))

    trials = ", ".join(f"{p}: {len(r)} ({', '.join(r)})" for p, r in runs.items() if r)
    lines = [
        "# Table 2: MNIST classification from learned features",
        "",
        f"Accuracy in %, written short / long features; trials (independently trained models) per protocol: {trials}.",
        f"1NN: exact Euclidean nearest neighbour. Linear SVM: scikit-learn LinearSVC, C = {SVM_C}, "
        f"max_iter {SVM_MAX_ITER}, {SVM_SOLVER} solver, raw unscaled features (the reference code's setting), "
        f"no parameter chosen on test data.",
        "SW: models trained on the official train set's 50k SW train part (fixed seed), scored on its other 10k. "
        "DW: models trained on the official 60k train set, scored on the official 10k test set.",
        "",
        "| model | 1NN SW | Linear SVM SW | 1NN DW | Linear SVM DW |",
        "|---|---|---|---|---|",
        f"| **{label} (this run)** | " + _cells(summary, mean) + " |",
    ]
    if any(len(r) > 1 for r in runs.values()):
        lines.append("| std over trials | " + _cells(summary, std) + " |")
    for name in ("ALAE", "AE (L1)", "AE (L2)"):
        lines.append(f"| {name} (paper) | " + " | ".join(_pair(PAPER[name][c]) for c in COLUMNS) + " |")
    lines.append(f"| difference to {reference} (paper) | " + _cells(summary, diff) + " |")
    measured = [p for p in PROTOCOLS if f"1nn {p}" in summary]
    lines += ["", "Drop from 1NN to linear SVM on short features (the paper's sign of a less entangled space):", ""]
    lines.append(f"- {label} (this run): " + ", ".join(
        f"{p} {summary[f'1nn {p}']['short']['mean'] - summary[f'svm {p}']['short']['mean']:.2f}" for p in measured))
    for name in ("ALAE", "AE (L1)", "AE (L2)"):
        p = PAPER[name]
        lines.append(f"- {name} (paper): SW {p['1nn SW'][0] - p['svm SW'][0]:.2f}, DW {p['1nn DW'][0] - p['svm DW'][0]:.2f}")
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def evaluate_runs(runs: list[str | os.PathLike], log: Callable[[str], None] = print, protocol: str | None = None,
                  device: str = "cpu") -> tuple[dict, str]:
    """Evaluate each run (a trial) on the protocol it was trained for and return (JSON summary,
    Markdown table): SW columns come from SW-trained runs, DW columns from DW-trained runs.

    With `protocol` ("SW" or "DW") only those columns are made, and a run trained for the
    other is refused: its scores would count digits it trained on, or the wrong writers.
    """
    trials, notes, kinds = [], [], set()
    by_protocol = {p: [] for p in PROTOCOLS}
    for run in map(Run.open, runs):
        cfg = run.config()
        if cfg.model.net != "mlp" or cfg.data.dataset != "mnist":
            raise UserError(f"{run}: Table 2 is defined for the MLP networks on MNIST "
                            f"(this run: {cfg.model.net} on {cfg.data.dataset})")
        trained = protocol_of(cfg)
        if protocol is not None and protocol != trained:
            raise UserError(f"{run} was trained on the {trained} split (data.split={cfg.data.split}), so it cannot give "
                            f"Table 2's {protocol} columns: train one with --set data.split={protocol.lower()}")
        kinds.add("alae" if cfg.model.kind == "alae" else cfg.model.ae_loss)
        log(f"table2: evaluating {run} ({trained}, {cfg.report.table2_weights} weights)")
        model = run.load(cfg.report.table2_weights, resolve_device(device))
        result = evaluate(model, trained, cfg.data.root, log=log)
        trials.append(result)
        by_protocol[trained].append(str(run))
        notes += [f"{run}: {n}" for n in result["notes"]]
    if len(kinds) > 1:
        raise UserError(f"table2 trials must be runs of one model kind, got {sorted(kinds)}")
    summary = aggregate(trials)
    kind = kinds.pop()
    data = {"runs": by_protocol, "model": kind,
            "svm": {"C": SVM_C, "max_iter": SVM_MAX_ITER, "solver": SVM_SOLVER, "scaling": "none"},
            "accuracy": summary, "paper": PAPER, "notes": notes}
    return data, markdown(summary, by_protocol, kind, notes)
