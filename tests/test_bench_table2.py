"""The full Table 2 bench: --start-from (a longer bench continues a shorter one's runs) and its table."""

import argparse
import json
import sys

import pytest

from alae.errors import UserError
from alae.run import Run
from alae.training import train
from tests.helpers import ROOT, assert_same_state, read_stats

sys.path.insert(0, str(ROOT / "bench"))
import table2_full  # noqa: E402


def test_a_continued_run_equals_one_trained_straight_and_leaves_its_source_alone(tiny_cfg, tmp_path):
    # checkpoints every 0.256 kimg: the 0.64-kimg source keeps 256, 512 and 640
    source = tmp_path / "short" / "s0"
    train(tiny_cfg("mnist-mlp", "train.kimg=0.64"), source, progress=False)
    before = {p.name: p.read_bytes() for p in Run(source).checkpoints()}
    cfg = tiny_cfg("mnist-mlp", "train.kimg=1.024")
    run = tmp_path / "long" / "s0"
    assert table2_full.start_from([source], run, cfg) == Run(source).checkpoint_path(640)
    assert [p.read_bytes() for p in Run(run).checkpoints()] == [before["ckpt-000000000640.safetensors"]]
    continued = train(cfg, run, resume=True, progress=False)
    straight = train(cfg, tmp_path / "straight", progress=False)
    assert_same_state(straight, continued)
    assert [r["kimg"] for r in read_stats(run)] == [r["kimg"] for r in read_stats(tmp_path / "straight")]
    # the continued run's training time counts its source's intervals too
    assert Run(run).throughput()[1] > Run(source).throughput()[1] > 0
    assert {p.name: p.read_bytes() for p in Run(source).checkpoints()} == before


def test_a_checkpoint_past_the_asked_length_is_not_used(tiny_cfg, tmp_path):
    source = tmp_path / "short" / "s0"
    train(tiny_cfg("mnist-mlp", "train.kimg=0.64"), source, progress=False)
    run = tmp_path / "long" / "s0"
    assert table2_full.start_from([source], run, tiny_cfg("mnist-mlp", "train.kimg=0.6")) == \
        Run(source).checkpoint_path(512)
    assert [p.name for p in Run(run).checkpoints()] == [Run(run).checkpoint_path(512).name]
    assert table2_full.start_from([source], tmp_path / "none", tiny_cfg("mnist-mlp", "train.kimg=0.2")) is None
    assert table2_full.start_from([tmp_path / "absent"], tmp_path / "none", tiny_cfg("mnist-mlp")) is None
    assert not (tmp_path / "none").exists()


def test_a_source_of_the_same_length_is_copied_finished_not_retrained(tiny_cfg, tmp_path):
    # 0.63 kimg ends at the batch of 16 that reaches 630 images: 640, the source's last checkpoint
    source = tmp_path / "short" / "s0"
    finished = train(tiny_cfg("mnist-mlp", "train.kimg=0.64"), source, progress=False)
    cfg = tiny_cfg("mnist-mlp", "train.kimg=0.63")
    run = tmp_path / "same" / "s0"
    assert table2_full.start_from([source], run, cfg) == Run(source).checkpoint_path(640)
    rows = read_stats(run)
    copied = train(cfg, run, resume=True, progress=False)
    assert read_stats(run) == rows
    assert_same_state(finished, copied)


def test_the_newest_checkpoint_of_several_sources_is_the_one_continued(tiny_cfg, tmp_path):
    shorter, longer = tmp_path / "a" / "s0", tmp_path / "b" / "s0"
    train(tiny_cfg("mnist-mlp", "train.kimg=0.32"), shorter, progress=False)
    train(tiny_cfg("mnist-mlp", "train.kimg=0.64"), longer, progress=False)
    for i, order in enumerate(([shorter, longer], [longer, shorter])):
        assert table2_full.start_from(order, tmp_path / f"run{i}", tiny_cfg("mnist-mlp", "train.kimg=1")) \
            == Run(longer).checkpoint_path(640)
    assert table2_full.start_from([shorter, longer], tmp_path / "run2", tiny_cfg("mnist-mlp", "train.kimg=0.48")) \
        == Run(shorter).checkpoint_path(320)


def test_a_source_trained_differently_is_refused_by_name(tiny_cfg, tmp_path):
    source = tmp_path / "short" / "s0"
    train(tiny_cfg("mnist-mlp", "train.kimg=0.32"), source, progress=False)
    with pytest.raises(UserError, match=r"trained differently \(train.lr 0.006 against 0.003\)"):
        table2_full.start_from([source], tmp_path / "long", tiny_cfg("mnist-mlp", "train.kimg=0.64", "train.lr=0.003"))
    assert not (tmp_path / "long").exists()


def test_the_table_is_the_mean_of_the_scores_and_its_wall_time_their_logged_training(tmp_path):
    def score(seed, short_svm, train_s):
        return {"protocol": "DW", "model": "alae", "seed": seed, "run": f"r/alae/dw/s{seed}", "notes": [],
                "accuracy": {"1nn DW": {"short": 95.0, "long": 97.0}, "svm DW": {"short": short_svm, "long": 98.0}},
                "reconstructions": {"real": 96.91, "reconstructed": 94.0, "background": 0.008},
                "run_train_seconds": train_s, "eval_seconds": 30.0}
    (tmp_path / "scores").mkdir()
    for seed, svm, secs in [(0, 93.0, 3000.0), (1, 94.0, 4200.0)]:
        (tmp_path / "scores" / f"alae-dw-s{seed}.json").write_text(json.dumps(score(seed, svm, secs)))
    table2_full.write_tables(argparse.Namespace(out=tmp_path, models=["alae"]))
    md = (tmp_path / "table2.md").read_text()
    assert "| **ALAE** | 0 / 2 | — | — | 95.00 ± 0.00 / 97.00 ± 0.00 | 93.50 ± 0.50 / 98.00 ± 0.00 | — | 1.50 |" in md
    assert "ALAE training 120, scoring 1" in md
    assert json.loads((tmp_path / "table2.json").read_text())["alae"]["run_train_minutes"] == 120


def bench_args(**given):
    return argparse.Namespace(**({"set": [], "epochs": None} | given))


def test_by_default_alae_trains_table_2s_70_epochs_and_the_aes_their_presets_length():
    assert table2_full.trial_config("alae", "dw", 0, bench_args()).train.kimg == 4200   # 70 x 60k
    assert table2_full.trial_config("alae", "sw", 0, bench_args()).train.kimg == 3500   # 70 x 50k
    assert table2_full.trial_config("l1", "sw", 0, bench_args()).train.kimg == 300
    assert table2_full.trial_config("l2", "dw", 1, bench_args(epochs=2)).train.kimg == 120
    cfg = table2_full.trial_config("alae", "sw", 3, bench_args(set=["train.lr=0.002"]))
    assert (cfg.train.seed, cfg.data.split, cfg.train.lr) == (3, "sw", 0.002)


def test_a_score_made_at_another_length_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "scores").mkdir()
    (tmp_path / "scores" / "alae-dw-s0.json").write_text(json.dumps({"kimg": 300.0}))
    monkeypatch.setattr(sys, "argv", ["table2_full.py", "--models", "alae", "--splits", "dw", "--seeds", "0",
                                      "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as stop:
        table2_full.main()
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err == f"table2_full.py: {tmp_path}/scores/alae-dw-s0.json was scored at 300 kimg, this bench asks 4200: " \
                  "give another --out\n"
    assert not (tmp_path / "alae").exists()
