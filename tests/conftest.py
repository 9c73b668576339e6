"""Shared fixtures: tiny configs that train in seconds on a CPU.

The suite runs on the CPU on every machine: CUDA is hidden from this process and from every
process it starts (CUDA_VISIBLE_DEVICES is empty before torch is imported), so that
`train.device=auto` resolves to the CPU, the two-process tests start Gloo rather than NCCL,
and the bit-exact resume tests compare CPU arithmetic. `ALAE_TEST_CUDA=1` leaves the
devices visible, for a run that means to exercise a GPU.
"""

import os
import sys
from pathlib import Path

if os.environ.get("ALAE_TEST_CUDA") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

import pytest  # noqa: E402
import torch  # noqa: E402

from alae import config  # noqa: E402
from alae.model import ALAE  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent  # the checkout these tests belong to

TINY = ["model.hidden=32", "model.latent_size=8", "train.batch_size=16", "train.log_kimg=0.064",
        "train.checkpoint_kimg=0.256", "report.table2=false", "report.figures=false"]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a Python process a test starts: this checkout's alae first on the import
    path (not whatever an installed or editable copy points to), CUDA hidden, one OpenMP thread."""
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    cuda = {} if os.environ.get("ALAE_TEST_CUDA") == "1" else {"CUDA_VISIBLE_DEVICES": ""}
    return os.environ | {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"} | cuda | extra


def python(*args: str) -> list[str]:
    """argv running this interpreter (with its packages) on `args`."""
    return [sys.executable, *args]


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


@pytest.fixture(scope="session")
def packed_fashion(tmp_path_factory):
    """Fashion-MNIST packed by `alae dataset make` up to 32x32 (all 70k images, once per session)."""
    from alae.data import packed
    out = tmp_path_factory.mktemp("fashion") / "packed"
    summary = packed.make("fashion-mnist", out, 32)
    return out, summary
