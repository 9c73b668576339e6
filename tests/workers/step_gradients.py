"""The gradients each step of Algorithm 1 hands its optimizers, in one process of a data-parallel group.

Launched twice by tests/test_distributed.py (no torchrun: the two processes meet through a
file, so no network port can be taken by another program):
    step_gradients.py RANK WORLD RENDEZVOUS_FILE OUT

Every process builds the same networks and the same global batch, takes its shard of it,
runs each step with optimizers that record the gradients they are stepped with (after
`dist.average_gradients`, before any update) and saves them to OUT, for each case. The test
computes the same for the whole batch in one process with `step_gradients`.
"""

import sys

import torch

from alae import config, dist
from alae.losses import ae_step, g_step
from alae.model import ALAE
from alae.training import d_step_for
from tests.helpers import TINY, TINY_STYLE, Recorder

GLOBAL_BATCH = 8
CASES = {
    "mlp": ("mnist-mlp", TINY),
    # at 8x8 while fading in, with style mixing at every step and noise inputs
    "style": ("mnist-style", [*TINY_STYLE, "model.style_mixing_prob=1"]),
}
STEPS = ("d", "g", "ae", "ae_F")


def step_gradients(case: str, shard: dist.Shard) -> dict[str, dict[str, torch.Tensor]]:
    """step -> parameter name -> the gradient its optimizer was stepped with, for this process's shard."""
    preset, overrides = CASES[case]
    cfg = config.load(preset, overrides)
    torch.manual_seed(0)
    model = ALAE(cfg.model)
    model.grow(1, 0.5)
    x = torch.rand(shard.total, cfg.model.channels, model.resolution, model.resolution)
    names = {p: k for k, p in model.named_parameters()}
    result = {}
    for step in STEPS:
        torch.manual_seed(1)
        opt_ED = Recorder([*model.E.parameters(), *model.D.parameters()])
        opt_FG = Recorder([*model.F.parameters(), *model.G.parameters()])
        with dist.batch_shard(shard):
            z = dist.randn_rows(shard.size, cfg.model.latent_size)
            if step == "d":
                d_step_for(cfg.model.net)(model, opt_ED, x[shard.offset:shard.offset + shard.size], z, 10.0)
            elif step == "g":
                g_step(model, opt_FG, z)
            else:
                ae_step(model, opt_ED, opt_FG, z, trains_F=step == "ae_F")
        result[step] = {names[p]: g for opt in (opt_ED, opt_FG) if opt.grads is not None
                        for p, g in zip(opt.param_groups[0]["params"], opt.grads) if g is not None}
    return result


if __name__ == "__main__":
    import torch.distributed as tdist

    rank, world, rendezvous, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    tdist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    n = GLOBAL_BATCH // world
    torch.save({case: step_gradients(case, dist.Shard(rank * n, n, GLOBAL_BATCH)) for case in CASES}, out)
    tdist.destroy_process_group()
