"""Fault injection: training survives kills, signals, failed writes, divergence and hostile input.

Each test injects one fault named in the robustness guarantees and checks the promise:
a killed run resumes to the bit-identical weights of an uninterrupted one; checkpoint
writes are atomic and a failed one keeps the previous checkpoint; loading refuses what
it cannot read with one line; bad images, idx files and configs are used correctly,
skipped and counted, or refused with one line, and never end in a traceback.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import multiprocessing
import os
import pickle
import random
import shutil
import signal
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save_file

import alae
from alae import checkpoint, config, files
from alae.cli import main
from alae.data import idx, packed
from alae.data.stream import DataStream
from alae.errors import UserError
from alae.images import load_image
from alae.model import ALAE
from alae.run import Run
from alae.train import Stopped, Trainer, train
from tests.conftest import TINY
from tests.test_train import read_stats
from tests.workers import paused_train

ONE_THREAD = "train.threads=1"  # tiny networks train fastest on one thread, and a busy machine slows two badly
KILL_KIMG = 0.8  # 50 steps of 16 images
KILL_CHECKPOINT_KIMG = 0.064  # a checkpoint every 4 steps
FINAL = f"ckpt-{int(KILL_KIMG * 1000):012d}.safetensors"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """In-process training on one thread, as the subprocesses train; the thread count is restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip()


def assert_one_line_error(code: int, err: str, *parts: str) -> None:
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("alae: error: "), err
    assert "Traceback" not in err
    for part in parts:
        assert part in err, (part, err)


def tiny_args(*extra: str) -> list[str]:
    return [a for s in [*TINY, *extra] for a in ("--set", s)]


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
    return ["train", "--config", "mnist-mlp", "--out", str(run), "--kimg", str(KILL_KIMG), "--quiet",
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


# -- checkpoint writes: atomic, a failed one keeps the previous, temp files ignored ------------------

def test_failed_checkpoint_write_keeps_the_previous_and_stops_with_one_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real_fsync, calls = os.fsync, []

    def fsync_disk_full_on_second_checkpoint(fd):
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name.startswith(".ckpt-") and name.endswith(".tmp"):
            calls.append(name)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync_disk_full_on_second_checkpoint)
    code, err = run_cli(capsys, "train", "--out", out, "--kimg", "1", "--quiet", *tiny_args())
    assert_one_line_error(code, err, "cannot write checkpoint", "ckpt-000000000512", "No space left on device")
    assert [p.name for p in Run(out).checkpoints()] == ["ckpt-000000000256.safetensors"]
    assert not list((out / "checkpoints").glob(".*.tmp"))
    tensors, meta = checkpoint.load(Run(out).latest_checkpoint())
    assert meta["images_seen"] == 256 and all(torch.isfinite(t.float()).all() for t in tensors.values())


@pytest.mark.parametrize("fault", ["rename on a read-only file system", "read-only folder"])
def test_checkpoint_write_to_a_read_only_place_is_refused_cleanly(tmp_path, monkeypatch, fault):
    folder = tmp_path / "checkpoints"
    first = checkpoint.save(folder, 10, {"a": torch.ones(3)}, {"images_seen": 10}, keep=3)
    if fault == "read-only folder":
        if os.geteuid() == 0:
            pytest.skip("root ignores folder permissions; the rename fault covers this")
        folder.chmod(0o555)
        reason = "Permission denied"
    else:
        def refuse(src, dst):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        monkeypatch.setattr(files.os, "replace", refuse)
        reason = "Read-only file system"
    try:
        with pytest.raises(UserError, match=f"cannot write checkpoint .*ckpt-000000000020.safetensors: {reason}"):
            checkpoint.save(folder, 20, {"a": torch.zeros(3)}, {"images_seen": 20}, keep=3)
    finally:
        folder.chmod(0o755)
    assert checkpoint.list_checkpoints(folder) == [first]
    assert not list(folder.glob(".*.tmp"))
    assert torch.equal(checkpoint.load(first)[0]["a"], torch.ones(3))


