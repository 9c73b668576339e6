"""The web demo's JSON API over HTTP: what each call returns, and that bad requests get a
clear 4xx message while the server goes on serving."""

import base64
import io
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from alae import directions, figures, latent
from alae.data import mnist, source
from alae.images import load_image
from alae.model import load
from alae.run import Run
from alae.serve import server
from tests.helpers import call, pixels, running


@pytest.fixture(scope="module")
def url(demo_run):
    with running(demo_run) as base:
        yield base


@pytest.fixture(scope="module")
def model(demo_run):
    return load(demo_run)


def as_data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def expected(model, w):
    return figures.to_uint8(model.decode(torch.tensor(w)[None]))[0, :, :, 0]


def test_page_is_self_contained_and_offline(url):
    with urllib.request.urlopen(url + "/", timeout=30) as response:
        page = response.read().decode()
        csp = response.headers["Content-Security-Policy"]
    assert "<input type=\"file\" id=\"upload\"" in page
    # nothing to fetch from elsewhere, and the browser is told to fetch nothing from elsewhere
    for reference in ("http:", "https:", "<link", "<script src", "@import", "url("):
        assert reference not in page
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp


def test_info_lists_samples_directions_and_abilities(url, demo_run):
    status, info = call(url, "/api/info")
    assert status == 200
    assert len(info["samples"]) == server.SAMPLES and info["latent_size"] == 8
    assert [d["name"] for d in info["directions"]] == list(directions.read(demo_run, 8))
    assert info["generate"] and not info["truncation"] and info["groups"] == []


def test_encode_sample_reconstructs_like_the_model(url, model, demo_run):
    status, answer = call(url, "/api/encode", {"sample": 3})
    assert status == 200
    x = source.figure_images(Run(demo_run).config(), server.SAMPLES)[3]
    w = model.encode(x[None])[0]
    assert answer["w"] == pytest.approx(w.tolist(), abs=1e-5)
    rec = pixels(answer["reconstruction"])
    assert rec.shape == (28, 28) and rec.std() > 0  # not a blank image
    assert np.abs(rec.astype(int) - figures.to_uint8(model.reconstruct(x[None]))[0, :, :, 0]).max() <= 1
    assert (pixels(answer["original"]) == figures.to_uint8(x[None])[0, :, :, 0]).all()


def test_uploaded_image_is_encoded_like_a_file(url, model, tmp_path):
    digit = Image.fromarray(np.pad(mnist.load("test")[0][7], 10))  # 48x48
    status, answer = call(url, "/api/encode", {"image": as_data_url(digit)})
    assert status == 200
    path = tmp_path / "digit.png"
    digit.save(path)
    x = load_image(path, 28, 1)
    assert answer["w"] == pytest.approx(model.encode(x[None])[0].tolist(), abs=1e-5)
    assert np.abs(pixels(answer["reconstruction"]).astype(int) - expected(model, answer["w"])).max() <= 1


def test_edits_move_w_along_directions_and_change_pixels(url, model, demo_run):
    _, enc = call(url, "/api/encode", {"sample": 0})
    _, plain = call(url, "/api/decode", {"w": enc["w"]})
    assert (pixels(plain["image"]) == pixels(enc["reconstruction"])).all()
    _, moved = call(url, "/api/decode", {"w": enc["w"], "edits": {"ink": 3.0, "digit_1": -1.5}})
    d = directions.read(demo_run, 8)
    w = directions.edit(torch.tensor(enc["w"]), d, {"ink": 3.0, "digit_1": -1.5})
    assert np.abs(pixels(moved["image"]).astype(int) - expected(model, w.tolist())).max() <= 1
    assert np.abs(pixels(moved["image"]).astype(int) - pixels(plain["image"])).sum() > 0


def test_generate_and_interpolate(url, model):
    _, a = call(url, "/api/generate", {"seed": 5, "num": 3})
    _, again = call(url, "/api/generate", {"seed": 5, "num": 3})
    _, b = call(url, "/api/generate", {"seed": 6, "num": 3})
    assert len(a["images"]) == 3 and a == again and a != b
    ref = figures.to_uint8(model.generate(3, seed=5))[:, :, :, 0]
    assert all(np.abs(pixels(img).astype(int) - r).max() <= 1 for img, r in zip(a["images"], ref))
    _, ea = call(url, "/api/encode", {"sample": 1})
    _, eb = call(url, "/api/encode", {"sample": 2})
    status, strip = call(url, "/api/interpolate", {"a": ea["w"], "b": eb["w"], "steps": 5})
    assert status == 200 and len(strip["images"]) == 5
    assert (pixels(strip["images"][0]) == pixels(ea["reconstruction"])).all()
    assert (pixels(strip["images"][-1]) == pixels(eb["reconstruction"])).all()


