"""Progressive growing (section 5): which level, blend, batch size and learning rate apply now.

Training shows `level_kimg` thousand images at each level, 4x4 first, and stays at the
last level after that. The first `fade_kimg` of every level after the first fade it in:
the blend factor rises from 0 to 1 along a sine ease, (1 - cos(pi * t)) / 2, as in the
reference code. Everything is a function of the number of images seen, so a resumed run
follows the same schedule. A network family without levels (the MLP) is one level.

Over the last fraction `lr_rampdown` of training the learning rate falls from its level's
value to 0 along the mirrored ease, (1 + cos(pi * t)) / 2. Neither the paper nor its
reference code ramps the rate down; bench/results.md has the A/B of it on MNIST.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import Config


@dataclass(frozen=True)
class Phase:
    level: int          # 0 is 4x4
    blend: float        # 1 once the level has faded in
    batch_size: int
    lr: float


def _per_level(values: list, level: int, default):
    return values[min(level, len(values) - 1)] if values else default


def phase(cfg: Config, images_seen: int) -> Phase:
    t = cfg.train
    level_images, fade_images = t.level_kimg * 1000, t.fade_kimg * 1000
    level = min(int(images_seen // level_images), cfg.model.levels - 1)
    into = images_seen - level * level_images
    blend = 1.0
    if level > 0 and into < fade_images:
        blend = 0.5 - 0.5 * math.cos(math.pi * into / fade_images)
    lr = _per_level(t.level_lr, level, t.lr)
    rampdown_images = t.lr_rampdown * t.kimg * 1000
    if rampdown_images > 0:
        into_rampdown = min(max(images_seen - (t.kimg * 1000 - rampdown_images), 0) / rampdown_images, 1)
        lr *= 0.5 + 0.5 * math.cos(math.pi * into_rampdown)
    return Phase(level, blend, _per_level(t.level_batch, level, t.batch_size), lr)
