"""Checkpoints: written atomically, loaded only when they should be.

A failed checkpoint write (disk full, read-only place) keeps the previous checkpoint and stops
with one line; the temporary files of killed writes are ignored and cleaned. Loading never runs
code (no pickles) and refuses damaged, truncated, foreign or mismatched checkpoints with one line
naming the fault; a damaged newest checkpoint falls back to the newest whole one, and a run of an
older alae loads to the same model.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import alae
from alae import checkpoint, config, files
from alae.errors import UserError
from alae.model import ALAE, load
from alae.run import Run
from alae.training import train
from tests.helpers import TINY, assert_one_line_error, run_cli, tiny_args

pytestmark = pytest.mark.usefixtures("one_thread")  # in-process training on one thread


# -- the format: names, keep-last, what a load refuses ------------------------------------------------

def test_roundtrip_and_keep_last(tmp_path):
    for images in (10, 20, 30, 40):
        checkpoint.save(tmp_path, images, {"a": torch.full((3,), float(images))}, {"images_seen": images}, keep=3)
    names = [p.name for p in checkpoint.list_checkpoints(tmp_path)]
    assert names == [f"ckpt-{i:012d}.safetensors" for i in (20, 30, 40)]
    tensors, meta = checkpoint.load(checkpoint.latest(tmp_path))
    assert torch.equal(tensors["a"], torch.full((3,), 40.0))
    assert meta == {"images_seen": 40, "alae_version": checkpoint.alae_version()}
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))


def test_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UserError, match="is a pickle"):
        checkpoint.load(path)
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(UserError, match="is a pickle"):
        checkpoint.load(path)


def test_truncated_checkpoint_is_refused(tmp_path):
    path = checkpoint.save(tmp_path, 1, {"a": torch.zeros(1000)}, {}, keep=1)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match="truncated or damaged"):
        checkpoint.load(path)


def test_mismatched_shapes_are_named(tiny_model, tmp_path):
    tensors = {f"ema.{k}": v for k, v in tiny_model.state_dict().items()}
    tensors["ema.E.mlp.layers.0.weight"] = torch.zeros(3, 3)
    with pytest.raises(UserError, match=r"E.mlp.layers.0.weight has shape \(3, 3\)"):
        checkpoint.load_into(tiny_model, tensors, "ema.", tmp_path)
    del tensors["ema.E.mlp.layers.0.weight"]
    with pytest.raises(UserError, match="missing"):
        checkpoint.load_into(tiny_model, tensors, "ema.", tmp_path)


def test_load_of_missing_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="run directory not found"):
        load(tmp_path / "nope")
    with pytest.raises(UserError, match="no checkpoint"):
        load(tmp_path)


def test_header_length_that_looks_like_a_pickle_opcode_still_loads(tmp_path):
    # a safetensors file starts with its header length; 0x80 there must not read as a pickle
    for pad in range(300):
        path = checkpoint.save(tmp_path, pad, {"a": torch.ones(2)}, {"pad": "x" * pad}, keep=1)
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length ending in 0x80")
    tensors, meta = checkpoint.load(path)
    assert meta["pad"] == "x" * pad and torch.equal(tensors["a"], torch.ones(2))


def test_a_checkpoint_file_names_the_images_it_was_written_after(tmp_path):
    for images in (0, 1234, 250_016, 10**11):
        assert checkpoint.images_of(checkpoint.checkpoint_path(tmp_path, images)) == images


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
    code, err = run_cli(capsys, "train", out, "--kimg", "1", "--quiet", *tiny_args())
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


# -- damaged and foreign checkpoints: never run code; refused with one line naming what is wrong ---------

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
    code, err = run_cli(capsys, "train", run, "--resume", "--kimg", "0.128", "--quiet")
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