def tiny_png(size):
    return as_data_url(Image.new("L", size))


@pytest.mark.parametrize("path,body,raw,status,message", [
    ("/api/encode", {"image": "data:text/plain;base64," + base64.b64encode(b"hello").decode()}, None, 400,
     "cannot read image upload"),
    ("/api/encode", {"image": "data:image/png;base64,@@@"}, None, 400, "not valid base64"),
    ("/api/encode", {"image": 7}, None, 400, "must be a data URL"),
    ("/api/encode", {"image": "data:image/png;base64," + base64.b64encode(bytes(9 * 2**20)).decode()}, None, 413,
     "image too large: 9.0 MiB, the limit is 8 MiB"),
    ("/api/encode", {"image": tiny_png((5000, 4000))}, None, 400, "5000x4000 pixels is more than 16 megapixels"),
    ("/api/encode", None, b"x" * (17 * 2**20), 413, "request too large: the limit is 16 MiB"),
    ("/api/encode", {}, None, 400, "missing field: send 'image' (a data URL) or 'sample'"),
    ("/api/encode", {"sample": 99}, None, 400, "'sample' must be a whole number from 0 to 9"),
    ("/api/encode", None, b"{not json", 400, "not JSON"),
    ("/api/encode", None, b"[1, 2]", 400, "must be a JSON object"),
    ("/api/decode", {}, None, 400, "'w' must be a list of 8 finite numbers"),
    ("/api/decode", {"w": [0.0] * 7}, None, 400, "'w' must be a list of 8"),
    ("/api/decode", {"w": [0.0] * 8, "edits": {"smile": 1}}, None, 400, "unknown direction 'smile'"),
    ("/api/decode", {"w": [0.0] * 8, "edits": {"ink": 99}}, None, 400, "'ink' must be a number from -10 to 10"),
    ("/api/decode", {"w": [0.0] * 8, "mix": {"w": [0.0] * 8, "group": "coarse"}}, None, 400,
     "style mixing needs a run of the style networks"),
    ("/api/generate", {}, None, 400, "missing field: 'seed'"),
    ("/api/generate", {"seed": 1, "truncation": 0.5}, None, 400, "truncation applies to the style networks only"),
    ("/api/interpolate", {"a": [0.0] * 8, "b": [0.0] * 8}, None, 400, "missing field: 'steps'"),
    ("/api/nothing", {}, None, 404, "not found: /api/nothing"),
])
def test_bad_requests_get_a_clear_message_and_the_server_keeps_serving(url, path, body, raw, status, message):
    got, answer = call(url, path, body, raw)
    assert got == status and message in answer["error"] and "\n" not in answer["error"]
    ok, good = call(url, "/api/encode", {"sample": 0})
    assert ok == 200 and good["reconstruction"]


def test_style_run_mixes_coarse_and_middle_styles(style_run):
    demo = server.Demo(style_run)
    assert demo.info()["groups"] == ["coarse", "middle"] and demo.info()["truncation"]
    a, b = demo.encode({"sample": 0}), demo.encode({"sample": 1})
    plain = pixels(demo.decode({"w": a["w"]})["image"])
    assert (plain == pixels(a["reconstruction"])).all()  # G's noise is the same on every call
    for group in ("coarse", "middle"):
        mixed = demo.decode({"w": a["w"], "mix": {"w": b["w"], "group": group}})["image"]
        ws = latent.mixed_styles(demo.model, torch.tensor(a["w"]), torch.tensor([b["w"]]), group)
        assert np.abs(pixels(mixed).astype(int) - figures.to_uint8(demo.render(ws))[0, :, :, 0]).max() <= 1
        assert np.abs(pixels(mixed).astype(int) - plain).sum() > 0
    with pytest.raises(server.RequestError, match="this run has no fine styles at 32x32"):
        demo.decode({"w": a["w"], "mix": {"w": b["w"], "group": "fine"}})
    truncated = demo.generate({"seed": 0, "num": 2, "truncation": 0.5})["images"]
    assert truncated != demo.generate({"seed": 0, "num": 2})["images"]


def test_serve_command_errors_are_one_line(demo_run, capsys):
    from alae.cli import main
    assert main(["serve", "no/such/run"]) == 2
    assert "run directory not found: no/such/run" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", str(demo_run), "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot listen on 127.0.0.1:" in err
