"""Train a config with `alae.train.train` and write this process's parameters to OUT/rank-R.safetensors.

Launched by tests/test_distributed.py, alone or under torchrun:
    train_and_dump.py OUT PRESET KEY=VALUE...
"""

import sys
from pathlib import Path

from safetensors.torch import save_file

from alae import config, dist
from alae.train import train

out, preset, overrides = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
trainer = train(config.load(preset, overrides), out / "run", progress=False)
rank, world = dist.world()
state = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
state |= {f"ema.{k}": v for k, v in trainer.ema.state_dict().items()}
save_file({k: v.contiguous() for k, v in state.items()}, str(out / f"rank-{rank}-of-{world}.safetensors"))
dist.close()
