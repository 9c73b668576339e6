"""StyleALAE's training iteration on a CPU: each speed lever, timed in one run in alternating rounds.

For a style preset (default `fashion-style-cpu`) at 16x16 and at 32x32, each level faded in,
on random images of the preset's shape, it times whole iterations (the three steps of
Algorithm 1, the EMA included) of these variants:

  base             the preset's iteration at commit `--base` (default 15733ff), its own batch
  authors bN       the authors' iteration at batch N (`--authors DIR`, a checkout of their code):
                   their Model's three forward calls, LREQAdam steps and EMA lerp, as in their
                   train_alae.py, with zero_grad keeping zero tensors as PyTorch 1.x did
  bN               this tree at batch N (learning rate untouched: it does not change the time),
                   R1 in every iteration unless named
  lazy R1 k        R1 in every k-th iteration's step 1, weighted by k (`train.r1_every`)
  1 thread         one intra-op thread instead of two
  compile          torch.compile of G and F (E and D stay eager: R1 needs their double backward,
                   which torch.compile does not support); the level is fixed, so nothing recompiles
  channels-last    the networks' weights and the real images in channels-last memory format

Each variant runs in its own worker process (so that the base tree and the authors' code import
beside this one), holding its trainer; in every round each worker in turn runs iterations for
about `--seconds`, one process busy at a time, so all see the same load of the machine. Prints
per variant and level the median images per second over rounds and its ratio to the base and to
the authors' iteration at the same batch; `--json` keeps the rows.

    python bench/style_levers.py --authors ../authors-alae --json bench/results/style_levers.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LEVELS = {"16x16": 2, "32x32": 3}


def variants(level: int, base_batch: int, authors: bool) -> list[dict]:
    """The variants timed at `level`: name, tree ("base", "this", "authors"), batch, overrides, options.
    Every variant of this tree states its batch and R1 interval, so that each lever shows alone
    against the base's settings and in the combination the preset uses."""
    def this(name, batch, r1_every=1, **options):
        return dict(name=name, batch=batch, set=[f"train.r1_every={r1_every}"], **options)

    out = [dict(name="base", tree="base", batch=base_batch, set=[])]
    if authors:
        out += [dict(name=f"authors b{b}", tree="authors", batch=b, set=[]) for b in sorted({base_batch, 128})]
    out += [this(f"b{base_batch} (base settings)", base_batch),
            this(f"b{base_batch} 1 thread", base_batch, threads=1),
            this(f"b{base_batch} lazy R1 4", base_batch, 4),
            this(f"b{base_batch} lazy R1 16", base_batch, 16),
            this("b64", 64), this("b128", 128),
            this("b128 lazy R1 4", 128, 4),
            this("b128 lazy R1 16", 128, 16),
            this("b128 lazy R1 16 1 thread", 128, 16, threads=1),
            this("b256 lazy R1 16", 256, 16),
            this("b128 lazy R1 16 compile", 128, 16, compile=True),
            this("b128 lazy R1 16 channels-last", 128, 16, channels_last=True)]
    return [{"tree": "this", "threads": 2, "compile": False, "channels_last": False, "level": level} | v for v in out]


# -- workers ---------------------------------------------------------------------------------
def ours(spec: dict, preset: str):
    """A Trainer (of whichever alae is importable) at spec's level, faded in; returns its step."""
    import torch

    from alae import config
    from alae.training import Trainer

    b = spec["batch"]
    cfg = config.load(preset, spec["set"] + ["train.device=cpu", f"train.threads={spec['threads']}",
                                             f"train.level_batch=[{b}]"])
    m, t = cfg.model, cfg.train
    images = np.random.default_rng(0).integers(0, 256, (1024, m.channels, m.resolution, m.resolution), dtype=np.uint8)
    trainer = Trainer(cfg, Path("unused"), data=(images, np.arange(len(images))))
    trainer.images_seen = int((spec["level"] * t.level_kimg + t.fade_kimg) * 1000)
    k = getattr(t, "r1_every", 1)
    model = trainer.model
    if spec["compile"]:
        model.G, model.F = torch.compile(model.G), torch.compile(model.F)
    if spec["channels_last"]:
        model.to(memory_format=torch.channels_last)
        batch = trainer.stream.batch
        trainer.stream.batch = lambda *a, **k: batch(*a, **k).contiguous(memory_format=torch.channels_last)
    def step():
        trainer.step()

    def flops() -> float:
        """FLOPs per iteration: one with R1 and k - 1 without, averaged (lazy R1 every k)."""
        with_r1, trainer.steps = count_flops(step), 1
        without = count_flops(step) if k > 1 else with_r1
        return (with_r1 + (k - 1) * without) / k
    return step, flops


