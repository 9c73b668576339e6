"""Table 2's protocols end to end: what an SW model trains on, which runs give which columns,
and the report's numbers against an independent computation on the same features."""

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC

from alae import config
from alae.cli import main
from alae.data import mnist
from alae.metrics import table2
from alae.run import Run
from alae.training import Trainer, train
from tests.helpers import TINY

# sha256 of the int64 SW train and test indices into the official training set
SW_TRAIN_SHA = "791e1abe7828565a8d67c196a4bd98fb2f48cd47b3dde1d1ab9331c5a024d39c"
SW_TEST_SHA = "37dab95f67f7c59a4f47961264a50fab132e26b0979496d1d745e8ccaa5f12dc"


def test_the_sw_split_is_pinned():
    tr, te = mnist.sw_indices()
    assert hashlib.sha256(tr.astype(np.int64).tobytes()).hexdigest() == SW_TRAIN_SHA
    assert hashlib.sha256(te.astype(np.int64).tobytes()).hexdigest() == SW_TEST_SHA


class Recording:
    """An image array that records the rows read from it."""

    def __init__(self, images):
        self.images, self.read = images, []

    def __getitem__(self, idx):
        self.read.append(np.asarray(idx).copy())
        return self.images[idx]


def test_an_sw_model_never_reads_its_test_digits(tmp_path):
    cfg = config.load("mnist-mlp", TINY + ["data.split=sw", "train.batch_size=64"])
    trainer = Trainer(cfg, tmp_path / "run")
    sw_train, sw_test = mnist.sw_indices()
    assert np.array_equal(np.sort(trainer.stream.rows.numpy()), np.sort(sw_train))
    assert np.array_equal(np.sort(trainer.stream._order(3)[0].numpy()), np.sort(sw_train))
    trainer.stream.images = Recording(trainer.stream.images)
    for _ in range(3):
        trainer.step()
    read = np.concatenate(trainer.stream.images.read)
    assert len(read) == 3 * 64 and np.isin(read, sw_train).all() and not np.isin(read, sw_test).any()
    dw = Trainer(config.load("mnist-mlp", TINY), tmp_path / "dw")
    assert np.array_equal(dw.stream.rows.numpy(), np.arange(60_000))


def run_dir(tmp_path, name, *sets):
    run = tmp_path / name
    run.mkdir()
    Run(run).save_config(config.load("mnist-mlp", TINY + list(sets)))
    return run


@pytest.mark.parametrize("split,asked", [("sw", "DW"), ("dw", "SW")])
def test_a_run_trained_on_the_other_split_is_refused(tmp_path, capsys, split, asked):
    run = run_dir(tmp_path, "run", f"data.split={split}")
    assert main(["eval", "table2", str(run), "--protocol", asked]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"trained on the {split.upper()} split" in err and f"cannot give Table 2's {asked} columns" in err


FULL_SPLIT = mnist.table2_split


def small_split(protocol, root=""):
    """The first 600 training and 300 test digits of the protocol's split."""
    full = FULL_SPLIT(protocol, root)
    return {"train": tuple(a[:600] for a in full["train"]), "test": tuple(a[:300] for a in full["test"])}


def features_by_hand(model, images):
    """E's layers applied one by one: (short = E's output after its activation, if any; long = E's second
    hidden layer)."""
    h = torch.tensor(images.reshape(len(images), -1)).float() / 255.0
    layers, slopes = model.E.mlp.layers, model.E.mlp.slopes
    with torch.no_grad():
        for i, (layer, slope) in enumerate(zip(layers, slopes)):
            if i == len(layers) - 1:
                long_ = h
            h = h @ (layer.weight * layer.weight_scale).T + layer.bias * layer.lrmul
            h = h if slope is None else nnf.leaky_relu(h, slope)
    return h.double().numpy(), long_.double().numpy()


def test_table2_end_to_end_equals_an_independent_computation(tmp_path, monkeypatch):
    """Two tiny trained runs (SW and DW): each gives only its protocol's columns, from the
    right digits, and each number equals scikit-learn's 1NN and LinearSVC on features
    computed layer by layer."""
    monkeypatch.setattr(mnist, "table2_split", small_split)
    runs = {}
    for split in ("sw", "dw"):
        cfg = config.load("mnist-mlp", TINY + [f"data.split={split}", "train.kimg=0.128"])
        runs[split] = tmp_path / split
        train(cfg, runs[split], progress=False)
    data, md = table2.evaluate_runs([runs["sw"], runs["dw"]], log=lambda m: None)
    assert data["runs"] == {"SW": [str(runs["sw"])], "DW": [str(runs["dw"])]}
    from alae.model import load
    for protocol, split in (("SW", "sw"), ("DW", "dw")):
        model = load(runs[split])
        parts = small_split(protocol)
        (tr_s, tr_l), (te_s, te_l) = (features_by_hand(model, parts[p][0]) for p in ("train", "test"))
        y_tr, y_te = parts["train"][1], parts["test"][1]
        for kind, tr, te in (("short", tr_s, te_s), ("long", tr_l, te_l)):
            knn = KNeighborsClassifier(1).fit(tr, y_tr).score(te, y_te)
            svm = LinearSVC(C=table2.SVM_C, max_iter=table2.SVM_MAX_ITER, dual=True, random_state=0).fit(tr, y_tr).score(te, y_te)
            assert data["accuracy"][f"1nn {protocol}"][kind]["mean"] == pytest.approx(100 * knn, abs=1e-9)
            assert data["accuracy"][f"svm {protocol}"][kind]["mean"] == pytest.approx(100 * svm, abs=1e-9)
    assert "1nn SW" in data["accuracy"] and "svm DW" in data["accuracy"]
    sw_row = next(line for line in md.splitlines() if "(this run)" in line)
    assert sw_row.count("—") == 0
    only_dw, md_dw = table2.evaluate_runs([runs["dw"]], log=lambda m: None)
    assert set(only_dw["accuracy"]) == {"1nn DW", "svm DW"}
    assert next(line for line in md_dw.splitlines() if "(this run)" in line).count("—") == 2
