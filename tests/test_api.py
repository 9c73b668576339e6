"""The Python API a user calls (`alae.load` and the model's methods): what it accepts, what it refuses
in one line, and the range of what it returns."""

import numpy as np
import pytest
import torch
from PIL import Image

import alae
from alae.errors import UserError


@pytest.fixture(scope="module")
def model(mlp_run):
    return alae.load(mlp_run)


def a_digit() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (28, 28), dtype=np.uint8)


def test_every_form_of_one_image_encodes_to_the_same_w(model, tmp_path):
    x = a_digit()
    expected = model.encode(x[None, None])
    path = tmp_path / "digit.png"
    Image.fromarray(x).save(path)
    for form in (x, x[None], torch.from_numpy(x), x.astype(np.float32) / 255, Image.fromarray(x), path, str(path),
                 [path], [Image.fromarray(x)]):
        w = model.encode(form)
        assert w.shape == (1, model.cfg.latent_size), type(form)
        torch.testing.assert_close(w, expected, rtol=1e-5, atol=1e-5)


def test_a_stack_of_grayscale_images_is_many_images(model):
    x = np.stack([a_digit(), 255 - a_digit(), a_digit()])
    assert model.encode(x).shape == (3, model.cfg.latent_size)


@pytest.mark.parametrize("bad, message", [
    (np.full((1, 1, 28, 28), 200.0, dtype=np.float32), r"float images must lie in \[0, 1\] \(pass uint8 for 0-255\)"),
    (np.full((1, 1, 28, 28), np.nan, dtype=np.float32), "NaN or infinite"),
    (np.zeros((1, 1, 28, 28), dtype=np.int64), "uint8 .* or floats"),
    (np.zeros((1, 3, 28, 28), dtype=np.uint8), r"images must be \[N, 1, H, W\]"),
    (np.zeros((1, 1, 30, 30), dtype=np.uint8), "images must be 28x28"),
    ("no-such-file.png", "image not found"),
    ({"not": "images"}, "images must be"),
])
def test_what_encode_cannot_read_is_refused_in_one_line(model, bad, message):
    with pytest.raises(UserError, match=message) as e:
        model.encode(bad)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("call, message", [
    (lambda m: m.decode(torch.zeros(2, 7)), r"w must be \[N, 8\] \(this model.s latent size\), got \[2, 7\]"),
    (lambda m: m.decode("w"), "w must be"),
    (lambda m: m.map(torch.zeros(3, 2)), r"z must be \[N, 8\]"),
    (lambda m: m.generate(-1), "positive integer"),
    (lambda m: m.generate(0), "positive integer"),
    (lambda m: m.generate(2.5), "positive integer"),
])
def test_wrong_latents_and_counts_are_refused_in_one_line(model, call, message):
    with pytest.raises(UserError, match=message):
        call(model)


def test_load_refuses_an_unknown_weights_name(mlp_run):
    with pytest.raises(UserError, match="weights must be one of ema, live, got 'bogus'"):
        alae.load(mlp_run, weights="bogus")


def test_images_come_back_in_0_1_unless_asked_for_g_output_as_it_is(model):
    w = 3 * model.map(torch.randn(64, model.cfg.latent_size))  # far from the training w: G overshoots
    raw = model.decode(w, clip=False)
    assert raw.min() < 0 or raw.max() > 1  # otherwise the clip below proves nothing
    assert torch.equal(model.decode(w), raw.clamp(0, 1))
    for images in (model.generate(8, seed=1), model.reconstruct(a_digit())):
        assert images.min() >= 0 and images.max() <= 1
    assert model.decode(w[0]).shape == (1, 1, 28, 28)  # one w
