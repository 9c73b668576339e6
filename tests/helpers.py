"""Helpers and constants shared by the test modules (and the workers under tests/workers/).

Fixtures live in tests/conftest.py; what a test imports by name lives here, so that no test
module imports another. Importing this module does not hide CUDA: tests/conftest.py does that
before torch is imported, and the processes the tests start get `child_env`.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from alae import checkpoint, config
from alae.cli import main
from alae.serve import server

ROOT = Path(__file__).resolve().parent.parent  # the checkout these tests belong to

# -- tiny configs that train in seconds on a CPU ------------------------------------------------------

TINY = ["model.hidden=32", "model.latent_size=8", "train.batch_size=16", "train.log_kimg=0.064",
        "train.checkpoint_kimg=0.256", "report.table2=false", "report.figures=false"]

TINY_STYLE = ["model.latent_size=8", "model.start_ch=4", "model.max_ch=8", "model.f_layers=2",
              "train.level_kimg=0.064", "train.fade_kimg=0.032", "train.level_batch=[8, 8, 8, 4]",
              "train.level_epochs=0", "train.log_kimg=0.016", "train.checkpoint_kimg=0.5"]

# a subset of the shapes data set for `packed.make("shapes", ..., keep=SMALL)`
SMALL = {"scale": [0, 5], "orientation": [0, 13], "x": [0, 9, 31], "y": [4, 30]}  # 3*2*2*3*2 = 72 images


def tiny_style(*extra: str) -> config.Config:
    return config.load("mnist-style", TINY_STYLE + list(extra))


# -- processes a test starts -------------------------------------------------------------------------

def child_env(**extra: str) -> dict[str, str]:
    """The environment of a Python process a test starts: this checkout's alae first on the import
    path (not whatever an installed or editable copy points to), CUDA hidden, one OpenMP thread."""
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    cuda = {} if os.environ.get("ALAE_TEST_CUDA") == "1" else {"CUDA_VISIBLE_DEVICES": ""}
    return os.environ | {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"} | cuda | extra


def python(*args: str) -> list[str]:
    """argv running this interpreter (with its packages) on `args`."""
    return [sys.executable, *args]


# -- the command line, in this process -----------------------------------------------------------------

def set_args(*settings: str) -> list[str]:
    """`--set S` for each of `settings`."""
    return [a for s in settings for a in ("--set", s)]


def tiny_args(*extra: str) -> list[str]:
    """`--set S` for each setting of TINY, then of `extra`."""
    return set_args(*TINY, *extra)


def run_cli(capsys, *argv) -> tuple[int, str]:
    """`alae ARGV...` (each argument as str) in this process: (exit status, stderr stripped)."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip()


def assert_one_line_error(code: int, err: str, *parts: str) -> None:
    """A user error: exit status 2, one line on stderr starting `alae: error: `, no traceback,
    naming each of `parts`."""
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("alae: error: "), err
    assert "Traceback" not in err
    for part in parts:
        assert part in err, (part, err)


# -- training runs ---------------------------------------------------------------------------------------

def read_stats(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


def full_state(trainer) -> dict:
    state = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    state |= {f"ema.{k}": v for k, v in trainer.ema.state_dict().items()}
    for name, opt in trainer.optimizers.items():
        tensors, groups = checkpoint.optimizer_tensors(opt, f"opt.{name}.")
        state |= tensors
        state[f"groups.{name}"] = groups
    state["steps"] = trainer.steps
    return state


def assert_same_state(a, b) -> None:
    """Two trainers hold the same networks, EMA, optimizer state and step count, bit for bit."""
    a, b = full_state(a), full_state(b)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]) if isinstance(a[key], torch.Tensor) else a[key] == b[key], key


class Recorder(torch.optim.SGD):
    """An optimizer that keeps the gradients it is stepped with (None where a parameter got none)
    and leaves the weights alone: what a step asks its optimizers to apply."""

    def __init__(self, params):
        super().__init__(params, lr=0.0)
        self.grads = None

    def step(self, closure=None):
        self.grads = [None if p.grad is None else p.grad.clone() for g in self.param_groups for p in g["params"]]


# -- the web demo ----------------------------------------------------------------------------------------

@contextmanager
def running(run):
    """The demo of a run served on a free port of 127.0.0.1 in a thread; yields its base URL."""
    httpd = server.make_server(run, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def call(base, path, body=None, raw=None):
    """(status, JSON answer) of a GET (no body) or a POST."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def pixels(data_url):
    """A PNG data URL -> uint8 array [H, W]."""
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def train_tiny(out: Path, preset: str, dataset: Path, *extra: str) -> Path:
    """Train `preset` at the TINY sizes on `dataset` for 64 images through the CLI; returns the run."""
    sets = set_args(*TINY, f"data.dataset={dataset}", "train.threads=1", *extra)
    assert main(["train", "--config", preset, str(out), "--kimg", "0.064", "--quiet", *sets]) == 0
    return out
