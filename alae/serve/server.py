"""The web demo: encode, reconstruct, edit, mix, generate and interpolate a run's images in a browser.

Python's standard library only: a ThreadingHTTPServer answers a JSON API and serves one page
(page.html, package data) whose script and style are inline. Images travel as PNG data URLs,
and a Content-Security-Policy lets the page load nothing but from this server, so the demo
works offline and nothing leaves the machine.

    GET  /                 the page
    GET  /api/info         the run: resolution, what it can do, its directions, held-out test images
    POST /api/encode       {"image": data URL} or {"sample": index} -> {"w", "original", "reconstruction"}
    POST /api/decode       {"w", "edits": {direction: t}, "mix": {"w", "group"}} -> {"image"}
    POST /api/generate     {"seed", "num", "truncation"} -> {"images"}
    POST /api/interpolate  {"a": w, "b": w, "steps"} -> {"images"}

Edits move w by t times a direction's scale along its unit vector (see alae.directions).
Mixing feeds G the edited w except at the coarse, middle or fine style inputs, which take the
second w (section 5, Figure 9). A mistake answers 4xx with {"error": one line}; the server
goes on serving.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch
from PIL import Image

from .. import directions as directions_mod
from .. import figures, images, latent
from ..data import source
from ..device import resolve_device
from ..errors import UserError
from ..run import Run

PAGE = Path(__file__).with_name("page.html")
MAX_UPLOAD_BYTES = 8 * 2**20       # an uploaded image file
MAX_UPLOAD_PIXELS = 16 * 2**20     # width x height of an uploaded image, checked before decoding
MAX_BODY = 16 * 2**20              # a request body (base64 makes the image a third larger)
SAMPLES = 10                       # held-out test images offered on the page
MAX_GENERATE = 16
MAX_STEPS = 16
NOISE_SEED = 0
MAX_EDIT = 10.0                    # largest |t| of an edit, in the direction's scales
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
       "connect-src 'self'; form-action 'none'; base-uri 'none'")


class RequestError(UserError):
    """A bad request: answered with its status and message."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def png(x: torch.Tensor) -> str:
    """One image [C, H, W] in [0, 1] -> a PNG data URL."""
    array = figures.to_uint8(x[None])[0]
    buf = io.BytesIO()
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


