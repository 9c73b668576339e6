"""What bench scripts do with run directories beyond training them."""

from __future__ import annotations

import shutil
from pathlib import Path

from alae.run import Run


def begin_from(run: Path, source: Path, images: int, stats: Path | None = None) -> Path:
    """Make `run` (not there yet) start from a copy of checkpoint `source`, named as the checkpoint
    after `images` training images (the name the trainer resumes from, whatever the file's), with
    a copy of the log `stats` if given; returns the checkpoint's copy."""
    run = Run(run)
    copy = run.checkpoint_path(images)
    copy.parent.mkdir(parents=True)
    shutil.copy2(source, copy)
    if stats is not None and Path(stats).is_file():
        shutil.copy2(stats, run.stats_path)
    return copy
