"""The shapes comparison bench, run as a user runs it: the table of what is recorded, its rows named by
each model's KL weights and network family; the models and presets of each family."""

import importlib.util
import subprocess
import sys

from alae.trials import Trials
from tests.helpers import ROOT, train_tiny

FACTORS = ["shape", "scale", "orientation", "x", "y"]


def load_bench():
    """bench/disentanglement.py as a module (the bench folder is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_disentanglement", ROOT / "bench" / "disentanglement.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scores(kind: str, mig: float) -> dict:
    code = {"mig": {"mig": mig}, "dci": {"disentanglement": 0.1, "completeness": 0.1, "informativeness": 0.5},
            "sap": {"sap": 0.01}, "factor_vae": {"score": 0.4}, "probe": {"accuracy": [0.3] * len(FACTORS)}}
    return {"kind": kind, "factors": FACTORS, "reconstruction_mse": 0.004, "codes": {"w": code},
            "run_train_seconds": 2700.0}


def test_the_table_names_the_preset_beta_vae_by_its_schedule_and_the_others_by_their_constant_beta(tmp_path):
    trials = Trials(tmp_path / "trials.json")
    for variant, migs in [("vae-b8", (0.02, 0.14)), ("vae", (0.42, 0.37)), ("vae-b16", (0.25, 0.26)), ("ae", (0.03, 0.03))]:
        kind = "ae" if variant == "ae" else "vae"
        for seed, mig in enumerate(migs):
            trials.record(f"{variant}/s{seed}/12000", {"variant": variant, "seed": seed, "kimg": 12000.0,
                                                      "run": f"r/{variant}/s{seed}", "train_seconds": 1.0,
                                                      "scores": scores(kind, mig)})
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "disentanglement.py"), "--table", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    rows = [line.split(" | ")[:3] for line in done.stdout.splitlines()[2:]]
    assert rows == [["| AE, 12000 kimg", "2", "0.030 ± 0.000"],
                    ["| beta-VAE (beta 16, then 8 from 8,000 kimg), 12000 kimg", "2", "0.395 ± 0.025"],
                    ["| beta-VAE (beta 8), 12000 kimg", "2", "0.080 ± 0.060"],
                    ["| beta-VAE (beta 16), 12000 kimg", "2", "0.255 ± 0.005"]]


def test_conv_models_train_their_own_presets_and_are_named_so_after_the_mlp_rows(tmp_path):
    trials = Trials(tmp_path / "trials.json")
    for variant, kind, kimg in [("conv-vae-b16", "vae", 4000.0), ("conv-ae", "ae", 1500.0), ("ae", "ae", 5000.0)]:
        trials.record(f"{variant}/s0/{kimg:g}", {"variant": variant, "seed": 0, "kimg": kimg, "run": f"r/{variant}/s0",
                                                 "train_seconds": 1.0, "scores": scores(kind, 0.2)})
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "disentanglement.py"), "--table", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert [line.split(" | ")[0] for line in done.stdout.splitlines()[2:]] == [
        "| AE, 5000 kimg", "| AE, conv E and G, 1500 kimg", "| beta-VAE (beta 16), conv E and G, 4000 kimg"]
    bench = load_bench()
    assert bench.models([16], "conv") == ["conv-alae", "conv-ae", "conv-vae", "conv-vae-b16"]
    assert bench.spec("conv-vae-b8") == ("shapes-conv-vae", ["model.vae_beta=8", "train.vae_beta_late_kimg=0"])
    assert bench.spec("conv-alae") == ("shapes-conv-alae", []) and bench.spec("vae-b4")[0] == "shapes-vae"


def test_the_curve_scores_every_kept_checkpoint(shapes_set, tmp_path):
    run = train_tiny(tmp_path / "vae", "shapes-conv-vae", shapes_set, "train.checkpoint_kimg=0.032")
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "disentanglement_curve.py"), str(run), "--num", "36"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "| run | kimg | pixel MSE | MIG | " + " | ".join(f"MIG {n}" for n in FACTORS) + " |"
    assert [line.split(" | ")[1] for line in lines[2:]] == ["0.032", "0.064"]
