"""Table 2 protocol: classifiers on synthetic features with known answers, and the splits."""

import numpy as np
import pytest

from alae.data import mnist
from alae.metrics import table2


def separable(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    centres = np.eye(10, 20) * 8.0
    return centres[y] + rng.normal(size=(n, 20)), y


def test_classifiers_are_near_perfect_on_separable_features():
    train_x, train_y = separable(2000, 0)
    test_x, test_y = separable(500, 1)
    assert table2.nn1_accuracy(train_x, train_y, test_x, test_y) > 0.99
    acc, converged = table2.svm_accuracy(train_x, train_y, test_x, test_y)
    assert acc > 0.99 and converged


def test_classifiers_are_near_chance_on_random_labels():
    rng = np.random.default_rng(0)
    train_x, test_x = rng.normal(size=(3000, 20)), rng.normal(size=(1000, 20))
    train_y, test_y = rng.integers(0, 10, 3000), rng.integers(0, 10, 1000)
    assert abs(table2.nn1_accuracy(train_x, train_y, test_x, test_y) - 0.1) < 0.04
    assert abs(table2.svm_accuracy(train_x, train_y, test_x, test_y)[0] - 0.1) < 0.04


def test_nn1_is_exact():
    rng = np.random.default_rng(2)
    train_x, test_x = rng.normal(size=(700, 30)), rng.normal(size=(90, 30))
    train_y = np.arange(700)  # every training point its own class: accuracy reveals the neighbour
    brute = ((test_x[:, None, :] - train_x[None]) ** 2).sum(-1).argmin(1)
    assert table2.nn1_accuracy(train_x, train_y, test_x, brute, block=32) == 1.0


def test_splits_have_the_papers_sizes_and_do_not_overlap():
    tr, te = mnist.sw_indices()
    assert len(tr) == 50_000 and len(te) == 10_000
    assert len(np.intersect1d(tr, te)) == 0 and len(np.union1d(tr, te)) == 60_000
    assert np.array_equal(mnist.sw_indices()[1], te)  # fixed seed
    sw, dw = mnist.table2_split("SW"), mnist.table2_split("DW")
    assert [len(sw[p][0]) for p in ("train", "test")] == [50_000, 10_000]
    assert [len(dw[p][0]) for p in ("train", "test")] == [60_000, 10_000]
    assert np.bincount(sw["test"][1], minlength=10).min() > 800  # every class present in SW test


def test_aggregate_gives_mean_and_std_over_trials():
    def trial(v):
        return {"accuracy": {c: {"short": v, "long": v + 1} for c in table2.COLUMNS}}
    summary = table2.aggregate([trial(90.0), trial(92.0)])
    assert summary["svm DW"]["short"]["mean"] == pytest.approx(91.0)
    assert summary["svm DW"]["short"]["std"] == pytest.approx(1.0)
    md = table2.markdown(summary, {"SW": ["a", "b"], "DW": ["c", "d"]}, "alae", [])
    assert "| ALAE (paper) | 93.79 / 97.61 | 93.47 / 98.20 | 94.59 / 97.47 | 94.23 / 98.64 |" in md
    assert "| -3.23 / -6.64 |" in md  # svm DW: 91 - 94.23 short, 92 - 98.64 long


def test_svm_is_the_reference_setting_dual_solver_seeded(monkeypatch):
    import sklearn.svm
    made = []

    class Spy(sklearn.svm.LinearSVC):
        def __init__(self, **kwargs):
            made.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(sklearn.svm, "LinearSVC", Spy)
    train_x, train_y = separable(500, 0)
    table2.svm_accuracy(train_x, train_y, train_x, train_y)
    assert made == [{"C": 0.02, "max_iter": 5000, "dual": True, "random_state": 0}]
