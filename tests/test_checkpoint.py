"""Checkpoints load only what they should: no pickles, no damaged files, no wrong shapes."""

import pickle

import pytest
import torch

from alae import checkpoint
from alae.errors import UserError
from alae.model import load


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
