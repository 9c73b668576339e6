"""`alae ARGS...` that waits at one point of training until the test lets it go, so that a signal
or a kill lands exactly there, however fast or slow the machine.

tests/test_kill_and_resume.py runs `child` in processes forked from a multiprocessing fork server
that has imported alae once (a kill test needs a fresh process per kill, and importing torch is
most of a fresh process's cost); from a shell the same is

    python tests/workers/paused_train.py MARKER WHERE ARGS...

On reaching WHERE (the first time only) the process writes its pid to MARKER and waits until
MARKER.go exists. WHERE is one of
    start             before the first training step (the run directory exists, no checkpoint yet)
    checkpoint        right after a checkpoint was written
    checkpoint-write  inside a checkpoint write: the temporary file is whole, the rename not done
    last-step         before the last step of the run, which therefore cannot end
"""

import os
import sys
import time
from pathlib import Path

from alae import files, training
from alae.cli import main

POINTS = ("start", "checkpoint", "checkpoint-write", "last-step")


def pause_at(where: str, marker: Path) -> None:
    """Make this process wait at `where` (once), announcing it in `marker`."""
    if where not in POINTS:
        raise ValueError(f"unknown pause point {where!r}")
    done = False

    def pause() -> None:
        nonlocal done
        if done:
            return
        done = True
        marker.write_text(str(os.getpid()))
        while not marker.with_name(marker.name + ".go").exists():
            time.sleep(0.005)

    if where in ("start", "last-step"):
        step = training.Trainer.step

        def paused_step(self):
            total = int(round(self.cfg.train.kimg * 1000))
            if where == "start" or self.images_seen + self.cfg.train.batch_size >= total:
                pause()
            return step(self)

        training.Trainer.step = paused_step
    elif where == "checkpoint":
        save = training.Trainer.save

        def save_then_pause(self):
            path = save(self)
            pause()
            return path

        training.Trainer.save = save_then_pause
    else:
        replace = os.replace

        def paused_replace(src, dst):
            if os.path.basename(dst).startswith("ckpt-"):
                pause()
            replace(src, dst)

        files.os.replace = paused_replace


def child(marker: str, where: str, args: list[str], stderr: str) -> None:
    """A fork server's child: pause at `where`, run `alae ARGS`, its stderr into the file `stderr`."""
    sys.stderr = open(stderr, "w", buffering=1)
    pause_at(where, Path(marker))
    sys.exit(main(args))


if __name__ == "__main__":
    pause_at(sys.argv[2], Path(sys.argv[1]))
    sys.exit(main(sys.argv[3:]))
