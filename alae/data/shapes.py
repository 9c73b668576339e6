"""Shapes: sprites on the dSprites factor grid (Matthey et al. 2017), rendered procedurally.

Five factors: shape (square, ellipse, heart), scale (6 values from 0.5 to 1), orientation
(40 values over a full turn, counter-clockwise on screen), position x and y (32 values
each from 0 to 1; x left to right, y top to bottom): 3 * 6 * 40 * 32 * 32 = 737,280
images, white on black, in that order (y varies fastest).

The image is a square of 512 x 512 samples; a pixel is the mean of the S x S samples it
covers (S = 512 / resolution: 256 samples per pixel at 32x32, 64 at 64x64), which is the
anti-aliasing. A shape lies within a circle of radius 0.17 * scale of the image width
around its centre, the centre moves in steps of 10 samples (0.61 of the width in all,
from 101 to 411 samples), so every image is one sprite per (shape, scale, orientation),
rendered once and shifted by a whole number of samples, and counting covered samples is
exact: the same pixels on every machine. The square and the ellipse are centred on
their centre, the heart on its centroid, so the centroid of every shape is its position.
Rotation is about that centre; the square looks the same after a quarter turn and the
ellipse after half a turn, as in dSprites.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError

SHAPES = ("square", "ellipse", "heart")
FACTORS = {
    "shape": list(SHAPES),
    "scale": np.linspace(0.5, 1.0, 6).tolist(),
    "orientation": (2 * np.pi * np.arange(40) / 40).tolist(),   # radians
    "x": np.linspace(0.0, 1.0, 32).tolist(),
    "y": np.linspace(0.0, 1.0, 32).tolist(),
}
RESOLUTIONS = (32, 64)
SAMPLES = 512        # samples per image side
FIRST_CENTRE = 101   # sample coordinate of the centre at position 0 (a sample boundary)
POSITION_STEP = 10   # samples between neighbouring positions
RADIUS = 0.17 * SAMPLES  # circle around the centre holding a shape at scale 1, in samples
WINDOW = 2 * int(np.ceil(RADIUS)) + 2  # side of a sprite's window, even, centred on the centre
CHUNK = 32 * 32      # images rendered at a time
HEART_CENTROID = 0.29348  # centroid height of (x^2 + y^2 - 1)^3 <= x^2 y^3, whose farthest point, the tip, is 1 + it away


def grid(keep: dict[str, list[int]] | None = None) -> np.ndarray:
    """Grid indices [N, 5] of every combination of factor values (or of the indices in `keep`
    per factor name), in dataset order: shape slowest, y fastest."""
    keep = keep or {}
    axes = [np.asarray(keep.get(name, range(len(values)))) for name, values in FACTORS.items()]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(FACTORS)).astype(np.uint8)


def inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether the points (u, v) of the shape's own frame (v up, unit = its radius) lie in it."""
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 1 / np.sqrt(2)
    if shape == "ellipse":
        return u**2 + (2 * v) ** 2 <= 1
    x, y = u * (1 + HEART_CENTROID), v * (1 + HEART_CENTROID) + HEART_CENTROID
    return (x**2 + y**2 - 1) ** 3 <= x**2 * y**3


def sprite(shape: int, scale: float, orientation: float) -> np.ndarray:
    """[WINDOW, WINDOW] float32 0/1: the samples a shape covers around its centre."""
    offsets = np.arange(WINDOW) + 0.5 - WINDOW / 2
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    up = -dy / (RADIUS * scale)   # rows grow downward, the shape's frame upward
    right = dx / (RADIUS * scale)
    c, s = np.cos(orientation), np.sin(orientation)
    u, v = c * right + s * up, -s * right + c * up   # turn the image back by the orientation
    return inside(SHAPES[shape], u, v).astype(np.float32)


def pooling(positions: np.ndarray, resolution: int) -> np.ndarray:
    """[len(positions) * resolution, WINDOW] 0/1: for a window placed at each position index,
    which of its samples fall in each pixel (along one axis)."""
    per_pixel = SAMPLES // resolution
    start = FIRST_CENTRE + POSITION_STEP * np.asarray(positions) - WINDOW // 2
    pixel = (start[:, None] + np.arange(WINDOW)[None, :]) // per_pixel   # [P, WINDOW]
    return (pixel[:, None, :] == np.arange(resolution)[None, :, None]).reshape(-1, WINDOW).astype(np.float32)


def place(covered: np.ndarray, xs: np.ndarray, ys: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 [len(xs), len(ys), R, R]: the sprite at every pair of x and y position indices.

    Per pixel, the covered samples are counted by two products with 0/1 matrices (exact
    integers in float32), then scaled to 0..255 with rounding in integers."""
    counts = pooling(ys, resolution) @ covered @ pooling(xs, resolution).T   # [Y * R, X * R]
    counts = counts.reshape(len(ys), resolution, len(xs), resolution).transpose(2, 0, 1, 3)
    total = (SAMPLES // resolution) ** 2
    return ((counts.astype(np.int32) * 255 + total // 2) // total).astype(np.uint8)


def render(indices: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 images [N, 1, R, R] of grid indices [N, 5] (shape, scale, orientation, x, y)."""
    if resolution not in RESOLUTIONS:
        raise UserError(f"shapes are rendered at 32x32 or 64x64; got --resolution {resolution}")
    indices = np.asarray(indices, dtype=np.int64).reshape(-1, len(FACTORS))
    out = np.empty((len(indices), 1, resolution, resolution), dtype=np.uint8)
    for key in np.unique(indices[:, :3], axis=0):
        rows = np.flatnonzero((indices[:, :3] == key).all(axis=1))
        xs, x_at = np.unique(indices[rows, 3], return_inverse=True)
        ys, y_at = np.unique(indices[rows, 4], return_inverse=True)
        images = place(sprite(key[0], FACTORS["scale"][key[1]], FACTORS["orientation"][key[2]]), xs, ys, resolution)
        out[rows, 0] = images[x_at, y_at]
    return out


def render_into(images: np.ndarray, indices: np.ndarray, resolution: int) -> None:
    """Fill `images` (uint8 [N, 1, R, R], e.g. memory-mapped) with the renders of `indices`,
    CHUNK rows at a time (one sprite's positions, in grid order)."""
    for a in range(0, len(indices), CHUNK):
        images[a:a + CHUNK] = render(indices[a:a + CHUNK], resolution)


def factor_table() -> list[dict]:
    """The factors as the packed format stores them: [{"name": ..., "values": [...]}, ...]."""
    return [{"name": name, "values": values} for name, values in FACTORS.items()]
