"""Attribute directions: the measures on hand-made images, fits where the answer is known,
the labels file and its errors, the stored file, and the check along a direction."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from alae import directions
from alae.cli import main
from alae.data import mnist
from alae.errors import UserError
from alae.model import load


def blank(h=28, w=28, c=1):
    return torch.zeros(1, c, h, w)


def test_brightness_and_contrast_reference_values():
    gray = blank() + 0.5
    assert directions.brightness(gray)[0] == pytest.approx(0.5)
    assert directions.contrast(gray)[0] == pytest.approx(0.0)
    red = blank(c=3)
    red[:, 0] = 1.0
    assert directions.brightness(red)[0] == pytest.approx(0.299)
    halves = blank()
    halves[..., :14] = 1.0  # half black, half white: mean 0.5, deviation 0.5 everywhere
    assert directions.contrast(halves)[0] == pytest.approx(0.5)
    assert directions.brightness((halves * 255).to(torch.uint8))[0] == pytest.approx(0.5)


def test_ink_mass_counts_inked_pixels():
    bar = blank()
    bar[0, 0, 5:15, 10:13] = 1.0  # a stroke 3 wide and 10 long
    assert directions.ink(bar)[0] == pytest.approx(30.0)
    assert directions.ink(bar * 0.5)[0] == pytest.approx(15.0)
    thick = blank()
    thick[0, 0, 5:15, 10:15] = 1.0
    assert directions.ink(thick)[0] > directions.ink(bar)[0]


def test_slant_from_second_moments():
    upright, right, left = blank(), blank(), blank()
    upright[0, 0, 4:24, 13:15] = 1.0
    for r in range(4, 24):
        right[0, 0, r, 27 - r] = 1.0  # top to the right: leans right by 45 degrees
        left[0, 0, r, r] = 1.0
    sheared = blank()
    for r in range(4, 24):  # one column to the right per two rows up: atan(1/2)
        sheared[0, 0, r, 14 + (23 - r) // 2] = 1.0
    values = directions.slant(torch.cat([upright, right, left, blank(), sheared]))
    assert values[:4] == pytest.approx([0.0, 45.0, -45.0, 0.0], abs=1e-9)
    assert values[4] == pytest.approx(math.degrees(math.atan(0.5)), abs=2.0)


def test_directions_are_unit_and_aligned_where_the_answer_is_known():
    rng = np.random.default_rng(0)
    w = torch.from_numpy(rng.normal(size=(400, 8)))
    u = np.array([1.0, -2.0, 0.5, 0, 0, 0, 3.0, 0])
    u /= np.linalg.norm(u)
    along = w.numpy() @ u
    # images whose brightness is set by w . u, with a random pattern on top
    level = torch.from_numpy(0.5 + 0.08 * along).float()[:, None, None, None]
    images = (level + 0.02 * torch.rand(400, 1, 16, 16)).clamp(0, 1)
    attributes = {"brightness": directions.brightness(images), "above": (along > 0).astype(float)}
    result = directions.fit_all(w.float(), attributes, "synthetic")
    bright, above = result["directions"]["brightness"], result["directions"]["above"]
    assert bright["model"] == "ridge" and above["model"] == "logistic"
    for d in (bright, above):
        vector = np.array(d["vector"])
        assert np.linalg.norm(vector) == pytest.approx(1.0)
    assert np.dot(bright["vector"], u) > 0.99
    assert np.dot(above["vector"], u) > 0.95
    assert bright["score"] > 0.95 and bright["measure"] == "brightness" and above["measure"] is None
    assert bright["scale"] == pytest.approx(np.std(w.numpy() @ np.array(bright["vector"])))


def test_measured_attributes_of_mnist_and_other_sets():
    x = torch.zeros(20, 1, 28, 28, dtype=torch.uint8)
    labels = np.arange(20) % 10
    mnist = directions.measured_attributes("mnist", x, labels)
    assert list(mnist) == [f"digit_{k}" for k in range(10)] + ["ink", "slant", "contrast"]
    assert mnist["digit_3"].tolist() == (labels == 3).astype(float).tolist()
    fashion = directions.measured_attributes("fashion-mnist", x, labels)
    assert list(fashion)[:2] == ["tshirt_top", "trouser"] and list(fashion)[-2:] == ["brightness", "contrast"]
    assert list(directions.measured_attributes("some/folder", x, None)) == ["brightness", "contrast"]


def test_cli_fits_measured_attributes_and_refuses_to_overwrite(mlp_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(mlp_run, run)
    assert main(["directions", "fit", str(run), "--num", "200"]) == 0
    out = capsys.readouterr().out
    assert "13 directions from 200 images" in out and "digit_7" in out
    stored = json.loads((run / "directions.json").read_text())
    assert stored["latent_size"] == 8 and stored["images"] == 200
    for d in stored["directions"].values():
        assert np.linalg.norm(d["vector"]) == pytest.approx(1.0)
    before = (run / "directions.json").read_text()
    assert main(["directions", "fit", str(run), "--num", "200"]) == 2
    assert "exists: pass --force to replace it" in capsys.readouterr().err
    assert (run / "directions.json").read_text() == before
    assert main(["directions", "fit", str(run), "--num", "100", "--force"]) == 0
    assert json.loads((run / "directions.json").read_text())["images"] == 100


def write_labels(folder, rows, header="image,bright,odd"):
    folder.mkdir(exist_ok=True)
    lines = [header]
    for i, row in enumerate(rows):
        lines.append(row if isinstance(row, str) else f"img{i}.png,{row[0]},{row[1]}")
    for i in range(len(rows)):
        Image.fromarray(np.full((28, 28), 20 * i, np.uint8)).save(folder / f"img{i}.png")
    path = folder / "labels.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_labels_file_fits_one_direction_per_column(mlp_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(mlp_run, run)
    labels = write_labels(tmp_path / "set", [(20 * i, i % 2) for i in range(12)])
    result = directions.make(run, labels)
    assert set(result["directions"]) == {"bright", "odd"}
    assert result["directions"]["bright"]["model"] == "ridge"
    assert result["directions"]["odd"]["model"] == "logistic"
    assert result["images"] == 12
    stored = directions.read(run, 8)
    assert stored["bright"]["vector"].norm().item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(UserError, match="does not fit this run's w of 9 numbers: make it again with --force"):
        directions.read(run, 9)
    (run / "directions.json").write_text("{")
    with pytest.raises(UserError, match="directions.json is damaged"):
        directions.read(run, 8)


ROWS = [(i, i % 2) for i in range(12)]


@pytest.mark.parametrize("make_file,message", [
    (lambda d: d / "none.csv", "labels file not found"),
    (lambda d: write_labels(d, [], header=""), "is empty"),
    (lambda d: write_labels(d, ROWS, header="file,bright,odd"), "line 1: the first column must be 'image'"),
    (lambda d: write_labels(d, ROWS, header="image"), "line 1: no attribute columns"),
    (lambda d: write_labels(d, ROWS, header="image,a b,odd"), "line 1: bad attribute name 'a b'"),
    (lambda d: write_labels(d, ROWS, header="image,odd,odd"), "line 1: attribute 'odd' appears twice"),
    (lambda d: write_labels(d, ROWS[:5]), "5 image row(s); at least 10 are needed"),
    (lambda d: write_labels(d, ROWS[:3] + ["img3.png,1"] + ROWS[4:]), "line 5: 2 fields, the header has 3"),
    (lambda d: write_labels(d, ROWS[:3] + ["img3.png,abc,1"] + ROWS[4:]),
     "line 5, column 'bright': 'abc' is not a number"),
    (lambda d: write_labels(d, ROWS[:3] + ["img3.png,nan,1"] + ROWS[4:]), "'nan' is not a number"),
    (lambda d: write_labels(d, ROWS[:3] + ["missing.png,1,1"] + ROWS[4:]), "line 5: image not found"),
    (lambda d: write_labels(d, [(i, 1) for i in range(12)]), "attribute 'odd' has one value on every row"),
])
def test_bad_labels_file_is_one_line_and_exit_2(mlp_run, tmp_path, capsys, make_file, message):
    path = make_file(tmp_path / "set")
    assert main(["directions", "fit", str(mlp_run), "--labels", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (mlp_run / "directions.json").exists()


def test_check_decodes_along_a_direction_and_measures_again(demo_run, capsys):
    table, summary = directions.check(demo_run, "ink", steps=5, span=2.0)
    assert [row["t"] for row in table] == pytest.approx([-2, -1, 0, 1, 2])
    assert summary["images"] == directions.CHECK_IMAGES and summary["measure"] == "ink"
    # at t = 0 the images are the plain reconstructions of the first held-out images
    model = load(demo_run)
    x = torch.from_numpy(mnist.load("test")[0][:directions.CHECK_IMAGES, None].copy())
    assert table[2]["mean"] == pytest.approx(directions.ink(model.reconstruct(x).clamp(0, 1)).mean(), rel=1e-5)
    assert all(-1 <= summary[k] <= 1 for k in ("rho_mean", "rho_within", "rho_median"))
    assert main(["directions", "check", str(demo_run), "digit_3", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "E(G(w)) . d_digit_3" in out and "Spearman rho" in out and len(out.splitlines()) == 7
    assert main(["directions", "check", str(demo_run), "smile"]) == 2
    assert "no direction 'smile'" in capsys.readouterr().err
