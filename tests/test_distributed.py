"""Data-parallel training under torchrun (two Gloo processes on the CPU) against one process."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from alae import checkpoint, config, dist
from alae.losses import ae_step, g_step
from alae.model import ALAE
from alae.run import Run
from alae.training import d_step_for, train
from tests.helpers import TINY, TINY_STYLE, child_env, python
from tests.workers import step_gradients

WORKERS = Path(__file__).parent / "workers"
WORKER = WORKERS / "train_and_dump.py"
CASES = {
    # MLP ALAE: 6 steps of global batch 16
    "mlp": ("mnist-mlp", [*TINY, "train.kimg=0.096"]),
    # tiny StyleALAE: 4x4, then 8x8 faded in (16 steps of global batch 8), noise and style mixing on
    "style": ("mnist-style", [*TINY_STYLE, "train.kimg=0.128", "train.checkpoint_kimg=0.064"]),
}


def command(out: Path, preset: str, overrides: list[str]) -> list[str]:
    """train_and_dump.py in two processes under torchrun (whose agent holds the rendezvous port it picks)."""
    return python("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER), str(out), preset,
                  *overrides, "train.threads=1")


def start(argv: list[str], **env: str) -> subprocess.Popen:
    """A process in a session of its own, so that `end` also reaches the workers torchrun starts."""
    return subprocess.Popen(argv, env=child_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def end(proc: subprocess.Popen) -> None:
    """Kill what is left of `proc` and its children (after a failure or a timeout)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # all of them ended already
        pass
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        pipe.close()


def launch(out: Path, preset: str, overrides: list[str]) -> None:
    proc = start(command(out, preset, overrides))
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        end(proc)
    assert proc.returncode == 0, err[-3000:]


def train_here(out: Path, preset: str, overrides: list[str], resume: bool = False) -> dict[str, torch.Tensor]:
    """What train_and_dump.py does for one process, in this one (on one thread, as the workers
    train; the thread count is restored after). Returns the parameters, also saved as it saves them."""
    threads = torch.get_num_threads()
    try:
        trainer = train(config.load(preset, [*overrides, "train.threads=1"]), out / "run", resume=resume, progress=False)
    finally:
        torch.set_num_threads(threads)
    state = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    state |= {f"ema.{k}": v for k, v in trainer.ema.state_dict().items()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "rank-0-of-1.safetensors"))
    return state


@pytest.fixture(scope="module", params=sorted(CASES))
def runs(request, tmp_path_factory):
    """The same run trained by one process (here) and by two (torchrun)."""
    preset, overrides = CASES[request.param]
    one, two = tmp_path_factory.mktemp(f"{request.param}-one"), tmp_path_factory.mktemp(f"{request.param}-two")
    train_here(one, preset, overrides)
    launch(two, preset, overrides)
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


def test_the_two_runs_hold_the_same_files_and_checkpoints(runs, request):
    one, two = runs
    assert sorted(p.name for p in (two / "run").rglob("*")) == sorted(p.name for p in (one / "run").rglob("*"))
    a, meta_a = checkpoint.load(Run(one / "run").latest_checkpoint())
    b, meta_b = checkpoint.load(Run(two / "run").latest_checkpoint())
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


@pytest.fixture(scope="module")
def two_process_gradients(tmp_path_factory):
    """case -> step -> parameter -> gradient, as each of two Gloo processes handed it to its optimizer."""
    tmp = tmp_path_factory.mktemp("gradients")
    procs = [start(python(str(WORKERS / "step_gradients.py"), str(rank), "2", str(tmp / "rendezvous"),
                          str(tmp / f"rank-{rank}.pt")))
             for rank in range(2)]
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-3000:]
    finally:
        for proc in procs:
            end(proc)
    return [torch.load(tmp / f"rank-{rank}.pt", weights_only=True) for rank in range(2)]


@pytest.mark.parametrize("case", sorted(step_gradients.CASES))
def test_two_processes_step_with_the_gradients_of_the_global_batch(two_process_gradients, case):
    """Two Gloo processes, each on half the global batch, hand their optimizers the gradient one
    process computes on the whole batch: the all-reduce sums the shards' gradients and divides by
    the number of processes. Compared before any optimizer step, as Adam would hide a constant
    factor on the gradients (its update is nearly invariant to their scale), and, for StyleALAE,
    weights after a few steps differ by Adam's amplified rounding (see the test above)."""
    ranks = [r[case] for r in two_process_gradients]
    whole = step_gradients.step_gradients(case, dist.Shard(0, step_gradients.GLOBAL_BATCH, step_gradients.GLOBAL_BATCH))
    assert whole.keys() == ranks[0].keys() == ranks[1].keys() == set(step_gradients.STEPS)
    for step, expected in whole.items():
        assert expected and expected.keys() == ranks[0][step].keys() == ranks[1][step].keys(), step
        for name in expected:
            assert torch.equal(ranks[0][step][name], ranks[1][step][name]), (step, name)
        got = torch.cat([ranks[0][step][k].flatten() for k in expected])
        flat = torch.cat([expected[k].flatten() for k in expected])
        assert (got - flat).norm() / flat.norm() < 1e-5, (step, float((got - flat).norm() / flat.norm()))
    assert "F.mlp.layers.0.weight" in whole["ae_F"] and "F.mlp.layers.0.weight" not in whole["ae"]


