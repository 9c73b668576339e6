"""Attribute directions in w: unit vectors along which an attribute of the decoded image changes.

ALAE's w is meant to be less entangled than z (paper, section 6), so a linear model on
encoded images finds directions that edit one attribute. `alae directions RUN` encodes the
run's training images, fits one linear model per attribute on w, and stores the unit
directions in RUN/directions.json:

- a 0/1 attribute (a class, a yes/no label): logistic regression (scikit-learn,
  L2, C = 1); the direction is its weight vector, pointing toward the attribute;
- any other number: ridge regression (alpha 1); the direction is its weight vector,
  pointing toward larger values.

Without a labels file the attributes are measured on the images themselves: for MNIST and
Fashion-MNIST one direction per class (one-vs-rest logistic regression); for MNIST digits
the ink mass (how thick the strokes are) and the slant; for every image set the contrast,
and the brightness except on MNIST, whose white-on-black digits have the ink mass as their
brightness. A labels file is a CSV table (see `read_labels`).

`check` shows that a direction does what it says: it decodes w + t * d for a range of t and
measures the attribute again on the decoded images.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import torch

from .device import resolve_device
from .errors import UserError
from .files import write_atomic
from .images import as_floats, load_image
from .run import Run

VERSION = 1
MIN_ROWS = 10          # rows a labels file needs
FIT_IMAGES = 10_000    # training images encoded when the attributes are measured
CHECK_IMAGES = 64      # held-out images decoded along a direction by `check`
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B in the brightness of a pixel
FASHION = ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot")
DIRECTION_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # what a direction (an attribute column) may be called


def luminance(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Images [N, C, H, W] (floats in [0, 1] or uint8) -> grayscale [N, H, W] in [0, 1]."""
    x = as_floats(x)
    if x.shape[1] == 3:
        return torch.einsum("nchw,c->nhw", x, torch.tensor(LUMA))
    return x[:, 0]