def count_flops(step) -> float:
    """The FLOPs of one call of `step` (matrix products and convolutions, torch's formulas)."""
    from throughput import CountFlops
    with CountFlops() as counter:
        step()
    return float(counter.total)


def authors(spec: dict, preset: str, authors_dir: str):
    """The authors' iteration (train_alae.py's loop body) with their Model and LREQAdam, at the
    preset's network shape and spec's level and batch, on data from this project's stream."""
    import copy

    import torch

    from alae import config
    from alae.data.stream import DataStream

    sys.path.insert(0, authors_dir)
    from custom_adam import LREQAdam
    from model import Model

    torch.set_num_threads(spec["threads"])
    m = config.load(preset).model
    torch.manual_seed(0)
    model = Model(startf=m.start_ch, maxf=m.max_ch, layer_count=m.levels, latent_size=m.latent_size,
                  mapping_layers=m.f_layers, dlatent_avg_beta=m.w_avg_beta, style_mixing_prob=m.style_mixing_prob,
                  channels=m.channels, generator="GeneratorDefault", encoder="EncoderDefault")
    model_s = copy.deepcopy(model).requires_grad_(False)
    adam = dict(lr=0.0015, betas=(0.0, 0.99), weight_decay=0)
    dec = LREQAdam([{"params": model.decoder.parameters()}, {"params": model.mapping_f.parameters()}], **adam)
    enc = LREQAdam([{"params": model.encoder.parameters()}, {"params": model.mapping_d.parameters()}], **adam)
    images = np.random.default_rng(0).integers(0, 256, (1024, m.channels, m.resolution, m.resolution), dtype=np.uint8)
    stream = DataStream(images, np.arange(len(images)), 0, torch.device("cpu"))
    lod, n, seen = spec["level"], spec["batch"], [0]

    def step():
        x = stream.batch(seen[0], n, 4 * 2**lod) * 2 - 1
        seen[0] += n
        x.requires_grad = True
        enc.zero_grad(set_to_none=False)
        model(x, lod, 1.0, d_train=True, ae=False).backward()
        enc.step()
        dec.zero_grad(set_to_none=False)
        model(x, lod, 1.0, d_train=False, ae=False).backward()
        dec.step()
        enc.zero_grad(set_to_none=False)
        dec.zero_grad(set_to_none=False)
        model(x, lod, 1.0, d_train=True, ae=True).backward()
        enc.step()
        dec.step()
        model_s.lerp(model, 0.5 ** (n / (10 * 1000.0)))
    return step, lambda: count_flops(step)


def worker(spec: dict, preset: str, authors_dir: str | None) -> None:
    """Warm up, report ready, then per request line 'seconds' run iterations for about that
    long (at least two) and answer with their durations."""
    import torch

    torch.set_num_threads(spec["threads"])
    step, flops = authors(spec, preset, authors_dir) if spec["tree"] == "authors" else ours(spec, preset)
    step()
    per_iteration = flops()
    import alae
    print(json.dumps({"alae": alae.__file__, "flops": per_iteration}), flush=True)
    for line in sys.stdin:
        budget, times = float(line), []
        start = time.perf_counter()
        while len(times) < 2 or time.perf_counter() - start < budget:
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        print(json.dumps({"times": times}), flush=True)