class Demo:
    """A run's EMA model, directions and sample images, and the API's operations on them.

    The methods take and return JSON values; model calls are serialised by a lock.
    """

    def __init__(self, run: Path, device: str = "cpu"):
        self.run = Run.open(run)
        self.cfg = self.run.config()
        self.model = self.run.load(device=resolve_device(device))
        has_directions = self.run.directions_path.is_file()
        self.directions = directions_mod.read(self.run, self.latent) if has_directions else {}
        self.samples = source.figure_images(self.cfg, SAMPLES)
        self.lock = threading.Lock()

    @property
    def latent(self) -> int:
        return self.model.cfg.latent_size

    def info(self) -> dict:
        model = self.model
        return {
            "run": self.run.path.name,
            "net": model.cfg.net,
            "kind": model.cfg.kind,
            "resolution": model.resolution,
            "latent_size": self.latent,
            "generate": model.F is not None,
            "truncation": model.is_style and model.F is not None,
            "groups": [g for g in latent.STYLE_GROUPS if model.is_style and latent.style_group_inputs(model, g)],
            "directions": [{"name": n, "model": d["model"], "score": d["score"]} for n, d in self.directions.items()],
            "samples": [png(x) for x in self.samples],
        }

    def encode(self, body: dict) -> dict:
        if "image" in body:
            x = self.upload(body["image"])
        elif "sample" in body:
            index = integer(body, "sample", 0, len(self.samples) - 1)
            x = self.samples[index]
        else:
            raise RequestError("missing field: send 'image' (a data URL) or 'sample' (an index)")
        with self.lock:
            w = self.model.encode(x[None])
            rec = self.render(w)[0]
        return {"w": w[0].tolist(), "original": png(x), "reconstruction": png(rec)}

    def upload(self, url: object) -> torch.Tensor:
        """A data URL of an image file -> the model's input [C, R, R], floats in [0, 1]."""
        if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
            raise RequestError("'image' must be a data URL (data:image/...;base64,...)")
        try:
            raw = base64.b64decode(url.split(";base64,", 1)[1], validate=True)
        except (binascii.Error, ValueError):
            raise RequestError("'image' is not valid base64") from None
        if len(raw) > MAX_UPLOAD_BYTES:
            raise RequestError(f"image too large: {len(raw) / 2**20:.1f} MiB, the limit is "
                               f"{MAX_UPLOAD_BYTES // 2**20} MiB", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        img, peak = images.decode(io.BytesIO(raw), self.model.cfg.channels, "upload", MAX_UPLOAD_PIXELS)
        return images.to_input(img, peak, self.model.resolution, self.model.cfg.channels)

    def decode(self, body: dict) -> dict:
        w = self.w(body, "w")
        edits = body.get("edits") or {}
        if not isinstance(edits, dict):
            raise RequestError("'edits' must be an object {direction: amount}")
        for name in edits:
            if name not in self.directions:
                raise RequestError(f"unknown direction {name!r}")
            number(edits, name, -MAX_EDIT, MAX_EDIT)
        w = directions_mod.edit(w, self.directions, edits)[None]
        mix = body.get("mix")
        if mix is not None:
            if not isinstance(mix, dict):
                raise RequestError("'mix' must be an object {\"w\": [...], \"group\": ...}")
            w = latent.mixed_styles(self.model, w[0], self.w(mix, "w")[None], self.group(mix))
        with self.lock:
            x = self.render(w)
        return {"image": png(x[0])}

    def group(self, mix: dict) -> str:
        if not self.model.is_style:
            raise RequestError("style mixing needs a run of the style networks (e.g. --config mnist-style)")
        group = mix.get("group")
        if group not in latent.STYLE_GROUPS:
            raise RequestError(f"'group' must be one of {', '.join(latent.STYLE_GROUPS)}")
        if not latent.style_group_inputs(self.model, group):
            raise RequestError(f"this run has no {group} styles at {self.model.resolution}x{self.model.resolution}")
        return group

    def generate(self, body: dict) -> dict:
        seed = integer(body, "seed", 0, 2**31 - 1)
        num = integer(body, "num", 1, MAX_GENERATE) if "num" in body else 1
        psi = number(body, "truncation", 0.0, 1.0) if body.get("truncation") is not None else None
        with self.lock:
            x = self.model.generate(num, seed=seed, truncation=psi)
        return {"images": [png(img) for img in x]}

    def interpolate(self, body: dict) -> dict:
        a, b = self.w(body, "a"), self.w(body, "b")
        steps = integer(body, "steps", 2, MAX_STEPS)
        with self.lock:
            x = self.render(latent.lerp_rows(a[None], b[None], steps)[0])
        return {"images": [png(img) for img in x]}

    def render(self, w: torch.Tensor) -> torch.Tensor:
        """G(w) with G's noise inputs (style networks) drawn from one fixed seed, so that an
        image changes only where its w does."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(NOISE_SEED)
            return self.model.decode(w)

    def w(self, body: dict, key: str) -> torch.Tensor:
        value = body.get(key)
        if not (isinstance(value, list) and len(value) == self.latent
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
            raise RequestError(f"'{key}' must be a list of {self.latent} finite numbers (a w from /api/encode)")
        return torch.tensor(value, dtype=torch.float32)


def integer(body: dict, key: str, low: int, high: int) -> int:
    value = body.get(key)
    if key not in body:
        raise RequestError(f"missing field: {key!r}")
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(f"{key!r} must be a whole number from {low} to {high}")
    return value


def number(body: dict, key: str, low: float, high: float) -> float:
    value = body.get(key)
    if key not in body:
        raise RequestError(f"missing field: {key!r}")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(f"{key!r} must be a number from {low:g} to {high:g}")
    return float(value)


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the server's Demo; every answer but the page is JSON."""

    server_version = "alae-demo"
    timeout = 60  # seconds a silent client may hold its connection
    posts = {"/api/encode": Demo.encode, "/api/decode": Demo.decode,
             "/api/generate": Demo.generate, "/api/interpolate": Demo.interpolate}

    def do_GET(self) -> None:
        if self.path == "/":
            self.send(HTTPStatus.OK, PAGE.read_bytes(), "text/html; charset=utf-8")
        elif self.path == "/api/info":
            self.reply(HTTPStatus.OK, self.server.demo.info())
        else:
            self.reply(HTTPStatus.NOT_FOUND, {"error": f"not found: {self.path}"})

    def do_POST(self) -> None:
        try:
            if self.path not in self.posts:
                raise RequestError(f"not found: {self.path}", HTTPStatus.NOT_FOUND)
            body = self.body()
            self.reply(HTTPStatus.OK, self.posts[self.path](self.server.demo, body))
        except RequestError as e:
            self.reply(e.status, {"error": str(e)})
        except UserError as e:
            self.reply(HTTPStatus.BAD_REQUEST, {"error": str(e)})
        except Exception as e:  # a bug: keep serving, say so in the page and on stderr
            traceback.print_exc()
            self.reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {type(e).__name__}: {e}"})

    def body(self) -> dict:
        """The request's JSON object; a body over MAX_BODY is read and dropped, then refused."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise RequestError("the request needs a Content-Length", HTTPStatus.LENGTH_REQUIRED) from None
        if length > MAX_BODY:
            left = length  # read it all, so that the client hears the answer rather than a reset
            while left > 0 and (chunk := self.rfile.read(min(2**16, left))):
                left -= len(chunk)
            raise RequestError(f"request too large: the limit is {MAX_BODY // 2**20} MiB "
                               f"(an image file of at most {MAX_UPLOAD_BYTES // 2**20} MiB)",
                               HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            body = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            raise RequestError("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        return body

    def reply(self, status: HTTPStatus, data: dict) -> None:
        self.send(status, json.dumps(data).encode(), "application/json")

    def send(self, status: HTTPStatus, payload: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(payload)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:  # answers that went well are not logged
        if isinstance(code, int) and code >= 400:
            super().log_request(code, size)


def make_server(run: Path, host: str = "127.0.0.1", port: int = 7860, device: str = "cpu") -> ThreadingHTTPServer:
    """A server for a run, listening but not yet serving (port 0: a free port)."""
    demo = Demo(run, device)
    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    server.demo = demo
    return server


def serve(run: Path, host: str = "127.0.0.1", port: int = 7860, device: str = "cpu") -> None:
    """Serve a run's demo until Ctrl-C."""
    server = make_server(run, host, port, device)
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"alae demo of {run} at http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
