"""alae dataset make: mixed files in, every resolution out, bad files skipped and named."""

import json

import numpy as np
import pytest
from PIL import Image

from alae.cli import main
from alae.data import packed
from alae.errors import UserError


@pytest.fixture
def messy_folder(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30), (255, 0, 0)).save(src / "wide.jpg")
    Image.new("L", (16, 16), 128).save(src / "gray.png")
    Image.new("RGBA", (20, 20), (0, 0, 255, 100)).save(src / "sub" / "alpha.png")
    Image.new("P", (9, 9)).save(src / "palette.png")
    Image.fromarray(np.full((8, 8), 60000, dtype=np.uint16)).save(src / "deep.png")
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (src / "empty.jpg").write_bytes(b"")
    (src / "notes.txt").write_text("not an image, not looked at")
    return src


def test_make_packs_every_resolution_and_names_skipped_files(messy_folder, tmp_path, capsys):
    out = tmp_path / "packed"
    assert main(["dataset", "make", str(messy_folder), "--out", str(out), "--resolution", "16", "--test-fraction", "0.2"]) == 0
    printed = capsys.readouterr().out
    assert "packed 5 images (4 train, 1 test)" in printed
    assert "skipped 2 file(s)" in printed and "corrupt.png" in printed and "empty.jpg" in printed
    for r in (4, 8, 16):
        assert np.load(out / f"r{r:04d}.npy").shape == (5, 3, r, r)
    full = np.load(out / "r0016.npy").astype(np.float32)
    half = np.load(out / "r0008.npy").astype(np.float32)
    assert np.abs(full.reshape(5, 3, 8, 2, 8, 2).mean(axis=(3, 5)) - half).max() <= 0.5
    meta = json.loads((out / "meta.json").read_text())
    assert sorted(meta["split"]["train"] + meta["split"]["test"]) == list(range(5))
    images, rows = packed.read(out, 8, "train")
    assert images.shape == (5, 3, 8, 8) and len(rows) == 4
    # readable files in sorted order: deep, gray, palette, sub/alpha, wide (red, centre-cropped)
    red = np.load(out / "r0016.npy")[4].astype(int)
    assert np.abs(red - np.array([255, 0, 0])[:, None, None]).max() <= 3  # a JPEG
    assert (np.load(out / "r0016.npy")[1] == 128).all()


def test_make_refuses_bad_requests(messy_folder, tmp_path):
    with pytest.raises(UserError, match="power of two"):
        packed.make(str(messy_folder), tmp_path / "a", 24)
    with pytest.raises(UserError, match="not found"):
        packed.make(str(tmp_path / "nope"), tmp_path / "b", 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no image files"):
        packed.make(str(tmp_path / "empty"), tmp_path / "c", 16)
    packed.make(str(messy_folder), tmp_path / "d", 8)
    with pytest.raises(UserError, match="already exists"):
        packed.make(str(messy_folder), tmp_path / "d", 8)
    with pytest.raises(UserError, match="packed at 32x32"):
        packed.make("mnist", tmp_path / "e", 64)


def test_mnist_packs_with_the_official_split(packed_fashion):
    folder, summary = packed_fashion
    assert (summary["train"], summary["test"]) == (60_000, 10_000)
    images, rows = packed.read(folder, 4, "test")
    assert images.shape == (70_000, 1, 4, 4) and rows[0] == 60_000


def test_training_streams_from_a_packed_folder(messy_folder, tmp_path):
    from alae import config
    from alae.training import train
    from tests.helpers import TINY_STYLE
    packed.make(str(messy_folder), tmp_path / "p", 16, channels=1, test_fraction=0.2)
    cfg = config.load("mnist-style", TINY_STYLE + ["model.resolution=16", f"data.dataset={tmp_path / 'p'}",
                                                   "data.split=dw", "train.kimg=0.064"])
    trainer = train(cfg, tmp_path / "run", progress=False)
    assert trainer.images_seen == 64 and len(trainer.stream) == 4


def test_a_folder_of_grayscale_files_packs_one_channel_unless_told(tmp_path):
    src = tmp_path / "gray"
    src.mkdir()
    Image.new("L", (16, 16), 100).save(src / "a.png")
    Image.fromarray(np.full((8, 8), 30000, dtype=np.uint16)).save(src / "deep.png")
    gray_palette = Image.new("P", (8, 8))
    gray_palette.putpalette([v for g in range(256) for v in (g, g, g)])
    gray_palette.save(src / "palette.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # skipped, and no say in the channels
    packed.make(str(src), tmp_path / "one", 8)
    assert np.load(tmp_path / "one" / "r0008.npy").shape == (3, 1, 8, 8)
    packed.make(str(src), tmp_path / "told", 8, channels=3)
    assert np.load(tmp_path / "told" / "r0008.npy").shape == (3, 3, 8, 8)
    Image.new("RGB", (8, 8), (10, 200, 30)).save(src / "colour.png")
    packed.make(str(src), tmp_path / "mixed", 8)
    assert np.load(tmp_path / "mixed" / "r0008.npy").shape == (4, 3, 8, 8)
