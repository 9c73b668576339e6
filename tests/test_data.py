"""MNIST: the bundled files are the canonical ones; damaged files are refused clearly."""

import gzip
import hashlib

import numpy as np
import pytest

from alae.data import idx, mnist
from alae.errors import UserError


def test_bundled_mnist_has_the_canonical_shapes_and_labels():
    images, labels = mnist.load("train")
    assert images.shape == (60_000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist()[:2] == [5923, 6742]
    test_images, test_labels = mnist.load("test")
    assert test_images.shape == (10_000, 28, 28) and test_labels[:5].tolist() == [7, 2, 1, 0, 4]


def test_checksum_mismatch_is_refused(tmp_path):
    (tmp_path / "f.gz").write_bytes(b"not mnist")
    (tmp_path / "SUMS").write_text("0" * 64 + "  f.gz\n")
    with pytest.raises(UserError, match="checksum mismatch"):
        idx.verify(tmp_path, tmp_path / "SUMS")


@pytest.mark.parametrize("body,message", [
    (b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + b"abc", "wrong magic number"),
    (b"\x00\x00\x08\x02" + (3).to_bytes(4, "big"), "header is truncated"),
    (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"abc", "body has 3 bytes, its header says 5"),
])
def test_bad_idx_files_are_refused(tmp_path, body, message):
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(body))
    with pytest.raises(UserError, match=message):
        idx.read_idx(path)


def test_idx_roundtrip(tmp_path):
    path = tmp_path / "y"
    path.write_bytes(b"\x00\x00\x08\x02" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(6)))
    assert idx.read_idx(path).tolist() == [[0, 1, 2], [3, 4, 5]]


# SHA-256 of the SW split's indices into the official training set (int64, little-endian, in the
# order sw_indices returns them). Table 2's SW numbers are comparable between runs, machines
# and numpy versions only while these stay the same.
SW_TRAIN_SHA256 = "791e1abe7828565a8d67c196a4bd98fb2f48cd47b3dde1d1ab9331c5a024d39c"
SW_TEST_SHA256 = "37dab95f67f7c59a4f47961264a50fab132e26b0979496d1d745e8ccaa5f12dc"


def test_the_sw_split_is_the_pinned_one():
    train, test = mnist.sw_indices()
    assert (len(train), len(test)) == (50_000, 10_000)
    assert hashlib.sha256(np.asarray(train, dtype="<i8").tobytes()).hexdigest() == SW_TRAIN_SHA256
    assert hashlib.sha256(np.asarray(test, dtype="<i8").tobytes()).hexdigest() == SW_TEST_SHA256
    assert test[:3].tolist() == [44919, 49618, 1850]
