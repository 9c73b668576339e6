"""Train a config with `alae.training.train` and write this process's parameters to OUT/rank-R-of-K.safetensors.

Launched by tests/test_distributed.py, alone or under torchrun:
    train_and_dump.py OUT PRESET [--resume] KEY=VALUE...

Besides the parameters, each process writes OUT/writes-rank-R.json: every file operation it
made inside OUT/run (opened for writing, created, renamed, removed), seen by a Python audit
hook, so that a test can tell which process wrote the run directory, not only which files
it holds; and OUT/threads-rank-R.json: the names of the threads left after `dist.close()`.

With ALAE_TEST_PAUSE_STEP=k, each process stops after its k-th step, writes its pid to
OUT/paused-rank-R and waits until OUT/go exists, so that a test can deliver a signal at a
known step, with no race against the run's end. A run stopped by a signal writes
OUT/stopped-rank-R.json (its position and the signal) instead of the parameters.
"""

import json
import os
import sys
import time
from pathlib import Path

from safetensors.torch import save_file

from alae import config, dist
from alae.training import Stopped, Trainer, train

out, preset, args = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
resume = "--resume" in args
overrides = [a for a in args if a != "--resume"]
run = (out / "run").resolve()
writes: list[list[str]] = []
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def inside_run(path) -> bool:
    try:
        return Path(os.fsdecode(path)).resolve().is_relative_to(run)
    except (TypeError, ValueError):
        return False


def audit(event: str, args: tuple) -> None:
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & WRITE_FLAGS)
        if writing and inside_run(path):
            writes.append([event, os.fsdecode(path)])
    elif event in ("os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.truncate", "shutil.rmtree"):
        paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
        if any(inside_run(p) for p in paths):
            writes.append([event, *map(os.fsdecode, paths)])


sys.addaudithook(audit)

pause_step = int(os.environ.get("ALAE_TEST_PAUSE_STEP", "0"))
if pause_step:
    step = Trainer.step

    def step_then_pause(self):
        stats = step(self)
        if self.steps == pause_step:
            (out / f"paused-rank-{self.rank}").write_text(str(os.getpid()))
            while not (out / "go").exists():
                time.sleep(0.01)
        return stats

    Trainer.step = step_then_pause

def thread_names() -> list[str] | None:
    """The names of this process's threads, native ones included (Gloo's is gloo_tcp_loop);
    None where the system does not list them (no /proc)."""
    if not os.path.isdir("/proc/self/task"):
        return None
    return sorted(Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in os.listdir("/proc/self/task"))


rank = int(os.environ.get("RANK", "0"))
try:
    trainer = train(config.load(preset, overrides), run, resume=resume, progress=False)
except Stopped as e:
    (out / f"stopped-rank-{rank}.json").write_text(json.dumps({"signum": e.signum, "message": str(e)}))
else:
    rank, world = dist.world()
    state = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    state |= {f"ema.{k}": v for k, v in trainer.ema.state_dict().items()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / f"rank-{rank}-of-{world}.safetensors"))
(out / f"writes-rank-{rank}.json").write_text(json.dumps(writes))
dist.close()
if (names := thread_names()) is not None:
    (out / f"threads-rank-{rank}.json").write_text(json.dumps(names))
