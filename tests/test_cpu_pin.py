"""The suite runs on the CPU on any machine (tests/conftest.py): a GPU would change what the tests
check (NCCL for the two-process tests, non-deterministic kernels for the bit-exact resume tests)."""

import os
import subprocess

import pytest
import torch

from alae.device import resolve_device
from alae.training import Trainer
from tests.helpers import ROOT, child_env, python

pytestmark = pytest.mark.skipif(os.environ.get("ALAE_TEST_CUDA") == "1", reason="ALAE_TEST_CUDA=1 leaves CUDA visible")


def test_cuda_is_hidden_here_and_train_device_auto_is_the_cpu(tiny_cfg, tmp_path):
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert not torch.cuda.is_available()
    assert resolve_device("auto") == torch.device("cpu")
    trainer = Trainer(tiny_cfg(), tmp_path)  # train.device=auto, as in every preset
    assert trainer.device == torch.device("cpu") and trainer.model.device == torch.device("cpu")


def test_child_processes_see_no_cuda_and_import_this_checkout():
    env = child_env()
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
    probe = "import alae, torch; print(alae.__file__); print(torch.cuda.is_available())"
    done = subprocess.run(python("-c", probe), env=env, cwd="/", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    where, cuda = done.stdout.split()
    assert where == str(ROOT / "alae" / "__init__.py") and cuda == "False"
