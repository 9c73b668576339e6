"""Shared fixtures: tiny configs that train in seconds on a CPU."""

import pytest
import torch

from alae import config
from alae.model import ALAE

TINY = ["model.hidden=32", "model.latent_size=8", "train.batch_size=16", "train.log_kimg=0.064",
        "train.checkpoint_kimg=0.256", "report.table2=false", "report.figures=false"]


@pytest.fixture
def tiny_cfg():
    def make(preset: str = "mnist-mlp", *extra: str) -> config.Config:
        return config.load(preset, TINY + list(extra))
    return make


@pytest.fixture
def tiny_model(tiny_cfg):
    torch.manual_seed(0)
    return ALAE(tiny_cfg().model)


@pytest.fixture(scope="session")
def style_run(tmp_path_factory):
    """A tiny StyleALAE run grown to 32x32, trained by the CLI, with its report figures."""
    from alae.cli import main
    from tests.test_style_training import TINY_STYLE
    out = tmp_path_factory.mktemp("style") / "run"
    sets = [a for s in TINY_STYLE for a in ("--set", s)]
    assert main(["train", "--config", "mnist-style", "--out", str(out), "--kimg", "0.224", "--quiet", *sets]) == 0
    return out


@pytest.fixture(scope="session")
def mlp_run(tmp_path_factory):
    """A tiny MLP ALAE run (latent 8), trained briefly by the CLI."""
    from alae.cli import main
    out = tmp_path_factory.mktemp("mlp") / "run"
    sets = [a for s in TINY for a in ("--set", s)]
    assert main(["train", "--out", str(out), "--kimg", "0.064", "--quiet", *sets]) == 0
    return out


@pytest.fixture(scope="session")
def demo_run(mlp_run, tmp_path_factory):
    """A copy of mlp_run with attribute directions fitted on 300 of its training images."""
    import shutil

    from alae import directions
    run = tmp_path_factory.mktemp("demo") / "run"
    shutil.copytree(mlp_run, run)
    directions.make(run, num=300)
    return run