def test_temp_files_of_killed_writes_are_ignored_and_cleaned(tmp_path):
    folder = tmp_path / "checkpoints"
    first = checkpoint.save(folder, 10, {"a": torch.ones(3)}, {}, keep=3)
    stale = folder / ".ckpt-000000000020.safetensors.tmp"
    stale.write_bytes(first.read_bytes()[:100])
    assert checkpoint.latest(folder) == first
    checkpoint.save(folder, 30, {"a": torch.ones(3)}, {}, keep=3)
    assert not stale.exists()
    assert [p.name for p in checkpoint.list_checkpoints(folder)] == [first.name, "ckpt-000000000030.safetensors"]


# -- NaN and infinite losses ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_at_that_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys, bad):
    batch = DataStream.batch

    def poisoned(self, start, size, *args):
        x = batch(self, start, size, *args)
        return x * bad if start == 320 else x  # the 21st step's images

    monkeypatch.setattr(DataStream, "batch", poisoned)
    out = tmp_path / "run"
    code, err = run_cli(capsys, "train", "--out", out, "--kimg", "1", "--quiet", *tiny_args())
    assert_one_line_error(code, err, "training diverged at step 21 (336 images): loss_d is nan",
                          "ckpt-000000000256.safetensors")
    assert Run(out).latest_checkpoint().name == "ckpt-000000000256.safetensors"
    assert len(Run(out).checkpoints()) == 1
    assert all(torch.isfinite(t.float()).all() for t in checkpoint.load(Run(out).latest_checkpoint())[0].values())
    assert max(r["kimg"] for r in read_stats(out)) <= 0.32


# -- loading: never runs code; refuses what it cannot read, naming what is wrong -------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    train(config.load("mnist-mlp", TINY + ["train.kimg=0.064"]), run, progress=False)
    return run


def rewrite(path: Path, tensors: dict, header: dict) -> None:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=header)


