"""Progressive growing (section 5): which level, blend, batch size and learning rate apply now.

Training starts at 4x4 (level 0) and grows one level at a time; a new level fades in
over the first part of its stay: the blend factor rises from 0 to 1 along a sine ease,
(1 - cos(pi * t)) / 2, and training stays at the last level after that. Batch size and
learning rate are set per level (`train.level_batch`, `train.level_lr`). Everything is
a function of the number of images seen (and of the training set's size), so a resumed
run follows the same schedule. A network family without levels (the MLP) is one level.

A level's length is counted one of two ways:
- `train.level_epochs` > 0, as the reference code's `lod_driver` counts it: a level is
  that many epochs, an epoch is floor(N / batch) batches of the level's batch size (the
  reference drops the last partial batch) for a training set of N images, and the first
  level_epochs // 2 epochs of a level after the first fade it in, with
  t = (epoch into the level * S + images into the epoch) / (level_epochs // 2 * S),
  S the dataset size of the reference's configuration (`train.blend_size`; 0: N). The
  reference's MNIST configuration says 60,000 but reads 50,000 records, so its blend
  jumps a little at each epoch boundary and ends the fade just short of 1; tests/data/
  reference/schedule-*.json hold the reference's own values, which this reproduces.
- otherwise `train.level_kimg` thousand images per level, of which the first
  `train.fade_kimg` fade it in.

Over the last fraction `lr_rampdown` of training the learning rate falls from its level's
value to 0 along the mirrored ease, (1 + cos(pi * t)) / 2. Neither the paper nor its
reference code ramps the rate down; bench/results.md has the A/B of it on MNIST.

The beta-VAE's KL weight may fall once during training (`vae_beta`): model.vae_beta until
`train.vae_beta_late_kimg`, `train.vae_beta_late` from there on. A high beta first makes the
code's axes form along the factors that carry the most information (position); the lower
beta after lets the next factor (scale) into a dimension of its own, with the axes already
in place (bench/results.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import Config
from .errors import UserError


@dataclass(frozen=True)
class Phase:
    level: int          # 0 is 4x4
    blend: float        # 1 once the level has faded in
    batch_size: int
    lr: float


def _per_level(values: list, level: int, default):
    return values[min(level, len(values) - 1)] if values else default


def ease(t: float) -> float:
    """The fade-in's sine ease from 0 to 1: sin(pi t - pi / 2) / 2 + 1 / 2, as the reference writes it."""
    return 0.5 - 0.5 * math.cos(math.pi * t)


def batch_size(cfg: Config, level: int) -> int:
    return _per_level(cfg.train.level_batch, level, cfg.train.batch_size)


def _epoch_images(cfg: Config, level: int, dataset_size: int) -> int:
    """Images of one epoch at `level`: its full batches (the reference drops the last partial one)."""
    images = dataset_size // batch_size(cfg, level) * batch_size(cfg, level)
    if images == 0:
        raise UserError(f"the training set ({dataset_size} images) is smaller than one batch of level {level}")
    return images


def level_start(cfg: Config, level: int, dataset_size: int) -> int:
    """Images seen when training reaches `level`."""
    if not (cfg.train.level_epochs and cfg.model.levels > 1):
        return round(level * cfg.train.level_kimg * 1000)
    return sum(cfg.train.level_epochs * _epoch_images(cfg, k, dataset_size) for k in range(level))


def _by_epochs(cfg: Config, images_seen: int, dataset_size: int) -> tuple[int, float]:
    """(level, blend) of the reference's epoch-counted schedule (module docstring)."""
    t = cfg.train
    level = 0
    while level < cfg.model.levels - 1 and images_seen >= level_start(cfg, level + 1, dataset_size):
        level += 1
    epoch, into_epoch = divmod(images_seen - level_start(cfg, level, dataset_size),
                               _epoch_images(cfg, level, dataset_size))
    fade_epochs, blend_size = t.level_epochs // 2, t.blend_size or dataset_size
    if level == 0 or epoch >= fade_epochs:
        return level, 1.0
    return level, ease((epoch * blend_size + into_epoch) / (fade_epochs * blend_size))


def _by_kimg(cfg: Config, images_seen: int) -> tuple[int, float]:
    t = cfg.train
    level_images, fade_images = t.level_kimg * 1000, t.fade_kimg * 1000
    level = min(int(images_seen // level_images), cfg.model.levels - 1)
    into = images_seen - level * level_images
    return level, ease(into / fade_images) if level > 0 and into < fade_images else 1.0


def phase(cfg: Config, images_seen: int, dataset_size: int | None = None) -> Phase:
    """The phase of training after `images_seen` images; `dataset_size`, the number of training
    images, is needed where levels are counted in epochs (`train.level_epochs`)."""
    t = cfg.train
    if t.level_epochs and cfg.model.levels > 1:
        if dataset_size is None:
            raise ValueError("a schedule counted in epochs needs the training set's size")
        level, blend = _by_epochs(cfg, images_seen, dataset_size)
    else:
        level, blend = _by_kimg(cfg, images_seen)
    lr = _per_level(t.level_lr, level, t.lr)
    rampdown_images = t.lr_rampdown * t.kimg * 1000
    if rampdown_images > 0:
        into_rampdown = min(max(images_seen - (t.kimg * 1000 - rampdown_images), 0) / rampdown_images, 1)
        lr *= 0.5 + 0.5 * math.cos(math.pi * into_rampdown)
    return Phase(level, blend, batch_size(cfg, level), lr)


def vae_beta(cfg: Config, images_seen: int) -> float:
    """The beta-VAE's KL weight (Higgins et al. 2017) after `images_seen` images (module docstring)."""
    t = cfg.train
    late = t.vae_beta_late_kimg and images_seen >= t.vae_beta_late_kimg * 1000
    return t.vae_beta_late if late else cfg.model.vae_beta


def growth_note(cfg: Config, images: int, dataset_size: int) -> str | None:
    """A one-line note when training of `images` images ends below the top level; None otherwise."""
    top = cfg.model.levels - 1
    reached = phase(cfg, max(images - 1, 0), dataset_size).level
    if reached == top:
        return None
    side, top_side = 4 * 2**reached, 4 * 2**top
    return (f"note: training ends after {images / 1000:g} kimg at level {reached} ({side}x{side}); this schedule "
            f"reaches {top_side}x{top_side} after {level_start(cfg, top, dataset_size) / 1000:g} kimg: raise --kimg "
            f"or shorten the levels (train.level_kimg, or train.level_epochs)")
