"""Training survives kills and signals, and a resumed run is bit-identical to an uninterrupted one.

Real `alae train` processes are killed (SIGKILL before the first step, after a checkpoint, at a
random moment, inside a checkpoint write) and stopped (SIGTERM, SIGINT) where each fault is
meant to land (tests/workers/paused_train.py); the run then resumes to the same weights, log and
checkpoints as a run trained straight through. In-process: SIGTERM checkpoints the step and
restores the handlers, and a log line torn by a kill is dropped on resume.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from alae import checkpoint, config
from alae.cli import main
from alae.run import Run
from alae.training import Stopped, Trainer, train
from tests.helpers import TINY, read_stats, tiny_args
from tests.workers import paused_train

pytestmark = pytest.mark.usefixtures("one_thread")  # in-process training on one thread, as the subprocesses train

ONE_THREAD = "train.threads=1"  # tiny networks train fastest on one thread, and a busy machine slows two badly
KILL_KIMG = 0.8  # 50 steps of 16 images
KILL_CHECKPOINT_KIMG = 0.064  # a checkpoint every 4 steps
FINAL = f"ckpt-{int(KILL_KIMG * 1000):012d}.safetensors"


def assert_same_checkpoint(a: Path, b: Path) -> None:
    """Every tensor bit for bit, and the same position and optimizer groups."""
    ta, ma = checkpoint.load(a)
    tb, mb = checkpoint.load(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key
    for key in ("config", "images_seen", "steps", "level", "blend", "optimizers"):
        assert ma[key] == mb[key], key


# -- kills: SIGKILL at several points (one inside a checkpoint write), SIGTERM, SIGINT --------------

def train_command(run: Path) -> list[str]:
    return ["train", "--config", "mnist-mlp", str(run), "--kimg", str(KILL_KIMG), "--quiet",
            *tiny_args(ONE_THREAD, f"train.checkpoint_kimg={KILL_CHECKPOINT_KIMG}")]


def fork_server() -> multiprocessing.context.BaseContext:
    """Processes forked from one server process that imported alae (and torch) once: each kill
    needs a fresh process, and a fresh interpreter spends most of its start importing torch. The
    server starts from this process's environment (CUDA hidden) and import path."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.workers.paused_train"])
    return context


class KillRun:
    """Runs `alae train` on one run directory in fresh processes that wait at a chosen point of
    training (tests/workers/paused_train.py), so that each kill or signal lands where it is meant
    to; kills them; counts what was tried. `close` kills whatever is still running (a failed test's)."""

    def __init__(self, run: Path, tmp: Path):
        self.run, self.tmp = run, tmp
        self.command = train_command(run)
        self.tried: list[str] = []
        self.procs: list[multiprocessing.Process] = []
        self.context = fork_server()

    def start(self, where: str, resume: bool = True) -> multiprocessing.Process:
        """`alae train` on the run, waiting at `where` (see paused_train.py) until `release`."""
        self.marker = self.tmp / f"paused-{len(self.procs)}"
        self.stderr = self.tmp / f"stderr-{len(self.procs)}"
        args = [*self.command, *(["--resume"] if resume else [])]
        proc = self.context.Process(target=paused_train.child, args=(str(self.marker), where, args, str(self.stderr)))
        proc.start()
        self.procs.append(proc)
        return proc

    def paused(self, proc: multiprocessing.Process) -> None:
        """Wait until `proc` waits at its pause point."""
        self.wait_for(proc, lambda: self.marker.is_file() and self.marker.read_text(), "the pause point")

    def release(self) -> None:
        self.marker.with_name(self.marker.name + ".go").touch()

    def close(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
            proc.join()

    def checkpoints(self) -> list[str]:
        return [p.name for p in Run(self.run).checkpoints()]

    def temps(self) -> list[Path]:
        return list((self.run / "checkpoints").glob(".ckpt-*.tmp"))

    def log_lines(self) -> int:
        path = self.run / "stats.jsonl"
        return len(path.read_text().splitlines()) if path.is_file() else 0

    def wait_for(self, proc: multiprocessing.Process, condition, what: str, timeout: float = 240.0) -> None:
        end = time.monotonic() + timeout
        while not condition():
            if not proc.is_alive():
                pytest.fail(f"training ended (status {proc.exitcode}) before {what}: {self.stderr.read_text()[-2000:]}")
            if time.monotonic() > end:
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.005)

    def stop(self, proc: multiprocessing.Process, sig: int, label: str, release: bool = False) -> tuple[int, str]:
        """Send `sig`; with `release`, then let the paused process go on (to notice the signal).
        Returns the exit status (minus the signal number for a process killed by one) and stderr."""
        os.kill(proc.pid, sig)
        if release:
            self.release()
        proc.join(240)
        assert not proc.is_alive(), f"{label}: the process did not end"
        self.tried.append(label)
        return proc.exitcode, self.stderr.read_text().strip()


@pytest.fixture
def kill_run(tmp_path):
    k = KillRun(tmp_path / "killed", tmp_path)
    yield k
    k.close()


