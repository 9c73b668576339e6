"""`alae eval disentanglement`: how a trained run's codes line up with the shapes factors.

The codes of held-out images of a factor dataset (`alae dataset make shapes`):
- `w`: E(x), the learned latent of ALAE, the code of a pixel autoencoder, or the
  posterior mean of a beta-VAE;
- `z` (ALAE only): the imposed latent, found by inverting F (Adam on ||F(z) - w||^2, as
  the traversal figure does) and reported with the inversion's relative residual. F
  starts by normalising z to unit root-mean-square, so only z's direction is defined:
  the code is that normalised z.

`--num` images are drawn at random from the test part; MIG is computed on all of them,
and the supervised metrics (DCI, SAP, probes) fit on the first `--fit` and score on the
others (`alae.disentanglement.scores`). disentanglement_lib fits on 10,000; the default here
is 2,000, as DCI's boosted trees (a tree per class of each factor per round: 113 per
round for the shapes) take one to two minutes per 2,000 codes on one core. Factors that
take one value among the images are left out. Beside the JSON go two figures per code:
traversals (per factor, its most important code dimension by DCI, varied from the 2nd to
the 98th percentile of the codes around the code of one held-out image) and the
importance matrix as a heat map. The JSON also holds the mean squared pixel error of the
reconstructions G(E(x)) of the same images, and a figure shows the first of them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .. import figures, latent
from ..data import packed
from ..device import resolve_device
from ..errors import UserError
from ..nn import pixel_norm
from ..run import Run
from . import scores

if TYPE_CHECKING:
    from PIL import Image

    from ..model import ALAE

CODES = ("w", "z")
SPLIT_SEED = 0
NUM = 10_000  # test images drawn
FIT = 2000  # codes the supervised metrics fit on
TRAVERSAL_STEPS = 9
TRAVERSAL_LABEL_WIDTH = 100  # pixels: "orientation: w12"
RECONSTRUCTED = 12  # test images in the reconstruction figure
KIND_NAMES = {"alae": "ALAE", "ae": "AE", "vae": "beta-VAE"}


def labelled_test_images(dataset: str, resolution: int, num: int) -> tuple[np.ndarray, np.ndarray, packed.Factors]:
    """(uint8 images [n, C, R, R], factor indices [n, K], the dataset's factors) of `num`
    test images drawn at random (a fixed seed); refuses a dataset without factor labels."""
    folder = Path(dataset)
    if not (folder / packed.META).is_file():
        raise UserError(f"{dataset} is not a dataset with factor labels: make one with `alae dataset make shapes OUT`")
    factors = packed.factors(folder)
    if factors is None:
        raise UserError(f"{dataset} has no factor labels (it was not made by `alae dataset make shapes`)")
    images, rows = packed.read(folder, resolution, "test")
    if len(rows) < 10:
        raise UserError(f"{dataset} holds {len(rows)} test images; the metrics need at least 10")
    chosen = np.random.default_rng(SPLIT_SEED).permutation(rows)[:num]
    order = np.sort(chosen)  # memory-mapped rows read in order, then put back in the drawn order
    back = np.argsort(np.argsort(chosen))
    return images[order][back], np.asarray(factors.indices[order][back], dtype=np.int64), factors


def code(model: ALAE, name: str, x: torch.Tensor) -> tuple[np.ndarray, dict]:
    """The code `name` ('w' or 'z') of images x, and what to report about it."""
    w = model.encode(x)
    if name == "w":
        return w.cpu().numpy(), {}
    with torch.enable_grad():
        z, residual = latent.invert_F(model, w)
    return pixel_norm(z).cpu().numpy(), {"inversion_residual": residual}


def decode(model: ALAE, name: str, codes: np.ndarray) -> torch.Tensor:
    """Images of codes `name`: G(w), or G(F(z))."""
    c = torch.from_numpy(codes).float()
    return model.decode(model.map(c) if name == "z" else c)


def metrics(codes: np.ndarray, factors: np.ndarray, fit: int) -> dict:
    """MIG and the FactorVAE score on all codes; DCI, SAP and probes fitted on the first `fit` and
    scored on the others."""
    fit, held = (codes[:fit], factors[:fit]), (codes[fit:], factors[fit:])
    return {"mig": scores.mig(codes, factors), "dci": scores.dci(*fit, *held),
            "sap": scores.sap(*fit, *held), "probe": scores.probe(*fit, *held),
            "factor_vae": scores.factor_vae(codes, factors, np.random.default_rng(SPLIT_SEED))}


def evaluate(run: str | os.PathLike, codes: list[str] | None = None, num: int = NUM, fit: int = FIT,
             dataset: str | None = None, log: Callable[[str], None] = print,
             device: str = "cpu") -> tuple[dict, ALAE, dict[str, np.ndarray]]:
    """(results as JSON, the model, the codes by name) of run's model on `num` test images of `dataset`
    (default: the dataset it was trained on), the supervised metrics fitted on `fit` of them
    (at most half)."""
    run = Run.open(run)
    cfg, model = run.config(), run.load(device=resolve_device(device))
    codes = codes or (list(CODES) if model.F is not None else ["w"])
    unknown = [c for c in codes if c not in CODES]
    if unknown or not codes:
        raise UserError(f"--codes takes w and/or z, got {','.join(codes)}")
    if "z" in codes and model.F is None:
        raise UserError(f"a {model.cfg.kind} run has no z: it has no mapping F (use --codes w)")
    if num < 10:
        raise UserError(f"--num must be at least 10, got {num}")
    if fit < 5:
        raise UserError(f"--fit must be at least 5, got {fit}")
    dataset = dataset or cfg.data.dataset
    images, factors, table = labelled_test_images(dataset, model.resolution, num)
    if images.shape[1] != model.cfg.channels:
        raise UserError(f"{dataset} has {images.shape[1]} channel(s), the model takes {model.cfg.channels}")
    varying = [k for k in range(factors.shape[1]) if len(np.unique(factors[:, k])) > 1]
    names = [table.names[k] for k in varying]
    if not varying:
        raise UserError(f"no factor varies among the {len(images)} test images of {dataset}")
    x = torch.from_numpy(images)
    with torch.no_grad():
        mse = float((model.reconstruct(x).cpu() - x.float() / 255).pow(2).mean())
    fit = min(fit, len(images) // 2)
    result = {"run": str(run), "dataset": str(dataset), "kind": model.cfg.kind, "num": len(images),
              "fit": fit, "held_out": len(images) - fit, "factors": names,
              "left_out": [n for n in table.names if n not in names],
              "dci_regressor": "sklearn GradientBoostingClassifier, default settings (disentanglement_lib)",
              "reconstruction_mse": mse, "codes": {}}
    by_name = {}
    for name in codes:
        t0 = time.perf_counter()
        log(f"disentanglement: code {name} of {len(images)} test images")
        by_name[name], info = code(model, name, x)
        result["codes"][name] = info | metrics(by_name[name], factors[:, varying], fit)
        result["codes"][name]["seconds"] = time.perf_counter() - t0
    return result, model, by_name


def row_label(kind: str, name: str) -> str:
    return f"{KIND_NAMES[kind]} {name}" if kind == "alae" else KIND_NAMES[kind]


def table(result: dict) -> str:
    """A Markdown table: one row per code, MIG, DCI, SAP, the FactorVAE score and the probe accuracy per factor."""
    probe_cols = [f"probe {n}" for n in result["factors"]]
    head = ["code", "MIG", "DCI D", "DCI C", "DCI I", "SAP", "FactorVAE", *probe_cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in result["codes"].items():
        d = r["dci"]
        cells = [row_label(result["kind"], name), r["mig"]["mig"], d["disentanglement"], d["completeness"],
                 d["informativeness"], r["sap"]["sap"], r.get("factor_vae", {}).get("score", "—"),
                 *r["probe"]["accuracy"]]
        lines.append("| " + " | ".join(c if isinstance(c, str) else f"{c:.3f}" for c in cells) + " |")
    chance = next(iter(result["codes"].values()))["probe"]["chance"]
    notes = [f"{result['num']} test images of {result['dataset']}: MIG on all, DCI / SAP / probes fitted on "
             f"{result['fit']}, scored on {result['held_out']}; probe chance: "
             + ", ".join(f"{n} {c:.3f}" for n, c in zip(result["factors"], chance)),
             f"reconstructions G(E(x)): mean squared pixel error {result['reconstruction_mse']:.4f} (pixels in [0, 1])"]
    notes += [f"z found by inverting F: relative residual {r['inversion_residual']:.2e}"
              for r in result["codes"].values() if "inversion_residual" in r]
    if result["left_out"]:
        notes.append(f"left out (one value among these images): {', '.join(result['left_out'])}")
    return "\n".join(lines + [""] + notes)


def traversals(model: ALAE, name: str, codes: np.ndarray, importance: np.ndarray,
               factor_names: list[str]) -> Image.Image:
    """Per factor, one row: the first image's code with the factor's most important code
    dimension set to values from its 2nd to its 98th percentile, decoded."""
    rows, labels = [], []
    for k, factor in enumerate(factor_names):
        d = int(np.argmax(importance[:, k]))
        path = np.repeat(codes[:1], TRAVERSAL_STEPS, axis=0)
        path[:, d] = np.linspace(*np.percentile(codes[:, d], [2, 98]), TRAVERSAL_STEPS)
        rows.append(decode(model, name, path))
        labels.append(f"{factor}: {name}{d}")
    return figures.grid(rows, labels, label_width=TRAVERSAL_LABEL_WIDTH)


def importance_plot(name: str, r: dict, factor_names: list[str], out: Path) -> None:
    """The DCI importance matrix (code dimensions x factors) as a heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    importance = np.array(r["dci"]["importance"])
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(factor_names), 1.0 + 0.35 * len(importance)))
    image = ax.imshow(importance, cmap="viridis", aspect="auto", vmin=0)
    ax.set_xticks(range(len(factor_names)), factor_names)
    ax.set_yticks(range(len(importance)), [f"{name}{d}" for d in range(len(importance))])
    ax.set_title(f"DCI importance of {name}: D {r['dci']['disentanglement']:.2f}, "
                 f"C {r['dci']['completeness']:.2f}", fontsize=9)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def draw(result: dict, model: ALAE, codes: dict[str, np.ndarray], prefix: Path) -> list[Path]:
    """`PREFIX-reconstructions.png` (the first test images over G(E(x))) and, per code,
    `PREFIX-CODE-traversals.png` and `PREFIX-CODE-importance.png`; returns the files."""
    images = labelled_test_images(result["dataset"], model.resolution, RECONSTRUCTED)[0]
    paths = [prefix.with_name(f"{prefix.name}-reconstructions.png")]
    with torch.no_grad():
        figures.reconstructions(model, torch.from_numpy(images).float() / 255).save(paths[-1])
    for name, r in result["codes"].items():
        importance = np.array(r["dci"]["importance"])
        paths.append(prefix.with_name(f"{prefix.name}-{name}-traversals.png"))
        traversals(model, name, codes[name], importance, result["factors"]).save(paths[-1])
        paths.append(prefix.with_name(f"{prefix.name}-{name}-importance.png"))
        importance_plot(name, r, result["factors"], paths[-1])
    return paths


def report(run: str | os.PathLike, codes: list[str] | None, num: int, fit: int, json_path: Path | None,
           dataset: str | None = None, log: Callable[[str], None] = print,
           device: str = "cpu") -> tuple[dict, list[Path]]:
    """Evaluate (`evaluate`), write the JSON (default RUN/disentanglement.json) and the figures beside it."""
    import json

    run = Run.open(run)
    result, model, by_name = evaluate(run, codes, num, fit, dataset, log, device)
    json_path = Path(json_path) if json_path else run.disentanglement_path
    json_path.write_text(json.dumps(result, indent=2))
    return result, [json_path, *draw(result, model, by_name, json_path.with_suffix(""))]