def test_only_rank_0_writes_the_run_directory(runs):
    """Every file operation inside the run directory, as each process's audit hook saw it: rank 0
    wrote the config, the log and the checkpoints; rank 1 wrote nothing there."""
    _, two = runs
    rank_0 = json.loads((two / "writes-rank-0.json").read_text())
    rank_1 = json.loads((two / "writes-rank-1.json").read_text())
    assert rank_1 == []
    written = {Path(path).name for _, *paths in rank_0 for path in paths}
    assert {"config.yaml", "stats.jsonl"} <= written and any(n.startswith("ckpt-") for n in written), written


def gloo_threads_after_close(out: Path) -> list[list[str]]:
    """Per process, its Gloo threads still alive after `dist.close()` (thread names read from /proc)."""
    files = [out / f"threads-rank-{rank}.json" for rank in range(2)]
    if not all(f.exists() for f in files):
        pytest.skip("this system does not list a process's threads (no /proc)")
    return [[name for name in json.loads(f.read_text()) if "gloo" in name] for f in files]


def test_closing_ends_the_process_groups_threads(runs, stopped_run):
    """After `dist.close()` no Gloo thread is left, in a run that ended and in one stopped by a
    signal: a Gloo worker still alive at interpreter exit can free a tensor there, which aborts
    the process (exit status -6), one run in a few dozen on a busy machine."""
    for out in (runs[1], stopped_run):
        assert gloo_threads_after_close(out) == [[], []], out.name


LONGER = "train.kimg=0.16"  # 10 steps of 16 images


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A one-process MLP run of 96 images (6 steps), resumed by two processes and sent SIGTERM to
    rank 1 alone while both processes wait after step 8 (so the signal lands at a known step,
    however busy the machine)."""
    out = tmp_path_factory.mktemp("stopped")
    preset, overrides = CASES["mlp"]
    train_here(out, preset, overrides)
    proc = start(command(out, preset, ["--resume", *overrides, LONGER]), ALAE_TEST_PAUSE_STEP="8")
    try:
        paused = [out / f"paused-rank-{rank}" for rank in range(2)]
        deadline = time.monotonic() + 240
        while not all(p.exists() and p.read_text() for p in paused):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the processes never reached step 8"
            time.sleep(0.05)
        os.kill(int(paused[1].read_text()), signal.SIGTERM)
        (out / "go").touch()
        _, err = proc.communicate(timeout=240)
    finally:
        end(proc)
    assert proc.returncode == 0, err[-3000:]
    return out


def test_a_stop_signal_to_one_process_stops_every_process_at_the_same_step(stopped_run):
    """Both processes stop after step 8, rank 0 writes the checkpoint there, and the run goes no further."""
    for rank in range(2):
        stopped = json.loads((stopped_run / f"stopped-rank-{rank}.json").read_text())
        assert stopped["signum"] == signal.SIGTERM, rank
        assert "stopped by SIGTERM at step 8 (128 images)" in stopped["message"], (rank, stopped["message"])
        assert not (stopped_run / f"rank-{rank}-of-2.safetensors").exists()
    assert [p.name for p in Run(stopped_run / "run").checkpoints()] == [
        "ckpt-000000000096.safetensors", "ckpt-000000000128.safetensors"]


def test_a_run_resumes_with_another_number_of_processes(runs, stopped_run, request, tmp_path):
    """Runs continued by another number of processes end where one process training the same 160
    images straight ends (within float tolerance): the stopped run (one process to 96 images, two
    to 128, then one to 160) and the fixture's two-process run (two to 96, one to 160)."""
    if request.node.callspec.params["runs"] != "mlp":
        pytest.skip("StyleALAE's runs differ by Adam's amplified rounding (see above); the MLP's agree")
    _, two = runs
    preset, overrides = CASES["mlp"]
    longer = [*overrides, LONGER]
    straight = train_here(tmp_path / "straight", preset, longer)
    resumed = {}
    for name, source in (("one-two-one", stopped_run), ("two-one", two)):
        shutil.copytree(source / "run", tmp_path / name / "run")
        resumed[name] = train_here(tmp_path / name, preset, longer, resume=True)
    for name, got in resumed.items():
        assert got.keys() == straight.keys()
        for key in straight:
            torch.testing.assert_close(got[key], straight[key], rtol=1e-4, atol=1e-4, msg=f"{name}: {key}")
        meta = checkpoint.load(Run(tmp_path / name / "run").latest_checkpoint())[1]
        assert (meta["images_seen"], meta["steps"]) == (160, 10), name
        log = [json.loads(row)["kimg"] for row in (tmp_path / name / "run" / "stats.jsonl").read_text().splitlines()]
        # each run logged its last, partial interval at 96 images
        assert log == [0.064, 0.096, 0.128, 0.16], name
