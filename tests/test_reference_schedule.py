"""The faithful presets grow as the authors' code grows: level, blend, batch and learning rate.

tests/data/reference/schedule-NAME.json were computed by the authors' own `lod_driver.LODDriver`
and `scheduler.ComboMultiStepLR`, driven as their `train_alae.py` drives them over their
configuration NAME.yaml (world size and records as stored in the file): one row
[images seen, level, blend, batch, learning rate] at the first and last batch of every epoch
and every 16th batch of a fade. `schedule.phase` must give every row, given the number of
training images the reference reads per epoch, and the preset must end where the reference does.
"""

import json
from pathlib import Path

import pytest

from alae import config, schedule

DATA = Path(__file__).parent / "data" / "reference"
PRESETS = {"mnist.yaml": ["mnist-style", "fashion-style"], "celeba.yaml": ["celeba-128"],
           "celeba-hq256.yaml": ["celebahq-256"], "bedroom.yaml": ["bedroom-256"], "ffhq.yaml": ["ffhq-1024"]}
TABLES = sorted(DATA.glob("schedule-*.json"))


def test_every_faithful_preset_has_its_table():
    names = {json.loads(p.read_text())["config"] for p in TABLES}
    assert names == set(PRESETS)


@pytest.mark.parametrize("table", TABLES, ids=[p.stem for p in TABLES])
def test_schedule_gives_the_reference_level_blend_batch_and_learning_rate(table):
    ref = json.loads(table.read_text())
    images_per_epoch = min(ref["records"], ref["dataset_size"])  # what the reference reads per epoch
    levels = {row[1] for row in ref["rows"]}
    assert len(levels) > 1 and any(0 < row[2] < 1 for row in ref["rows"])  # the table covers growth and fades
    for preset in PRESETS[ref["config"]]:
        cfg = config.load(preset)
        assert round(cfg.train.kimg * 1000) == ref["total_images"], preset
        assert cfg.model.levels == max(levels) + 1, preset
        for images, level, blend, batch, lr in ref["rows"]:
            now = schedule.phase(cfg, images, images_per_epoch)
            assert (now.level, now.batch_size) == (level, batch), f"{preset} at {images} images"
            assert now.blend == pytest.approx(blend, abs=1e-12), f"{preset} at {images} images"
            assert now.lr == pytest.approx(lr, rel=1e-12), f"{preset} at {images} images"