def brightness(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Mean luminance of each image, in [0, 1]: float64 [N]."""
    return luminance(x).mean((1, 2)).double().numpy()


def contrast(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """RMS contrast: the standard deviation of each image's luminance; float64 [N]."""
    return luminance(x).flatten(1).std(1, correction=0).double().numpy()


def ink(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Ink mass of white-on-black digits: the sum of intensities, in pixels fully inked; float64 [N].
    A digit drawn with thicker strokes carries more ink."""
    return luminance(x).sum((1, 2)).double().numpy()


def slant(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Slant of each digit in degrees from upright (float64 [N]), positive when its top leans right, from the
    second moments of its intensity: atan(-mu11 / mu02), with y the row (downward) and x the column.
    A blank image has slant 0."""
    ink_ = luminance(x).double()
    h, w = ink_.shape[1:]
    ys = torch.arange(h, dtype=torch.float64)[None, :, None]
    xs = torch.arange(w, dtype=torch.float64)[None, None, :]
    mass = ink_.sum((1, 2)).clamp_min(1e-12)
    dy = ys - ((ink_ * ys).sum((1, 2)) / mass)[:, None, None]
    dx = xs - ((ink_ * xs).sum((1, 2)) / mass)[:, None, None]
    mu11, mu02 = (ink_ * dx * dy).sum((1, 2)), (ink_ * dy * dy).sum((1, 2))
    return torch.rad2deg(torch.atan2(-mu11, mu02)).numpy()


MEASURES = {"brightness": brightness, "contrast": contrast, "ink": ink, "slant": slant}


def measured_attributes(dataset: str, images: torch.Tensor | np.ndarray, labels: np.ndarray | None) -> dict[str, np.ndarray]:
    """The attributes of `images` (uint8 [N, C, H, W] of `dataset`) that need no labels file."""
    values = {}
    if labels is not None:
        names = [f"digit_{k}" for k in range(10)] if dataset == "mnist" else FASHION
        values.update({name: (labels == k).astype(np.float64) for k, name in enumerate(names)})
    kept = ("ink", "slant", "contrast") if dataset == "mnist" else ("brightness", "contrast")
    values.update({name: MEASURES[name](images) for name in kept})
    return values


def read_labels(path: Path, resolution: int, channels: int) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """A labels file -> (its images [N, C, R, R] in [0, 1], {attribute: values [N]}).

    The file is CSV with a header row: the first column `image` (a path, relative to the
    CSV's folder unless absolute), then one column per attribute, named with letters, digits,
    '_', '.' or '-', holding a number on every row. A column of only 0 and 1 is a yes/no
    attribute (logistic regression); any other, a quantity (ridge regression).
    Every mistake is a UserError naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"labels file not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path}: not a CSV text file ({e})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise UserError(f"{path} is empty: it needs a header row 'image,ATTRIBUTE,...' and a row per image")
    header = [cell.strip() for cell in rows[0]]
    if header[0] != "image":
        raise UserError(f"{path} line 1: the first column must be 'image' (then one column per attribute), "
                        f"got {header[0]!r}")
    names = header[1:]
    if not names:
        raise UserError(f"{path} line 1: no attribute columns after 'image'")
    for name in names:
        if not DIRECTION_NAME.match(name):
            raise UserError(f"{path} line 1: bad attribute name {name!r} (letters, digits, '_', '.', '-')")
        if names.count(name) > 1:
            raise UserError(f"{path} line 1: attribute {name!r} appears twice")
    body = [(line, row) for line, row in enumerate(rows[1:], start=2) if any(cell.strip() for cell in row)]
    if len(body) < MIN_ROWS:
        raise UserError(f"{path}: {len(body)} image row(s); at least {MIN_ROWS} are needed")
    images, table = [], []
    for line, row in body:
        if len(row) != len(header):
            raise UserError(f"{path} line {line}: {len(row)} fields, the header has {len(header)}")
        numbers = []
        for name, cell in zip(names, row[1:]):
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise UserError(f"{path} line {line}, column {name!r}: {cell.strip()!r} is not a number")
            numbers.append(value)
        table.append(numbers)
        image = path.parent / row[0].strip()
        try:
            images.append(load_image(image, resolution, channels))
        except UserError as e:
            raise UserError(f"{path} line {line}: {e}") from None
    values = np.array(table, dtype=np.float64)
    for j, name in enumerate(names):
        if np.unique(values[:, j]).size < 2:
            raise UserError(f"{path}: attribute {name!r} has one value on every row; a direction needs at least two")
    return torch.stack(images), {name: values[:, j] for j, name in enumerate(names)}


def fit(w: np.ndarray, values: np.ndarray) -> dict:
    """One linear model of an attribute on w -> its unit direction and how well it fits.

    Returns {"vector", "model", "score", "scale"}: "score" is accuracy (logistic) or R^2
    (ridge) on the fitting images, "scale" the standard deviation of w . d over them, the
    unit of the demo's sliders and of `check`.
    """
    from sklearn.linear_model import LogisticRegression, Ridge

    binary = set(np.unique(values)) <= {0.0, 1.0}
    model = LogisticRegression(C=1.0, max_iter=2000) if binary else Ridge(alpha=1.0)
    model.fit(w, values)
    coef = np.asarray(model.coef_, dtype=np.float64).reshape(-1)
    norm = np.linalg.norm(coef)
    if norm == 0:
        raise UserError("the fitted direction is zero: the attribute does not vary linearly with w")
    d = coef / norm
    return {"vector": d.tolist(), "model": "logistic" if binary else "ridge",
            "score": float(model.score(w, values)), "scale": float((w @ d).std())}


def fit_all(w: torch.Tensor, attributes: dict[str, np.ndarray], source: str) -> dict:
    """Directions of every attribute -> the contents of directions.json."""
    w64 = w.double().cpu().numpy()
    directions = {}
    for name, values in attributes.items():
        directions[name] = fit(w64, values) | {"measure": name if name in MEASURES else None}
    return {"version": VERSION, "latent_size": w.shape[1], "source": source, "images": len(w),
            "directions": directions}


def make(run: Path, labels: Path | None = None, num: int = FIT_IMAGES, force: bool = False, device: str = "cpu") -> dict:
    """Fit and store the directions of a run (see the module docstring); returns what was written."""
    from .data import source

    run = Run.open(run)
    out = run.directions_path
    if out.exists() and not force:
        raise UserError(f"{out} exists: pass --force to replace it")
    if num < MIN_ROWS:
        raise UserError(f"--num must be at least {MIN_ROWS}")
    cfg, model = run.config(), run.load(device=resolve_device(device))
    if labels is not None:
        x, attributes = read_labels(labels, model.resolution, model.cfg.channels)
        src = str(labels)
    else:
        data, rows, classes = source.images(cfg, "train")
        chosen = np.sort(np.random.default_rng(0).choice(len(rows), min(num, len(rows)), replace=False))
        x = torch.from_numpy(np.asarray(data[rows[chosen]]))
        attributes = measured_attributes(cfg.data.dataset, x, None if classes is None else classes[chosen])
        src = f"{cfg.data.dataset} training images, attributes measured"
    result = fit_all(model.encode(x), attributes, src)
    write_atomic(out, json.dumps(result, indent=1).encode())
    return result


def read(run: Path, latent: int) -> dict:
    """The directions stored in a run, as unit vectors (torch) with their scale and model;
    refused unless they are vectors of `latent` numbers, the size of the run's w."""
    path = Run(run).directions_path
    if not path.is_file():
        raise UserError(f"{path} not found: make it with `alae directions {run}`")
    try:
        data = json.loads(path.read_text())
        directions = {name: d | {"vector": torch.tensor(d["vector"], dtype=torch.float32)}
                      for name, d in data["directions"].items()}
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path} is damaged: {e}") from None
    if any(d["vector"].shape != (latent,) for d in directions.values()):
        raise UserError(f"{path} does not fit this run's w of {latent} numbers: make it again with --force")
    return directions


def edit(w: torch.Tensor, directions: dict, amounts: dict[str, float]) -> torch.Tensor:
    """w moved by amounts[name] * scale along each named direction."""
    for name, t in amounts.items():
        w = w + t * directions[name]["scale"] * directions[name]["vector"]
    return w


def check(run: Path, name: str, steps: int = 7, span: float = 3.0, device: str = "cpu") -> tuple[list[dict], dict]:
    """Decode w + t * scale * d for t from -span to span on held-out images and measure the
    attribute again: by its measure when it has one, else as E(G(w')) . d, the linear model's
    score of the re-encoded image up to its intercept.

    Returns one row per t (mean and standard deviation of the attribute) and a summary of
    Spearman's rho between t and the attribute: of the mean over images, over all (image, t)
    pairs with each image's own mean over t taken off (images differ far more from each other
    than along a short step), and the median of the per-image rho; and on how many images the
    attribute never decreases as t grows.
    """
    from scipy.stats import spearmanr

    from .data import source

    if steps < 3:
        raise UserError("--steps must be at least 3")
    run = Run.open(run)
    model, cfg = run.load(device=resolve_device(device)), run.config()
    directions = read(run, model.cfg.latent_size)
    if name not in directions:
        raise UserError(f"no direction {name!r} in {run.directions_path} (it has: {', '.join(directions)})")
    d = directions[name]
    data, rows, _ = source.images(cfg, "test")
    w = model.encode(torch.from_numpy(np.asarray(data[rows[:CHECK_IMAGES]])))
    ts = np.linspace(-span, span, steps)
    measure = MEASURES.get(d["measure"])
    values = []
    for t in ts:
        x = model.decode(edit(w, directions, {name: float(t)})).clamp(0, 1)
        values.append(measure(x) if measure else (model.encode(x).cpu() @ d["vector"]).double().numpy())
    values = np.stack(values, axis=1)  # [images, steps]
    table = [{"t": float(t), "mean": float(values[:, i].mean()), "std": float(values[:, i].std())}
             for i, t in enumerate(ts)]
    per_image = [spearmanr(ts, v).statistic for v in values if np.ptp(v) > 0]
    within = values - values.mean(1, keepdims=True)
    summary = {
        "measure": d["measure"] or f"E(G(w)) . d_{name}",
        "images": len(values),
        "rho_mean": float(spearmanr(ts, values.mean(0)).statistic),
        "rho_within": float(spearmanr(np.tile(ts, len(values)), within.reshape(-1)).statistic),
        "rho_median": float(np.median(per_image)) if per_image else math.nan,
        "increasing": int((np.diff(values, axis=1) >= 0).all(1).sum()),
        "model": d["model"], "score": d["score"], "scale": d["scale"],
    }
    return table, summary


def summary_table(result: dict) -> str:
    """What `make` fitted, one line per direction."""
    lines = [f"{len(result['directions'])} directions from {result['images']} images ({result['source']}):",
             f"{'direction':<14} {'model':<9} {'fit':>14} {'scale':>8}"]
    for name, d in result["directions"].items():
        score = f"{'accuracy' if d['model'] == 'logistic' else 'R^2'} {d['score']:.3f}"
        lines.append(f"{name:<14} {d['model']:<9} {score:>14} {d['scale']:>8.3f}")
    return "\n".join(lines)


def check_table(name: str, table: list[dict], summary: dict) -> str:
    """The printout of `check`: the attribute per t, then the rank correlations."""
    measure = summary["measure"]
    lines = [f"direction {name} ({summary['model']}, fit {summary['score']:.3f}, scale {summary['scale']:.3f}); "
             f"w + t * scale * d decoded for {summary['images']} held-out test images, {measure} measured again:",
             f"{'t':>7} {'mean':>12} {'std':>10}"]
    lines += [f"{row['t']:>7.2f} {row['mean']:>12.4f} {row['std']:>10.4f}" for row in table]
    lines.append(f"Spearman rho between t and {measure}: {summary['rho_mean']:.3f} for the mean; "
                 f"{summary['rho_within']:.3f} over all (image, t) pairs, each image's mean taken off; "
                 f"per image, median {summary['rho_median']:.3f}")
    lines.append(f"never decreasing as t grows on {summary['increasing']} of {summary['images']} images")
    return "\n".join(lines)