# -- coordinator -----------------------------------------------------------------------------
def base_tree(commit: str, into: Path) -> Path:
    """The `alae` package as of `commit`, unpacked under `into`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "alae"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def start(spec: dict, args, base: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(base if spec["tree"] == "base" else ROOT))
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec), "--preset", args.preset]
    if args.authors:
        cmd += ["--authors", args.authors]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def ask(proc: subprocess.Popen, request: str | None = None) -> dict:
    if request is not None:
        proc.stdin.write(request + "\n")
        proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"worker exited with status {proc.wait()}")
    return json.loads(line)


def base_batches(preset: str, commit: str) -> list[int]:
    """The preset's batch per level at `commit`."""
    import yaml
    old = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:alae/configs/{preset}.yaml"],
                         check=True, capture_output=True, text=True).stdout
    return yaml.safe_load(old)["train"]["level_batch"]


def time_level(level_name: str, args, base: Path) -> list[dict]:
    level = LEVELS[level_name]
    old = base_batches(args.preset, args.base)
    specs = variants(level, old[min(level, len(old) - 1)], bool(args.authors))
    if args.only:
        specs = [s for s in specs if s["name"] == "base" or any(o in s["name"] for o in args.only)]
    procs = {}
    for spec in specs:
        t0 = time.perf_counter()
        procs[spec["name"]] = start(spec, args, base)
        ready = ask(procs[spec["name"]])
        spec["gflop"] = ready["flops"] / 1e9
        print(f"{level_name} {spec['name']}: ready in {time.perf_counter() - t0:.0f} s ({ready['alae']}), "
              f"{spec['gflop']:.2f} GFLOP per iteration", flush=True)
    rates = {s["name"]: [] for s in specs}
    for r in range(args.rounds):
        for spec in specs:
            times = ask(procs[spec["name"]], str(args.seconds))["times"]
            rates[spec["name"]].append(spec["batch"] / float(np.median(times)))
        print(f"{level_name} round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()), flush=True)
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    base_rate = float(np.median(rates["base"]))
    rows = []
    for spec in specs:
        rate = float(np.median(rates[spec["name"]]))
        ref = rates.get(f"authors b{spec['batch']}")
        rows.append({"level": level_name, "variant": spec["name"], "batch": spec["batch"], "images_per_s": rate,
                     "gflop_per_iteration": spec["gflop"], "gflop_per_s": spec["gflop"] * rate / spec["batch"],
                     "rounds": rates[spec["name"]], "vs_base": rate / base_rate,
                     "vs_authors": rate / float(np.median(ref)) if ref else None})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fashion-style-cpu")
    parser.add_argument("--base", default="15733ff", help="the commit whose iteration is the comparison base")
    parser.add_argument("--authors", help="a checkout of the authors' ALAE code, to time their iteration beside")
    parser.add_argument("--levels", default="16x16,32x32")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of iterations per variant and round")
    parser.add_argument("--only", nargs="*", help="time only the variants whose names contain one of these")
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker), args.preset, args.authors)
    with tempfile.TemporaryDirectory() as tmp:
        base = base_tree(args.base, Path(tmp))
        rows = []
        for level_name in args.levels.split(","):
            rows += time_level(level_name, args, base)
    peak = matmul_peak() / 1e9
    print(f"fp32 matrix-product peak of this CPU: {peak:.0f} GFLOP/s ({torch_threads()} threads)")
    print(f"{'level':6} {'variant':34} {'batch':>5} {'img/s':>7} {'vs base':>8} {'vs authors':>10} "
          f"{'GFLOP/img':>9} {'GFLOP/s':>8} {'of peak':>7}")
    for r in rows:
        vs_authors = f"{r['vs_authors']:.2f}x" if r["vs_authors"] else "-"
        print(f"{r['level']:6} {r['variant']:34} {r['batch']:5d} {r['images_per_s']:7.1f} {r['vs_base']:7.2f}x "
              f"{vs_authors:>10} {r['gflop_per_iteration'] / r['batch']:9.3f} {r['gflop_per_s']:8.1f} "
              f"{r['gflop_per_s'] / peak:7.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"preset": args.preset, "base": args.base, "peak_gflop_per_s": peak,
                                               "rows": rows}, indent=1) + "\n")


def matmul_peak() -> float:
    import torch

    from throughput import matmul_peak as peak
    torch.set_num_threads(2)
    return peak(torch.device("cpu"), torch.float32)


def torch_threads() -> int:
    import torch
    return torch.get_num_threads()


if __name__ == "__main__":
    main()
