"""Bad input is used correctly, skipped and counted, or refused with one line; never a traceback.

Unusual and broken images (alpha, palette, 16-bit, CMYK, truncated, empty, decompression
bombs), image folders with nothing readable, damaged packed data sets, bad idx files and a
damaged MNIST folder, then property tests: random and mutated bytes as images, idx files and
dataset folders give a sound result or a UserError, nothing else.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from alae.cli import main
from alae.data import idx, packed
from alae.errors import UserError
from alae.images import load_image
from tests.helpers import assert_one_line_error, run_cli, tiny_args

pytestmark = pytest.mark.usefixtures("one_thread")


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
    assert main(["dataset", "make", str(src), "--out", str(tmp_path / "out"), "--resolution", "4"]) == 0
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
    code, err = run_cli(capsys, "dataset", "make", src, "--out", tmp_path / "out", "--resolution", "4")
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
    code, err = run_cli(capsys, "train", tmp_path / "run", "--kimg", "0.016", "--quiet",
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
    channels = 1 if all(map(packed.is_grayscale, sorted(src.iterdir()))) else 3  # as dataset make detects them
    assert np.load(folder / "out" / "r0008.npy").shape == (summary["count"], channels, 8, 8)
