"""The shapes comparison bench, run as a user runs it: the table of what is recorded, its rows named by
each model's KL weights."""

import subprocess
import sys

from alae.trials import Trials
from tests.helpers import ROOT

FACTORS = ["shape", "scale", "orientation", "x", "y"]


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