def hostile_checkpoints(trained_run: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (a damaged or foreign checkpoint file, the message alae.load must give)."""
    good = Run(trained_run).latest_checkpoint()
    data = good.read_bytes()
    tensors, meta = checkpoint.load(good)
    meta.pop("alae_version")
    ours = checkpoint.alae_version()
    header = {"format": "alae-checkpoint", "format_version": "1", "alae_version": ours, "meta": json.dumps(meta)}
    cases = {}

    def case(name: str, message: str, content: bytes | None = None, **changes) -> None:
        path = folder / f"{name}.safetensors"
        if content is not None:
            path.write_bytes(content)
        else:
            rewrite(path, changes.get("tensors", tensors), header | changes.get("header", {}))
        cases[name] = (path, message)

    case("pickle", "is a pickle", pickle.dumps({"ema.w_avg": torch.zeros(8)}))
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    case("torch-save", "is a pickle", buffer.getvalue())
    case("zero-bytes", "truncated or damaged", b"")
    for cut in (7, 8, 64, len(data) // 2, len(data) - 1):
        case(f"truncated-{cut}", "truncated or damaged", data[:cut])
    case("random-bytes", "truncated or damaged", bytes(random.Random(1).getrandbits(8) for _ in range(4096)))
    case("foreign-safetensors", "not an alae checkpoint", header={"format": "something-else"})
    case("newer-format", f"checkpoint format 2; this alae {ours} reads format 1: it needs alae 9.0.0 or newer",
         header={"format_version": "2", "alae_version": "9.0.0"})
    case("unknown-format-version", "unknown checkpoint format version 'x'", header={"format_version": "x"})
    case("metadata-not-json", "its metadata is not a JSON object", header={"meta": "{not json"})
    older = meta | {"config": meta["config"] | {"model": meta["config"]["model"] | {"dropped_key": 1}}}
    case("config-of-another-version", f"written by alae 0.0.5 and its config does not fit this alae {ours} "
         "(unknown config key model.dropped_key): load it with alae 0.0.5",
         header={"meta": json.dumps(older), "alae_version": "0.0.5"})
    other = ALAE(config.load("mnist-mlp", TINY + ["model.latent_size=4"]).model).state_dict()
    case("other-architecture", "ema.D.mlp.layers.0.bias has shape (4,), the model expects (8,)",
         tensors=tensors | {f"ema.{k}": v for k, v in other.items()})
    case("missing-tensor", "does not match this architecture: missing ['G.mlp.layers.0.bias']",
         tensors={k: v for k, v in tensors.items() if k != "ema.G.mlp.layers.0.bias"})
    return cases


def test_hostile_checkpoints_are_refused_with_one_line_naming_the_fault(trained_run, tmp_path, capsys):
    cases = hostile_checkpoints(trained_run, tmp_path)
    for name, (path, message) in cases.items():
        with pytest.raises(UserError) as refused:
            alae.load(path)
        assert message in str(refused.value), (name, str(refused.value))
        assert len(str(refused.value).splitlines()) == 1, name
    code, err = run_cli(capsys, "generate", cases["pickle"][0], "--out", tmp_path / "g.png")
    assert_one_line_error(code, err, "is a pickle")
    print(f"\nhostile checkpoints refused with one line: {len(cases)} of {len(cases)} ({', '.join(cases)})")


def test_resume_from_a_damaged_checkpoint_is_refused_with_one_line(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    latest = Run(run).latest_checkpoint()
    latest.write_bytes(latest.read_bytes()[:1000])
    code, err = run_cli(capsys, "train", "--out", run, "--resume", "--kimg", "0.128", "--quiet")
    assert_one_line_error(code, err, str(latest), "truncated or damaged")


def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_whole_one(tmp_path, capsys):
    """Loading, the figure commands and --resume pass over a truncated newest checkpoint for the
    next older whole one, with one warning line naming it; the resumed run equals an
    uninterrupted one (it continues exactly from the older checkpoint)."""
    cfg = TINY + ["train.checkpoint_kimg=0.032"]
    straight = train(config.load("mnist-mlp", cfg + ["train.kimg=0.128"]), tmp_path / "straight", progress=False)
    run = tmp_path / "run"
    train(config.load("mnist-mlp", cfg + ["train.kimg=0.064"]), run, progress=False)
    older, newest = Run(run).checkpoints()[-2:]
    newest.write_bytes(newest.read_bytes()[:-100])
    capsys.readouterr()
    model = alae.load(run)
    warning = capsys.readouterr().err.strip().splitlines()
    assert warning == [f"warning: damaged checkpoint {newest.name} in {run / 'checkpoints'}; using {older.name}"]
    assert torch.equal(model.state_dict()["E.mlp.layers.0.weight"],
                       checkpoint.load(older)[0]["ema.E.mlp.layers.0.weight"])
    assert run_cli(capsys, "generate", run, "--num", "4", "--out", tmp_path / "g.png")[0] == 0
    resumed = train(config.load("mnist-mlp", cfg + ["train.kimg=0.128"]), run, resume=True, progress=False)
    assert resumed.images_seen == 128
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_run_of_an_older_alae_loads_to_the_same_model(trained_run, tmp_path):
    """Checkpoints written before alae recorded its version lack w_avg, level, blend, steps and newer config keys."""
    old_run = tmp_path / "old"
    shutil.copytree(trained_run, old_run)
    path = Run(old_run).latest_checkpoint()
    tensors, meta = checkpoint.load(path)
    newer = ("d_nonlinear", "start_ch", "max_ch", "style_mixing_prob", "truncation_psi", "truncation_cutoff",
             "w_avg_beta")
    old_meta = {"config": {"model": {k: v for k, v in meta["config"]["model"].items() if k not in newer},
                           "train": meta["config"]["train"], "data": meta["config"]["data"]},
                "images_seen": meta["images_seen"], "optimizers": meta["optimizers"]}
    rewrite(path, {k: v for k, v in tensors.items() if not k.endswith("w_avg")},
            {"format": "alae-checkpoint", "format_version": "1", "meta": json.dumps(old_meta)})
    x = torch.rand(4, 1, 28, 28)
    old, new = alae.load(old_run), alae.load(trained_run)
    assert torch.equal(old.encode(x), new.encode(x)) and torch.equal(old.decode(new.encode(x)), new.decode(new.encode(x)))
    with pytest.raises(UserError, match="lacks steps, level, blend: it was written by an earlier alae"):
        train(config.load("mnist-mlp", TINY + ["train.kimg=0.128"]), old_run, resume=True, progress=False)


# -- run directories -------------------------------------------------------------------------------------

def test_a_run_directory_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--kimg", "0.032", "--quiet", *tiny_args()]) == 0
    code, err = run_cli(capsys, "train", "--out", out, "--kimg", "0.064", "--quiet", *tiny_args())
    assert_one_line_error(code, err, "already exists: pass --resume to continue it or --force to start over")
    assert [p.name for p in Run(out).checkpoints()] == ["ckpt-000000000032.safetensors"]
    assert main(["train", "--out", str(out), "--kimg", "0.016", "--force", "--quiet", *tiny_args()]) == 0
    assert [p.name for p in Run(out).checkpoints()] == ["ckpt-000000000016.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing left beside it
    (tmp_path / "a-file").write_text("")
    code, err = run_cli(capsys, "train", "--out", tmp_path / "a-file" / "run", "--quiet", *tiny_args())
    assert_one_line_error(code, err, "cannot create run directory", "a-file/run")


# -- bad images ------------------------------------------------------------------------------------------

def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_file(width: int, height: int, depth: int, color_type: int, rows: bytes) -> bytes:
    """A PNG written chunk by chunk: `rows` are the filtered scanlines, however few."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def png_header_only(width: int, height: int) -> bytes:
    """A small PNG claiming width x height 8-bit grayscale pixels, with none of them in it: a decompression bomb."""
    return png_file(width, height, 8, 0, b"")


def noise_png() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return png_bytes(Image.fromarray(pixels))


def cmyk_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(buffer, format="JPEG", quality=100)
    return buffer.getvalue()


def palette_png() -> bytes:
    image = Image.new("P", (8, 8), 3)
    image.putpalette([0, 0, 0] * 3 + [200, 100, 50] + [0, 0, 0] * 252)
    return png_bytes(image)


def sixteen_bit_png(value: int) -> bytes:
    return png_bytes(Image.fromarray(np.full((8, 8), value, dtype=np.uint16)))


def sixteen_bit_rgb_png() -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow keeps the high byte)."""
    rows = b"".join(b"\x00" + struct.pack(">HHH", 0xC800, 0x6400, 0x3200) * 8 for _ in range(8))
    return png_file(8, 8, 16, 2, rows)


# name -> (file bytes, the [R, G, B] every pixel must read as; or the message of its refusal)
IMAGE_CASES = {
    "rgba.png": (png_bytes(Image.new("RGBA", (8, 8), (10, 20, 30, 100))), [10, 20, 30]),
    "palette.png": (palette_png(), [200, 100, 50]),
    "gray.png": (png_bytes(Image.new("L", (8, 8), 128)), [128, 128, 128]),
    "gray-alpha.png": (png_bytes(Image.new("LA", (8, 8), (77, 10))), [77, 77, 77]),
    "one-bit.png": (png_bytes(Image.new("1", (8, 8), 1)), [255, 255, 255]),
    "sixteen-bit-gray.png": (sixteen_bit_png(60000), [60000 / 257] * 3),
    "sixteen-bit-dark.png": (sixteen_bit_png(1000), [1000 / 257] * 3),
    "sixteen-bit-rgb.png": (sixteen_bit_rgb_png(), [200, 100, 50]),
    "cmyk.jpg": (cmyk_jpeg(), [255, 255, 255]),
    "corrupt.png": (b"\x89PNG\r\n\x1a\n garbage", "Truncated File Read"),
    "truncated.png": (noise_png()[:2000], "truncated"),
    "zero-bytes.png": (b"", "cannot identify image file"),
    "text-named.jpg": (b"just some notes, not an image\n" * 10, "cannot identify image file"),
    "bomb-huge.png": (png_header_only(30000, 30000), "could be decompression bomb"),
    "bomb-80-megapixels.png": (png_header_only(9000, 9000), "9000x9000 pixels is more than 64 megapixels"),
}


@pytest.mark.parametrize("name", IMAGE_CASES)
def test_each_bad_or_unusual_image_is_used_correctly_or_refused_with_one_line(tmp_path, name):
    content, expected = IMAGE_CASES[name]
    path = tmp_path / name
    path.write_bytes(content)
    if isinstance(expected, str):
        with pytest.raises(UserError) as refused:
            load_image(path, 4, 3)
        assert expected in str(refused.value) and len(str(refused.value).splitlines()) == 1
        return
    rgb = load_image(path, 4, 3)
    gray = load_image(path, 4, 1)
    assert rgb.shape == (3, 4, 4) and gray.shape == (1, 4, 4)
    tolerance = 2.5 if name.endswith(".jpg") else 0.6
    assert (rgb * 255 - torch.tensor(expected)[:, None, None]).abs().max() <= tolerance, rgb[:, 0, 0] * 255
    if len(set(expected)) == 1:
        assert (gray * 255 - expected[0]).abs().max() <= tolerance


def test_dataset_make_uses_skips_and_counts_every_case(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for name, (content, _) in IMAGE_CASES.items():
        (src / name).write_bytes(content)
    refused = sorted(name for name, (_, expected) in IMAGE_CASES.items() if isinstance(expected, str))
    assert main(["dataset", "make", str(src), str(tmp_path / "out"), "--resolution", "4"]) == 0
    printed = capsys.readouterr().out
    used = len(IMAGE_CASES) - len(refused)
    assert f"packed {used} images" in printed and f"skipped {len(refused)} file(s)" in printed
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert sorted(item["file"] for item in meta["skipped"]) == refused
    assert np.load(tmp_path / "out" / "r0004.npy").shape == (used, 3, 4, 4)
    print(f"\nbad images: {len(IMAGE_CASES)} tried, {used} used correctly, {len(refused)} skipped and counted")


@pytest.mark.parametrize("files,message", [
    ({}, "no image files (jpg, png, webp, bmp) in"),
    ({"a.png": b"", "b.jpg": b"text"}, "none of the 2 image files in"),
])
def test_a_folder_without_readable_images_is_refused_with_one_line(tmp_path, capsys, files, message):
    src = tmp_path / "src"
    src.mkdir()
    for name, content in files.items():
        (src / name).write_bytes(content)
    code, err = run_cli(capsys, "dataset", "make", src, tmp_path / "out", "--resolution", "4")
    assert_one_line_error(code, err, message)


@pytest.mark.parametrize("damage,message", [
    ("meta.json not JSON", "meta.json is damaged (not JSON"),
    ("meta.json without split", "meta.json is damaged (lacks split)"),
    ("images truncated", "cannot read"),
    ("images of another shape", "not uint8 images (1, 4, 4)"),
])
def test_a_damaged_packed_dataset_is_refused_with_one_line(tmp_path, damage, message):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.new("L", (8, 8), 40 * i).save(src / f"{i}.png")
    out = tmp_path / "packed"
    packed.make(str(src), out, 8, channels=1)
    meta_file, images = out / "meta.json", out / "r0004.npy"
    if damage == "meta.json not JSON":
        meta_file.write_text('{"format": "alae-packed-images", ')
    elif damage == "meta.json without split":
        meta_file.write_text(json.dumps({k: v for k, v in json.loads(meta_file.read_text()).items() if k != "split"}))
    elif damage == "images truncated":
        images.write_bytes(images.read_bytes()[:60])
    else:
        np.save(images, np.zeros((3, 1, 4, 5), dtype=np.uint8))
    with pytest.raises(UserError) as refused:
        packed.read(out, 4)
    assert message in str(refused.value) and len(str(refused.value).splitlines()) == 1


# -- bad idx files ---------------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()


GOOD_IDX = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))

IDX_CASES = {
    "wrong-magic": (b"\x00\x00\x0d" + GOOD_IDX[3:], False, "wrong magic number"),
    "short-body": (GOOD_IDX[:-5], False, "idx body has 19 bytes, its header says 24"),
    "long-body": (GOOD_IDX + b"\x00", False, "idx body has 25 bytes, its header says 24"),
    "truncated-header": (GOOD_IDX[:10], False, "idx header is truncated"),
    "empty": (b"", False, "wrong magic number"),
    "too-many-dimensions": (bytes([0, 0, 8, 200]) + b"\x00\x00\x00\x01" * 200 + b"\x07", False,
                            "200 dimensions, more than 16"),
    "gzip-not-gzip": (GOOD_IDX, True, "cannot read idx file"),
    "gzip-truncated": (gzip.compress(GOOD_IDX)[:-12], True, "cannot read idx file"),
    "gzip-corrupt-stream": (gzip.compress(GOOD_IDX)[:10] + b"\xff" * 30, True, "cannot read idx file"),
}


@pytest.mark.parametrize("name", IDX_CASES)
def test_bad_idx_files_are_refused_with_one_line(tmp_path, name):
    content, gz, message = IDX_CASES[name]
    path = tmp_path / ("x-idx3-ubyte.gz" if gz else "x-idx3-ubyte")
    path.write_bytes(content)
    with pytest.raises(UserError) as refused:
        idx.read_idx(path)
    assert message in str(refused.value) and len(str(refused.value).splitlines()) == 1


def test_training_on_a_damaged_mnist_folder_is_refused_with_one_line(tmp_path, capsys):
    root = tmp_path / "mnist"
    root.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (root / name).write_bytes(gzip.compress(GOOD_IDX[:-5]))
    code, err = run_cli(capsys, "train", "--out", tmp_path / "run", "--kimg", "0.016", "--quiet",
                        *tiny_args(f"data.root={root}"))
    assert_one_line_error(code, err, "train-images-idx3-ubyte.gz: idx body has 19 bytes")


# -- property tests: random and mutated bytes never escape as anything but a UserError ---------------------

def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, value) edits: 0 overwrites a byte, 1 inserts one, 2 deletes one, 3 truncates."""
    out = bytearray(data)
    for kind, position, value in edits:
        at = position % (len(out) + 1)
        if kind == 0 and at < len(out):
            out[at] = value
        elif kind == 1:
            out.insert(at, value)
        elif kind == 2 and at < len(out):
            del out[at]
        elif kind == 3:
            del out[at:]
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=8)
SEEDS = {"png": png_bytes(Image.new("RGB", (16, 12), (1, 2, 3))), "palette": palette_png(),
         "16bit": sixteen_bit_png(40000), "jpeg": cmyk_jpeg()}