def test_killed_training_resumes_to_the_weights_of_an_uninterrupted_run(kill_run, tmp_path):
    k = kill_run

    # 1. SIGKILL before the first step: the run directory is whole, no checkpoint; --resume starts over
    proc = k.start("start", resume=False)
    k.paused(proc)
    assert (k.run / "config.yaml").is_file()
    assert k.stop(proc, signal.SIGKILL, "SIGKILL before the first checkpoint")[0] == -signal.SIGKILL
    assert k.checkpoints() == []

    # 2. SIGKILL right after the first checkpoint is written
    proc = k.start("checkpoint")
    k.paused(proc)
    assert k.stop(proc, signal.SIGKILL, "SIGKILL after a checkpoint")[0] == -signal.SIGKILL
    assert k.checkpoints() == [f"ckpt-{int(KILL_CHECKPOINT_KIMG * 1000):012d}.safetensors"]

    # 3. SIGKILL at a random moment of training (mid-step, mid-log or mid-checkpoint; the run
    #    waits before its last step, so the kill always comes before the end)
    chance = random.Random(0)
    proc, lines = k.start("last-step"), k.log_lines() + chance.randint(1, 4)
    k.wait_for(proc, lambda: k.log_lines() >= lines, "training to run")
    time.sleep(chance.uniform(0.0, 0.05))
    assert k.stop(proc, signal.SIGKILL, "SIGKILL at a random moment")[0] == -signal.SIGKILL

    # 4. SIGKILL during a checkpoint write: the temporary file is there, the rename not yet done
    before = k.checkpoints()
    proc = k.start("checkpoint-write")
    k.paused(proc)
    assert k.stop(proc, signal.SIGKILL, "SIGKILL during a checkpoint write")[0] == -signal.SIGKILL
    assert k.temps() and k.checkpoints() == before  # the half-done write is no checkpoint
    assert Run(k.run).latest_checkpoint().name == before[-1]

    # 5. SIGTERM: the step ends, a checkpoint is written where training stood, status 143
    proc = k.start("checkpoint")
    k.paused(proc)
    code, err = k.stop(proc, signal.SIGTERM, "SIGTERM", release=True)
    assert code == 128 + signal.SIGTERM and len(err.splitlines()) == 1 and "stopped by SIGTERM at step" in err
    images = int(err.split("(")[1].split(" images")[0])
    assert Run(k.run).latest_checkpoint().name == f"ckpt-{images:012d}.safetensors" and f"ckpt-{images:012d}" in err
    assert not k.temps()  # the killed write's temporary file was removed by the next save

    # 6. SIGINT (Ctrl-C) before the first step of a resumed run: one step, a checkpoint, status 130
    proc = k.start("start")
    k.paused(proc)
    code, err = k.stop(proc, signal.SIGINT, "SIGINT", release=True)
    assert code == 130 and len(err.splitlines()) == 1 and "stopped by SIGINT at step" in err
    assert f"({images + 16} images)" in err

    # 7. resume to the end, and train the same run straight through, both in this process
    assert main([*train_command(k.run), "--resume"]) == 0
    straight_run = tmp_path / "straight"
    assert main(train_command(straight_run)) == 0

    assert FINAL in k.checkpoints()
    assert_same_checkpoint(straight_run / "checkpoints" / FINAL, k.run / "checkpoints" / FINAL)
    assert [r["kimg"] for r in read_stats(k.run)] == [r["kimg"] for r in read_stats(straight_run)]
    assert len(k.checkpoints()) == 3 and not k.temps()
    print(f"\nkills survived: {len(k.tried)} of {len(k.tried)} tried ({'; '.join(k.tried)}); "
          f"final weights equal to the uninterrupted run's, bit for bit")


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """An uninterrupted tiny run of 0.32 kimg (20 steps, a checkpoint at 256 images)."""
    run = tmp_path_factory.mktemp("straight") / "run"
    train(config.load("mnist-mlp", TINY + ["train.kimg=0.32"]), run, progress=False)
    return run


def test_sigterm_in_process_checkpoints_the_step_and_restores_handlers(straight_run, tiny_cfg, tmp_path, monkeypatch):
    step = Trainer.step

    def step_then_signal(self):
        stats = step(self)
        if self.steps == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return stats

    monkeypatch.setattr(Trainer, "step", step_then_signal)
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped, match=r"stopped by SIGTERM at step 5 \(80 images\)") as stopped:
        train(tiny_cfg("mnist-mlp", "train.kimg=0.32"), tmp_path / "split", progress=False)
    assert stopped.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is handler
    assert Run(tmp_path / "split").latest_checkpoint().name == "ckpt-000000000080.safetensors"
    monkeypatch.setattr(Trainer, "step", step)
    train(tiny_cfg("mnist-mlp", "train.kimg=0.32"), tmp_path / "split", resume=True, progress=False)
    assert_same_checkpoint(Run(straight_run).latest_checkpoint(), Run(tmp_path / "split").latest_checkpoint())


def test_a_torn_log_line_from_a_kill_is_dropped_on_resume(straight_run, tiny_cfg, tmp_path):
    train(tiny_cfg("mnist-mlp", "train.kimg=0.128"), tmp_path / "split", progress=False)
    with open(tmp_path / "split" / "stats.jsonl", "a") as f:
        f.write('{"kimg": 0.15, "step": 1')
    train(tiny_cfg("mnist-mlp", "train.kimg=0.32"), tmp_path / "split", resume=True, progress=False)
    assert [r["kimg"] for r in read_stats(tmp_path / "split")] == [r["kimg"] for r in read_stats(straight_run)]
    assert_same_checkpoint(Run(straight_run).latest_checkpoint(), Run(tmp_path / "split").latest_checkpoint())
