"""Experiments over trials (`alae.trials`): each trial trained once and recorded at once, keyed
by its length; a longer bench begun from a shorter one's checkpoints."""

import pytest

from alae.errors import UserError
from alae.run import Run
from alae.training import train
from alae.trials import Trials, cell, run_trials, start_from
from tests.helpers import assert_same_state, read_stats


def test_each_trial_is_trained_scored_and_recorded_once_per_length(tiny_cfg, tmp_path):
    trials, scored = Trials(tmp_path / "trials.json"), []

    def score(run, cfg):
        scored.append((run.path.name, cfg.train.kimg))
        return {"images": run.stats()[-1]["kimg"]}

    def go(kimg):
        run_trials(trials, tmp_path, ["a b|c"], [0, 1], lambda v, seed: tiny_cfg("mnist-mlp", f"train.kimg={kimg}",
                                                                                 f"train.seed={seed}"),
                   score, extra={"note": "x"})
    go(0.256)
    go(0.256)   # recorded: nothing trains or scores again
    assert scored == [("s0", 0.256), ("s1", 0.256)]
    go(0.512)   # a longer trial continues the same run and is a record of its own
    records = trials.all()
    assert sorted(records) == ["a b|c/s0/0.256", "a b|c/s0/0.512", "a b|c/s1/0.256", "a b|c/s1/0.512"]
    r = records["a b|c/s1/0.512"]
    assert (r["variant"], r["seed"], r["kimg"], r["note"]) == ("a b|c", 1, 0.512, "x")
    assert r["run"] == str(tmp_path / "a_b-c" / "s1") and r["scores"]["images"] >= 0.512
    assert cell([{"v": 1.0}, {"v": 3.0}], lambda x: x["v"]) == "2.00 ± 1.00"
    assert cell([{"v": 1.0}, {}], lambda x: x["v"]) == "—"


def test_a_continued_run_equals_one_trained_straight_and_leaves_its_source_alone(tiny_cfg, tmp_path):
    # checkpoints every 0.256 kimg: the 0.64-kimg source keeps 256, 512 and 640
    source = tmp_path / "short" / "s0"
    train(tiny_cfg("mnist-mlp", "train.kimg=0.64"), source, progress=False)
    before = {p.name: p.read_bytes() for p in Run(source).checkpoints()}
    cfg = tiny_cfg("mnist-mlp", "train.kimg=1.024")
    run = tmp_path / "long" / "s0"
    assert start_from([source], run, cfg) == Run(source).checkpoint_path(640)
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
    assert start_from([source], run, tiny_cfg("mnist-mlp", "train.kimg=0.6")) == \
        Run(source).checkpoint_path(512)
    assert [p.name for p in Run(run).checkpoints()] == [Run(run).checkpoint_path(512).name]
    assert start_from([source], tmp_path / "none", tiny_cfg("mnist-mlp", "train.kimg=0.2")) is None
    assert start_from([tmp_path / "absent"], tmp_path / "none", tiny_cfg("mnist-mlp")) is None
    assert not (tmp_path / "none").exists()


def test_a_source_of_the_same_length_is_copied_finished_not_retrained(tiny_cfg, tmp_path):
    # 0.63 kimg ends at the batch of 16 that reaches 630 images: 640, the source's last checkpoint
    source = tmp_path / "short" / "s0"
    finished = train(tiny_cfg("mnist-mlp", "train.kimg=0.64"), source, progress=False)
    cfg = tiny_cfg("mnist-mlp", "train.kimg=0.63")
    run = tmp_path / "same" / "s0"
    assert start_from([source], run, cfg) == Run(source).checkpoint_path(640)
    rows = read_stats(run)
    copied = train(cfg, run, resume=True, progress=False)
    assert read_stats(run) == rows
    assert_same_state(finished, copied)


def test_the_newest_checkpoint_of_several_sources_is_the_one_continued(tiny_cfg, tmp_path):
    shorter, longer = tmp_path / "a" / "s0", tmp_path / "b" / "s0"
    train(tiny_cfg("mnist-mlp", "train.kimg=0.32"), shorter, progress=False)
    train(tiny_cfg("mnist-mlp", "train.kimg=0.64"), longer, progress=False)
    for i, order in enumerate(([shorter, longer], [longer, shorter])):
        assert start_from(order, tmp_path / f"run{i}", tiny_cfg("mnist-mlp", "train.kimg=1")) \
            == Run(longer).checkpoint_path(640)
    assert start_from([shorter, longer], tmp_path / "run2", tiny_cfg("mnist-mlp", "train.kimg=0.48")) \
        == Run(shorter).checkpoint_path(320)


def test_a_source_trained_differently_is_refused_by_name(tiny_cfg, tmp_path):
    source = tmp_path / "short" / "s0"
    train(tiny_cfg("mnist-mlp", "train.kimg=0.32"), source, progress=False)
    with pytest.raises(UserError, match=r"trained differently \(train.lr 0.006 against 0.003\)"):
        start_from([source], tmp_path / "long", tiny_cfg("mnist-mlp", "train.kimg=0.64", "train.lr=0.003"))
    assert not (tmp_path / "long").exists()
