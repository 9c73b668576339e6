"""Data-parallel training under torchrun (two Gloo processes on the CPU) against one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alae import checkpoint, config, dist
from alae.losses import ae_step, g_step
from alae.model import ALAE
from alae.train import d_step_for
from tests.conftest import TINY
from tests.test_style_training import TINY_STYLE

WORKER = Path(__file__).parent / "workers" / "train_and_dump.py"
CASES = {
    # MLP ALAE: 6 steps of global batch 16
    "mlp": ("mnist-mlp", [*TINY, "train.kimg=0.096"]),
    # tiny StyleALAE: 4x4, then 8x8 faded in (16 steps of global batch 8), noise and style mixing on
    "style": ("mnist-style", [*TINY_STYLE, "train.kimg=0.128", "train.checkpoint_kimg=0.064"]),
}


def launch(out: Path, processes: int, preset: str, overrides: list[str]) -> None:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent.parent)}
    prefix = [sys.executable]
    if processes > 1:
        prefix += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    done = subprocess.run([*prefix, str(WORKER), str(out), preset, *overrides, "train.threads=1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module", params=sorted(CASES))
def runs(request, tmp_path_factory):
    preset, overrides = CASES[request.param]
    one, two = tmp_path_factory.mktemp(f"{request.param}-one"), tmp_path_factory.mktemp(f"{request.param}-two")
    launch(one, 1, preset, overrides)
    launch(two, 2, preset, overrides)
    return one, two


def test_ranks_hold_identical_parameters(runs):
    _, two = runs
    a, b = load_file(two / "rank-0-of-2.safetensors"), load_file(two / "rank-1-of-2.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_two_processes_train_what_one_process_trains_with_the_same_global_batch(runs, request):
    """Parameters agree within float tolerance (MLP). Adam turns rounding-level differences of
    near-zero gradients into differences of a whole step, and StyleALAE's noise weights and
    biases have many: its runs differ as much between 1 and 2 threads as between 1 and 2
    processes, so for it the first logged losses are compared, and the exact agreement of
    sharded and global gradients is tested in-process (test_shards_average_to_the_global_gradient)."""
    one, two = runs
    if request.node.callspec.params["runs"] == "style":
        first_one = json.loads((one / "run" / "stats.jsonl").read_text().splitlines()[0])
        first_two = json.loads((two / "run" / "stats.jsonl").read_text().splitlines()[0])
        for key in ("loss_d", "r1", "loss_g", "loss_ae"):
            assert first_two[key] == pytest.approx(first_one[key], rel=1e-3), key
        return
    single, parallel = load_file(one / "rank-0-of-1.safetensors"), load_file(two / "rank-0-of-2.safetensors")
    assert single.keys() == parallel.keys()
    for key in single:
        torch.testing.assert_close(parallel[key], single[key], rtol=1e-4, atol=1e-4, msg=key)
    torch.manual_seed(0)  # the networks before training, as Trainer makes them
    initial = ALAE(config.load(*CASES[request.node.callspec.params["runs"]]).model).state_dict()
    moved = [k for k, v in initial.items() if v.is_floating_point() and not torch.equal(v, single[f"model.{k}"])]
    assert len(moved) > len(initial) // 2  # the comparison is between trained networks


def test_only_rank_0_writes_and_the_checkpoints_agree(runs, request):
    one, two = runs
    assert sorted(p.name for p in (two / "run").rglob("*")) == sorted(p.name for p in (one / "run").rglob("*"))
    a, meta_a = checkpoint.load(checkpoint.latest(one / "run"))
    b, meta_b = checkpoint.load(checkpoint.latest(two / "run"))
    assert a.keys() == b.keys()
    for key in ("images_seen", "steps", "level", "blend"):
        assert meta_a[key] == meta_b[key], key
    if request.node.callspec.params["runs"] == "mlp":  # see the test above for StyleALAE
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-4, msg=key)
    rows_one = (one / "run" / "stats.jsonl").read_text().splitlines()
    rows_two = (two / "run" / "stats.jsonl").read_text().splitlines()
    assert len(rows_one) == len(rows_two) > 0


@pytest.mark.parametrize("preset, overrides", [CASES["mlp"], (CASES["style"][0], [*TINY_STYLE, "model.style_mixing_prob=1"])],
                         ids=["mlp", "style"])
@pytest.mark.parametrize("step", ["d", "g", "ae"])
def test_shards_average_to_the_global_gradient(preset, overrides, step):
    """Two shards of a global batch, each drawing its rows of z, mixing z' and noise inside
    `batch_shard`, give gradients whose mean is the global batch's gradient."""
    cfg = config.load(preset, overrides)
    torch.manual_seed(0)
    model = ALAE(cfg.model)
    model.grow(1, 0.5)
    n, latent = 4, cfg.model.latent_size
    x = torch.rand(2 * n, cfg.model.channels, model.resolution, model.resolution)
    opt_ED = torch.optim.Adam([*model.E.parameters(), *model.D.parameters()], lr=0.0)
    opt_FG = torch.optim.Adam([*model.F.parameters(), *model.G.parameters()], lr=0.0)

    def gradients(shard: dist.Shard) -> dict[str, torch.Tensor]:
        torch.manual_seed(1)
        with dist.batch_shard(shard):
            z = dist.randn_rows(shard.size, latent)
            if step == "d":
                d_step_for(cfg.model.net)(model, opt_ED, x[shard.offset:shard.offset + shard.size], z, 10.0)
            elif step == "g":
                g_step(model, opt_FG, z)
            else:
                ae_step(model, opt_ED, opt_FG, z, trains_F=False)
        return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    full = gradients(dist.Shard(0, 2 * n, 2 * n))
    parts = [gradients(dist.Shard(r * n, n, 2 * n)) for r in range(2)]
    assert full and full.keys() == parts[0].keys() == parts[1].keys()
    # norm-wise: some gradients are sums of nearly cancelling terms (a bias before instance
    # norm), whose rounding errors are large next to themselves but not next to the rest
    errors = {k: ((parts[0][k] + parts[1][k]) / 2 - full[k]).norm() / full[k].norm() for k in full}
    flat = torch.cat([full[k].flatten() for k in full])
    mean = torch.cat([((parts[0][k] + parts[1][k]) / 2).flatten() for k in full])
    assert (mean - flat).norm() / flat.norm() < 1e-5
    assert max(errors.values()) < 1e-2, max(errors.items(), key=lambda kv: kv[1])
    assert any(not torch.allclose(parts[0][k], parts[1][k]) for k in full)  # the shards differ
