"""generate, reconstruct, mix and interpolate on a user's image files, and their errors."""

import numpy as np
import pytest
from PIL import Image

from alae import report
from alae.cli import main
from alae.data import mnist


def test_a_style_run_gets_its_report_figures(style_run):
    sizes = {name: Image.open(style_run / f"{name}.png").size
             for name in ("losses", "reconstructions", "traversals", "generations", "mixing")}
    tile = 64 + 2  # 32x32 drawn at 2x, plus padding
    assert sizes["reconstructions"][1] == 2 * tile + 2
    assert sizes["traversals"][1] == 2 * report.TRAVERSAL_PAIRS * tile + 2  # a z row and a w row per pair
    # 32 samples in rows of 8, once without truncation and once with psi 0.7
    assert sizes["generations"][1] == 2 * (report.SAMPLES // 8) * tile + 2
    # a source row, then (coarse, middle) x MIX_IMAGES destinations
    assert sizes["mixing"][1] == (1 + 2 * report.MIX_IMAGES) * tile + 2


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    images, _ = mnist.load("test")
    paths = []
    for i in range(3):
        path = folder / f"d{i}.png"
        Image.fromarray(np.pad(images[i], 2)).save(path)
        paths.append(str(path))
    rgba = folder / "big.png"  # RGBA, not square: converted and centre-cropped
    Image.new("RGBA", (90, 60), (200, 10, 10, 128)).save(rgba)
    paths.append(str(rgba))
    return paths


def test_generate_reconstruct_mix_interpolate_write_images(style_run, digit_files, tmp_path):
    run = str(style_run)
    cases = {
        "gen.png": ["generate", run, "--num", "10", "--truncation", "0.7", "--seed", "1"],
        "rec.png": ["reconstruct", run, *digit_files],
        "mix.png": ["mix", run, "--src", *digit_files[:2], "--dst", *digit_files[2:]],
        "itp.png": ["interpolate", run, digit_files[0], digit_files[1], "--steps", "5"],
    }
    sizes = {}
    for name, argv in cases.items():
        assert main(argv + ["--out", str(tmp_path / name)]) == 0, name
        sizes[name] = Image.open(tmp_path / name).size
    # the run reached level 3 (32x32), drawn at 2x: 64 px tiles plus padding
    assert sizes["itp.png"][1] == 64 + 4
    assert sizes["rec.png"][1] == 2 * 66 + 2
    # mix: a source row, then (coarse, middle) x 2 destinations
    assert sizes["mix.png"][1] == 5 * 66 + 2


@pytest.mark.parametrize("argv,message", [
    (["reconstruct", "RUN", "missing.png"], "image not found: missing.png"),
    (["reconstruct", "RUN", "NOTIMAGE"], "cannot read image"),
    (["generate", "RUN", "--num", "0"], "--num must lie from 1 to 1024 at 32x32"),
    (["generate", "no/run", "--num", "2"], "run directory not found"),
])
def test_figure_command_errors_are_one_line(style_run, tmp_path, capsys, argv, message):
    bad = tmp_path / "notimage.png"
    bad.write_text("hello")
    argv = [str(style_run) if a == "RUN" else str(bad) if a == "NOTIMAGE" else a for a in argv]
    assert main(argv + ["--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_mix_needs_a_style_run(tmp_path, capsys, digit_files):
    from tests.helpers import tiny_args
    out = tmp_path / "mlp"
    sets = tiny_args()
    assert main(["train", str(out), "--kimg", "0.032", "--quiet", *sets]) == 0
    assert main(["mix", str(out), "--src", digit_files[0], "--dst", digit_files[1], "--out", str(tmp_path / "m.png")]) == 2
    assert "style mixing needs a run of the style networks" in capsys.readouterr().err
