"""The full Table 2 bench, run as a user runs it: the trials it plans and the table of what is recorded."""

import json
import subprocess
import sys

from alae.trials import Trials
from tests.helpers import ROOT


def bench(*args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "table2_full.py"), *args], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_table_is_the_mean_of_the_trials_of_the_asked_length_and_its_wall_time_their_logged_training(tmp_path):
    def record(seed, short_svm, train_s, kimg=4200.0):
        scores = {"protocol": "DW", "notes": [],
                  "accuracy": {"1nn DW": {"short": 95.0, "long": 97.0}, "svm DW": {"short": short_svm, "long": 98.0}},
                  "reconstructions": {"real": 96.91, "reconstructed": 94.0, "background": 0.008},
                  "run_train_seconds": train_s, "eval_seconds": 30.0}
        return {"variant": "alae|dw", "seed": seed, "kimg": kimg, "run": f"r/alae-dw/s{seed}", "train_seconds": train_s,
                "scores": scores}
    trials = Trials(tmp_path / "trials.json")
    for seed, svm, secs in [(0, 93.0, 3000.0), (1, 94.0, 4200.0)]:
        trials.record(f"alae|dw/s{seed}/4200", record(seed, svm, secs))
    trials.record("alae|dw/s2/300", record(2, 50.0, 60.0, kimg=300.0))   # another length: not in this table
    bench("--table", "--models", "alae", "--splits", "dw", "--out", str(tmp_path))
    md = (tmp_path / "table2.md").read_text()
    assert "| **ALAE** | 0 / 2 | — | — | 95.00 ± 0.00 / 97.00 ± 0.00 | 93.50 ± 0.50 / 98.00 ± 0.00 | — | 1.50 |" in md
    assert "ALAE training 120, scoring 1" in md
    assert json.loads((tmp_path / "table2.json").read_text())["alae"]["run_train_minutes"] == 120


def test_by_default_alae_trains_table_2s_70_epochs_and_the_aes_their_presets_length():
    assert bench("--plan").splitlines() == [
        "alae|sw: 3500 kimg (sw, mnist-mlp)", "alae|dw: 4200 kimg (dw, mnist-mlp)",     # 70 x 50k, 70 x 60k
        "l1|sw: 300 kimg (sw, mnist-ae-l1)", "l1|dw: 300 kimg (dw, mnist-ae-l1)",
        "l2|sw: 300 kimg (sw, mnist-ae-l2)", "l2|dw: 300 kimg (dw, mnist-ae-l2)"]
    assert bench("--plan", "--models", "l2", "--splits", "dw", "--epochs", "2", "--set", "train.lr=0.002") == \
        "l2|dw: 120 kimg (dw, mnist-ae-l2, train.lr=0.002)\n"