# No example database (nothing written into the checkout); a failure prints the example and a
# @reproduce_failure blob that replays it. Under CI (the CI variable set, as CI services do) the
# examples are derived from each test's source, so a failure there recurs on every rerun.
FUZZ = settings(max_examples=60, deadline=None, database=None, print_blob=True, derandomize="CI" in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def image_result_is_sound(path: Path) -> None:
    try:
        image = load_image(path, 8, 3)
    except UserError as e:
        assert len(str(e).splitlines()) == 1
        return
    assert image.shape == (3, 8, 8) and image.dtype == torch.float32
    assert bool(((image >= 0) & (image <= 1)).all())


@FUZZ
@given(content=st.binary(max_size=2048))
def test_random_bytes_as_an_image_give_an_image_or_a_user_error(tmp_path, content):
    path = tmp_path / "fuzz.png"
    path.write_bytes(content)
    image_result_is_sound(path)


@FUZZ
@given(seed=st.sampled_from(sorted(SEEDS)), edits=EDITS)
def test_mutated_images_give_an_image_or_a_user_error(tmp_path, seed, edits):
    path = tmp_path / "fuzz.png"
    path.write_bytes(mutate(SEEDS[seed], edits))
    image_result_is_sound(path)


def idx_result_is_sound(path: Path, raw: bytes) -> None:
    try:
        array = idx.read_idx(path)
    except UserError as e:
        assert len(str(e).splitlines()) == 1
        return
    assert array.dtype == np.uint8 and array.ndim == raw[3]
    assert array.shape == tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(raw[3]))
    assert array.tobytes() == raw[4 + 4 * raw[3]:]


