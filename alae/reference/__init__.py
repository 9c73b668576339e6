"""Checkpoints of the authors' reference code, imported as alae runs (`alae import`).

Their format: `torch.save` of `{"models": {NAME: state_dict}, "auxiliary": {...}}`, a pickle.
It is read with `torch.load(weights_only=True)` alone, which builds only tensors and plain
containers and refuses any other object, so nothing in the file can run code. Network names:

    discriminator  E (the authors call D∘E the discriminator)
    generator      G
    mapping_tl     D, the latent discriminator head
    mapping_fl     F, the mapping network
    dlatent_avg    the average w of the truncation trick (buffer `buff`)
    NAME_s         the EMA copy of NAME (published checkpoints may hold only these)

Each network family has a module here (`mlp`, `style`) with `matches(nets)` and
`convert(nets) -> (ModelConfig fields, ALAE state dict)`, which infers the architecture
from the tensors' names and shapes. The imported run holds the EMA copies as its EMA
model (what `alae.load` gives) and the live copies as its trained model, each falling
back on the other where only one is present.
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .. import checkpoint, config
from ..errors import UserError
from ..model import ALAE
from ..nn import EqualConv2d, EqualLinear
from . import mlp, style

if TYPE_CHECKING:
    from ..run import Run

NETWORKS = ("discriminator", "generator", "mapping_tl", "mapping_fl")
EMA_SUFFIX = "_s"
FAMILIES = (mlp, style)


def read(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The `models` dict of a checkpoint of the authors' format: network name -> state dict."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # a pickle not of torch.save's protocol: refused below, in one line
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()
        if any("Unsupported global" in line or "weights_only" in line.lower() for line in reason):
            raise UserError(f"{path} holds objects other than tensors and plain containers; refused, "
                            f"since loading them could run code") from None
        raise UserError(f"{path} is not a readable torch checkpoint (truncated or damaged)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError, TypeError,
            AttributeError, UnicodeDecodeError):  # what torch's reader raises on text or random bytes
        raise UserError(f"{path} is not a readable torch checkpoint (truncated or damaged)") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or not all(
            isinstance(net, dict) and all(isinstance(t, torch.Tensor) for t in net.values()) for net in models.values()):
        raise UserError(f"{path} is not a checkpoint of the ALAE reference code: no 'models' dict of state dicts")
    return models


def copies(models: dict[str, dict[str, torch.Tensor]]) -> tuple[dict, dict]:
    """(live networks, EMA networks), each keyed by the plain network names (with dlatent_avg),
    either falling back on the other where the checkpoint holds only one copy."""
    live = {n: models[n] for n in NETWORKS if n in models}
    ema = {n: models[n + EMA_SUFFIX] for n in NETWORKS if n + EMA_SUFFIX in models}
    missing = [n for n in NETWORKS if n not in live and n not in ema]
    if missing:
        raise UserError(f"not an ALAE checkpoint of the reference code: no network {', '.join(missing)}")
    live, ema = {**ema, **live}, {**live, **ema}
    if "dlatent_avg" in models:
        live["dlatent_avg"] = ema["dlatent_avg"] = models["dlatent_avg"]
    return live, ema


def convert(nets: dict[str, dict[str, torch.Tensor]], origin: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """The family module that recognises `nets` converts them (see the module docstring)."""
    for family in FAMILIES:
        if family.matches(nets):
            return family.convert(nets)
    raise UserError(f"{origin}: unknown architecture (networks: {', '.join(sorted(nets))}); "
                    f"alae imports the reference code's MLP and StyleALAE networks")


def reparameterise(state: dict[str, torch.Tensor], inferred: config.ModelConfig,
                   wanted: config.ModelConfig) -> dict[str, torch.Tensor]:
    """The same functions stored for `wanted`'s learning-rate multipliers: equalized-lr
    layers store weight / (lrmul gain / sqrt(fan_in)) and bias / lrmul (`alae.nn`)."""
    source, target = ALAE(inferred), ALAE(wanted)
    source.load_state_dict(state)
    target.load_state_dict(state)
    with torch.no_grad():
        for a, b in zip(source.modules(), target.modules()):
            if isinstance(a, (EqualLinear, EqualConv2d)):
                b.weight.copy_(a.weight * (a.weight_scale / b.weight_scale))
            if isinstance(a, EqualLinear):
                b.bias.copy_(a.bias * (a.lrmul / b.lrmul))
    return target.state_dict()


def import_checkpoint(path: Path, out: Path, overrides: Sequence[str] = (), force: bool = False) -> Run:
    """Write run directory `out` from the authors' checkpoint `path`; returns the run (`alae.Run`).

    The architecture comes from the tensors; `overrides` (`section.key=value`) set what
    they cannot say (the dataset, the Table 2 split, learning-rate multipliers, ...).
    """
    from ..run import Run

    path, out = Path(path), Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())) and not force:
        raise UserError(f"{out} already exists: pass --force to replace it")
    live, ema = copies(read(path))
    fields, live_state = convert(live, path)
    _, ema_state = convert(ema, path)
    cfg = config.Config()
    cfg.model = config.ModelConfig(**fields)
    for item in overrides:
        config.apply_override(cfg, item)
    config.validate(cfg)
    inferred = config.ModelConfig(**fields)
    if cfg.model != inferred:
        live_state, ema_state = (reparameterise(s, inferred, cfg.model) for s in (live_state, ema_state))
    run = Run.create(out, cfg, force=force)
    tensors = {f"model.{k}": v for k, v in live_state.items()} | {f"ema.{k}": v for k, v in ema_state.items()}
    meta = {"config": cfg.to_dict(), "images_seen": 0, "steps": 0, "level": cfg.model.levels - 1, "blend": 1.0,
            "optimizers": {}, "imported": {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}}
    checkpoint.save(run.checkpoint_dir, 0, tensors, meta, keep=1)
    return run
