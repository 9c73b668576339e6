"""Shared fixtures: tiny configs that train in seconds on a CPU (helpers and constants that
tests import by name are in tests/helpers.py).

The suite runs on the CPU on every machine: CUDA is hidden from this process and from every
process it starts (CUDA_VISIBLE_DEVICES is empty before torch is imported), so that
`train.device=auto` resolves to the CPU, the two-process tests start Gloo rather than NCCL,
and the bit-exact resume tests compare CPU arithmetic. `ALAE_TEST_CUDA=1` leaves the
devices visible, for a run that means to exercise a GPU.
"""

import os

if os.environ.get("ALAE_TEST_CUDA") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

import pytest  # noqa: E402
import torch  # noqa: E402

from alae import config  # noqa: E402
from alae.model import ALAE  # noqa: E402
from tests.helpers import SMALL, TINY, TINY_STYLE, set_args  # noqa: E402


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
    out = tmp_path_factory.mktemp("style") / "run"
    sets = set_args(*TINY_STYLE)
    assert main(["train", "--config", "mnist-style", str(out), "--kimg", "0.224", "--quiet", *sets]) == 0
    return out


@pytest.fixture(scope="session")
def mlp_run(tmp_path_factory):
    """A tiny MLP ALAE run (latent 8), trained briefly by the CLI."""
    from alae.cli import main
    out = tmp_path_factory.mktemp("mlp") / "run"
    sets = set_args(*TINY)
    assert main(["train", str(out), "--kimg", "0.064", "--quiet", *sets]) == 0
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


@pytest.fixture(scope="module")
def one_thread():
    """In-process training on one thread (tiny networks train fastest on one thread, and a busy
    machine slows two badly), as the kill tests' subprocesses train; the thread count is restored
    at the end of the module that asked for it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A tiny MLP run of 0.064 kimg trained in-process, with one checkpoint; tests copy it before changing it."""
    from alae.training import train
    run = tmp_path_factory.mktemp("trained") / "run"
    train(config.load("mnist-mlp", TINY + ["train.kimg=0.064"]), run, progress=False)
    return run


@pytest.fixture(scope="session")
def shapes_set(tmp_path_factory):
    """The shapes factor dataset at 32x32 cut to 72 images, half of them held out."""
    from alae.data import packed
    out = tmp_path_factory.mktemp("dis") / "shapes"
    packed.make("shapes", out, 32, test_fraction=0.5, keep=SMALL)
    return out
