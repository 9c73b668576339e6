"""Slower checks, out of the default run: `python -m pytest -m slow`."""

import pytest
import torch

from alae import config
from alae.data import mnist
from alae.metrics import table2
from alae.model import ALAE, load
from alae.training import train


def short_feature_accuracy(model) -> tuple[float, float]:
    """DW split, short features w = E(x): (1NN, linear SVM) accuracy."""
    split = mnist.table2_split("DW")
    feats = {p: model.encode(torch.from_numpy(split[p][0].copy()).unsqueeze(1)).double().numpy() for p in split}
    args = (feats["train"], split["train"][1], feats["test"], split["test"][1])
    return table2.nn1_accuracy(*args), table2.svm_accuracy(*args)[0]


@pytest.mark.slow
def test_mnist_mlp_training_makes_w_more_linearly_separable(tmp_path):
    cfg = config.load("mnist-mlp", ["train.kimg=150", "report.table2=false", "report.figures=false"])
    torch.manual_seed(cfg.train.seed)
    untrained = short_feature_accuracy(ALAE(cfg.model).eval())
    train(cfg, tmp_path / "run", progress=False)
    trained = short_feature_accuracy(load(tmp_path / "run"))
    print(f"untrained 1NN {untrained[0]:.4f} SVM {untrained[1]:.4f}; trained 1NN {trained[0]:.4f} SVM {trained[1]:.4f}")
    assert trained[0] > untrained[0] + 0.03
    assert trained[1] > untrained[1] + 0.05
