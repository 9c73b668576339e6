"""Slower checks, out of the default run: `python -m pytest -m slow`."""

import pytest

from alae import config
from alae.metrics import table2
from alae.model import load
from alae.train import train


@pytest.mark.slow
def test_mnist_mlp_learns_features_a_linear_svm_separates(tmp_path):
    # 30 kimg (half an epoch) of the real preset already gives separable long features
    cfg = config.load("mnist-mlp", ["train.kimg=30", "report.table2=false", "report.figures=false"])
    train(cfg, tmp_path / "run", progress=False)
    result = table2.evaluate(load(tmp_path / "run"))["accuracy"]
    assert result["svm DW"]["long"] > 95.0
    assert result["1nn DW"]["short"] > 85.0