@FUZZ
@given(content=st.binary(max_size=256), gz=st.booleans())
def test_random_bytes_as_idx_give_an_array_or_a_user_error(tmp_path, content, gz):
    path = tmp_path / ("fuzz-idx.gz" if gz else "fuzz-idx")
    path.write_bytes(gzip.compress(content) if gz else content)
    idx_result_is_sound(path, content)


@FUZZ
@given(edits=EDITS, kind=st.sampled_from(["raw", "gzip", "mutated gzip"]))
def test_mutated_idx_give_an_array_or_a_user_error(tmp_path, edits, kind):
    raw = GOOD_IDX if kind == "mutated gzip" else mutate(GOOD_IDX, edits)
    content = {"raw": raw, "gzip": gzip.compress(raw), "mutated gzip": mutate(gzip.compress(GOOD_IDX), edits)}[kind]
    path = tmp_path / ("fuzz-idx" if kind == "raw" else "fuzz-idx.gz")
    path.write_bytes(content)
    if kind == "mutated gzip":
        try:
            raw = gzip.decompress(content)
        except (OSError, EOFError, zlib.error):
            with pytest.raises(UserError):
                idx.read_idx(path)
            return
    idx_result_is_sound(path, raw)


@settings(FUZZ, max_examples=15)
@given(files=st.lists(st.tuples(st.sampled_from(sorted(SEEDS)), EDITS), min_size=1, max_size=4))
def test_dataset_make_on_mutated_files_packs_or_refuses_with_a_user_error(tmp_path_factory, files):
    folder = tmp_path_factory.mktemp("fuzz")
    src = folder / "src"
    src.mkdir()
    for i, (seed, edits) in enumerate(files):
        (src / f"{i}.png").write_bytes(mutate(SEEDS[seed], edits))
    try:
        summary = packed.make(str(src), folder / "out", 8)
    except UserError as e:
        assert "none of the" in str(e)
        return
    assert summary["count"] + len(summary["skipped"]) == len(files)
    assert np.load(folder / "out" / "r0008.npy").shape == (summary["count"], 3, 8, 8)


