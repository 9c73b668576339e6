"""`alae ARGS...` that waits at one point of training until the test lets it go, so that a signal
or a kill lands exactly there, however fast or slow the machine:

    paused_train.py MARKER WHERE ARGS...

On reaching WHERE (the first time only) the process writes its pid to MARKER and waits until
MARKER.go exists. WHERE is one of
    start             before the first training step (the run directory exists, no checkpoint yet)
    checkpoint        right after a checkpoint was written
    checkpoint-write  inside a checkpoint write: the temporary file is whole, the rename not done
    last-step         before the last step of the run, which therefore cannot end
Launched by tests/test_robustness.py.
"""

import os
import sys
import time
from pathlib import Path

from alae import checkpoint, train
from alae.cli import main

marker, where, args = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
done = False


def pause() -> None:
    global done
    if done:
        return
    done = True
    marker.write_text(str(os.getpid()))
    while not marker.with_name(marker.name + ".go").exists():
        time.sleep(0.005)


if where in ("start", "last-step"):
    step = train.Trainer.step

    def paused_step(self):
        total = int(round(self.cfg.train.kimg * 1000))
        if where == "start" or self.images_seen + self.cfg.train.batch_size >= total:
            pause()
        return step(self)

    train.Trainer.step = paused_step
elif where == "checkpoint":
    save = train.Trainer.save

    def save_then_pause(self):
        path = save(self)
        pause()
        return path

    train.Trainer.save = save_then_pause
elif where == "checkpoint-write":
    replace = os.replace

    def paused_replace(src, dst):
        if os.path.basename(dst).startswith("ckpt-"):
            pause()
        replace(src, dst)

    checkpoint.os.replace = paused_replace
else:
    sys.exit(f"unknown pause point {where!r}")

sys.exit(main(args))
