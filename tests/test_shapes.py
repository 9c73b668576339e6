"""The shapes factor dataset: pinned renders, factors measured on the images, the packed labels."""

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from alae.cli import main
from alae.data import packed, shapes
from alae.errors import UserError
from tests.helpers import SMALL

PINNED = {  # (resolution, grid indices) -> sha256 of the uint8 pixels, first 16 hex digits
    (32, (0, 0, 0, 0, 0)): "a59ba5a866642f80",
    (32, (1, 5, 7, 20, 3)): "60ef359d2a1074c8",
    (32, (2, 3, 33, 11, 29)): "9b07bfbb2ec3d99d",
    (64, (0, 0, 0, 0, 0)): "71b600c47444c71a",
    (64, (1, 5, 7, 20, 3)): "466725ab18a1f9dd",
    (64, (2, 5, 10, 16, 16)): "ce0a38e36e90bbe6",
}
AREA = {"square": 2.0, "ellipse": np.pi / 2, "heart": 2.18756}  # in units of the shape's radius squared


def pixels_per_unit(resolution: int) -> float:
    return shapes.RADIUS * resolution / shapes.SAMPLES


def expected_centre(k: int, resolution: int) -> float:
    """Pixel coordinate (pixel i spans [i - 0.5, i + 0.5]) of the centre at position index k."""
    return (shapes.FIRST_CENTRE + shapes.POSITION_STEP * int(k)) * resolution / shapes.SAMPLES - 0.5


def moments(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ink mass, centroid (x, y) in pixels, offsets (x, y) of every pixel from it) of [R, R]."""
    mass = image.astype(np.float64) / 255
    ys, xs = np.mgrid[:image.shape[0], :image.shape[1]]
    centre = np.array([(mass * xs).sum(), (mass * ys).sum()]) / mass.sum()
    return mass, centre, np.stack([xs - centre[0], ys - centre[1]])


def test_the_grid_is_dsprites_sized_and_ordered():
    g = shapes.grid()
    assert g.shape == (737_280, 5)
    assert g[1].tolist() == [0, 0, 0, 0, 1] and g[32].tolist() == [0, 0, 0, 1, 0] and g[-1].tolist() == [2, 5, 39, 31, 31]
    assert [len(v) for v in shapes.FACTORS.values()] == [3, 6, 40, 32, 32]
    assert shapes.FACTORS["scale"][0] == 0.5 and shapes.FACTORS["scale"][-1] == 1.0
    assert shapes.FACTORS["orientation"][20] == pytest.approx(np.pi)


@pytest.mark.parametrize("key", sorted(PINNED))
def test_pinned_renders(key):
    resolution, index = key
    image = shapes.render(np.array([index]), resolution)
    assert image.shape == (1, 1, resolution, resolution) and image.dtype == np.uint8
    assert hashlib.sha256(image.tobytes()).hexdigest()[:16] == PINNED[key]


def test_anti_aliased_white_on_black_and_the_two_resolutions_agree():
    idx = shapes.grid({"scale": [2], "orientation": [3, 17], "x": [5, 20], "y": [7]})
    small, large = shapes.render(idx, 32).astype(int), shapes.render(idx, 64).astype(int)
    assert small.min() == 0 and small.max() == 255
    assert ((small > 0) & (small < 255)).sum() > 10 * len(idx)     # grey edge pixels
    halved = large.reshape(len(idx), 1, 32, 2, 32, 2).mean(axis=(3, 5))
    assert np.abs(halved - small).max() <= 1                       # the same image, rounded apart


def test_centroid_is_the_position():
    rng = np.random.default_rng(0)
    idx = shapes.grid()[rng.choice(737_280, 120, replace=False)]
    for resolution in (32, 64):
        for index, image in zip(idx, shapes.render(idx, resolution)[:, 0]):
            _, centre, _ = moments(image)
            want = [expected_centre(index[3], resolution), expected_centre(index[4], resolution)]
            assert np.abs(centre - want).max() < 0.03 * resolution / 32, index


def test_area_grows_as_scale_squared():
    idx = shapes.grid({"orientation": [0, 7], "x": [16], "y": [16]})
    for index, image in zip(idx, shapes.render(idx, 64)[:, 0]):
        mass, _, _ = moments(image)
        unit = pixels_per_unit(64) * shapes.FACTORS["scale"][index[1]]
        assert mass.sum() / unit**2 == pytest.approx(AREA[shapes.SHAPES[index[0]]], rel=0.02), index


@pytest.mark.parametrize("shape", ["ellipse", "heart"])
def test_second_moments_turn_with_orientation(shape):
    """The long axis of the ellipse and of the heart (wider than tall) lies at the orientation,
    modulo half a turn; the heart's lobes (where its mass lies far from the centroid) give the full turn."""
    idx = shapes.grid({"shape": [shapes.SHAPES.index(shape)], "scale": [5], "x": [16], "y": [16]})
    for index, image in zip(idx, shapes.render(idx, 64)[:, 0]):
        theta = shapes.FACTORS["orientation"][index[2]]
        mass, _, (dx, dy) = moments(image)
        up = -dy   # angles counter-clockwise on screen
        cxx, cyy, cxy = (mass * dx * dx).sum(), (mass * up * up).sum(), (mass * dx * up).sum()
        axis = 0.5 * np.arctan2(2 * cxy, cxx - cyy)
        assert abs(np.angle(np.exp(2j * (axis - theta)))) / 2 < np.radians(1.5 if shape == "ellipse" else 4), index
        if shape == "heart":
            r2 = dx**2 + up**2
            lobes = np.arctan2((mass * r2 * up).sum(), (mass * r2 * dx).sum())
            assert abs(np.angle(np.exp(1j * (lobes - (theta + np.pi / 2))))) < np.radians(4), index