# -- bad configuration -----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv,message", [
    (["--set", "train.no_such_key=1"], "unknown config key train.no_such_key"),
    (["--set", "nosection.key=1"], "unknown config key nosection.key"),
    (["--set", "train.batch_size=many"], "config key train.batch_size: expected int, got 'many'"),
    (["--set", "train.ae_trains_F=3"], "config key train.ae_trains_F: expected bool, got 3"),
    (["--set", "train.lr=.nan"], "config key train.lr: must be a finite number, got nan"),
    (["--set", "train.kimg=.inf"], "config key train.kimg: must be a finite number, got inf"),
    (["--config", "mnist-style", "--set", "model.resolution=24"],
     "config key model.resolution: must be a power of two from 4 to 1024, got 24"),
    (["--set", "model.resolution=2"], "config key model.resolution: must lie from 4 to 1024, got 2"),
])
def test_bad_configuration_is_one_line_naming_the_key(tmp_path, capsys, argv, message):
    code, err = run_cli(capsys, "train", "--out", tmp_path / "run", "--quiet", *argv)
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "run").exists()


def test_resume_with_another_latent_size_is_one_line_naming_the_key(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    code, err = run_cli(capsys, "train", "--out", run, "--resume", "--kimg", "0.128", "--quiet",
                        "--set", "model.latent_size=16")
    assert_one_line_error(code, err, "model config differs in model.latent_size (checkpoint 8, now 16)")
    (run / "config.yaml").write_text("model: [unclosed\n")
    code, err = run_cli(capsys, "train", "--out", run, "--resume", "--quiet")
    assert_one_line_error(code, err, "config.yaml is not valid YAML")