def test_every_shape_stays_inside_the_image():
    """At the extreme positions no ink is cut off: each shape has its mass at the centre."""
    corners = shapes.render(shapes.grid({"scale": [5], "x": [0, 31], "y": [0, 31]}), 32)
    centre = shapes.render(shapes.grid({"scale": [5], "x": [16], "y": [16]}), 32)
    mass = corners.reshape(3, 40, 4, -1).sum(axis=3, dtype=np.int64)
    assert np.abs(mass / centre.reshape(3, 40, 1, -1).sum(axis=3, dtype=np.int64) - 1).max() < 0.01


def test_render_refuses_other_resolutions():
    with pytest.raises(UserError, match="32x32 or 64x64"):
        shapes.render(np.zeros((1, 5)), 16)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes") / "set"
    packed.make("shapes", out, 32, test_fraction=0.25, keep=SMALL)
    return out


def test_labels_survive_the_packed_round_trip(small_set):
    meta = json.loads((small_set / "meta.json").read_text())
    assert meta["count"] == 72 and meta["channels"] == 1 and meta["resolution"] == 32
    factors = packed.factors(small_set)
    assert factors.names == ["shape", "scale", "orientation", "x", "y"]
    assert factors.values[0] == ["square", "ellipse", "heart"] and factors.values[1] == shapes.FACTORS["scale"]
    assert isinstance(factors.indices, np.memmap)
    assert (factors.indices == shapes.grid(SMALL)).all()
    for part, size in (("train", 54), ("test", 18)):
        images, rows = packed.read(small_set, 32, part)
        assert len(rows) == size
        assert (images[rows] == shapes.render(factors.indices[rows], 32)).all()
    images, rows = packed.read(small_set, 8, "test")    # lower resolutions: the same rows
    assert images.shape == (72, 1, 8, 8)


def test_a_dataset_without_labels_still_loads(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.new("L", (8, 8), 40 * i).save(src / f"{i}.png")
    packed.make(str(src), tmp_path / "plain", 8, channels=1)
    assert packed.factors(tmp_path / "plain") is None
    assert packed.read(tmp_path / "plain", 8)[0].shape == (3, 1, 8, 8)


@pytest.mark.parametrize("damage,message", [
    (lambda d: (d / "factors.npy").unlink(), "cannot read the factor labels"),
    (lambda d: np.save(d / "factors.npy", np.zeros((72, 4), np.uint8)), "not integer labels"),
    (lambda d: np.save(d / "factors.npy", np.zeros((72, 5), np.float32)), "not integer labels"),
    (lambda d: np.save(d / "factors.npy", np.full((72, 5), 7, np.uint8)), "beyond those"),
    (lambda d: (d / "factors.npy").write_bytes(b"\x93NUMPY garbage"), "cannot read the factor labels"),
])
def test_damaged_labels_are_refused_with_one_line(small_set, tmp_path, damage, message):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(small_set, copy)
    damage(copy)
    with pytest.raises(UserError, match=message) as e:
        packed.factors(copy)
    assert "\n" not in str(e.value)


def test_cli_make_shapes_refuses_other_resolutions(tmp_path, capsys):
    assert main(["dataset", "make", "shapes", "--out", str(tmp_path / "s"), "--resolution", "16"]) == 2
    assert "shapes are rendered at 32x32 or 64x64" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_cli_makes_the_whole_set(tmp_path, capsys):
    assert main(["dataset", "make", "shapes", "--out", str(tmp_path / "s")]) == 0
    assert "packed 737280 images (663552 train, 73728 test) from shapes at 32x32" in capsys.readouterr().out
    factors = packed.factors(tmp_path / "s")
    images, _ = packed.read(tmp_path / "s", 32)
    pick = [0, 123_456, 737_279]
    assert (images[pick] == shapes.render(factors.indices[pick], 32)).all()
