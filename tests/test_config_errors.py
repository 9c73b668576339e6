"""A bad configuration is one line on stderr naming the key, exit status 2, and no run directory.

Unknown keys and sections, values of the wrong type, non-finite or out-of-range numbers, a
malformed --set, an unknown preset, a config file with an unknown key, and on --resume a model
config that differs from the checkpoint's or a config.yaml that is not YAML.
"""

import shutil

import pytest

from tests.helpers import assert_one_line_error, run_cli

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("argv,message", [
    (["--set", "train.no_such_key=1"], "unknown config key train.no_such_key"),
    (["--set", "nosection.key=1"], "unknown config key nosection.key"),
    (["--set", "train.batch_size=many"], "config key train.batch_size: expected int, got 'many'"),
    (["--set", "model.latent_size=big"], "config key model.latent_size: expected int"),
    (["--set", "train.ae_trains_F=3"], "config key train.ae_trains_F: expected bool, got 3"),
    (["--set", "model.kind=gan"], "config key model.kind: 'gan' is not one of"),
    (["--set", "train.lr=-1"], "config key train.lr: must be positive"),
    (["--set", "train.lr=.nan"], "config key train.lr: must be a finite number, got nan"),
    (["--set", "train.kimg=.inf"], "config key train.kimg: must be a finite number, got inf"),
    (["--config", "mnist-style", "--set", "model.resolution=24"],
     "config key model.resolution: must be a power of two from 4 to 1024, got 24"),
    (["--set", "model.resolution=2"], "config key model.resolution: must lie from 4 to 1024, got 2"),
    (["--set", "lr"], "--set takes section.key=value"),
    (["--config", "no-such-preset"], "unknown config preset 'no-such-preset'"),
    (["--config", "bad.yaml"], "unknown config key model.widht"),  # a config file (bad.yaml, written below)
])
def test_bad_configuration_is_one_line_naming_the_key(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("model:\n  latent_size: 8\n  widht: 3\n")
    code, err = run_cli(capsys, "train", tmp_path / "run", "--quiet", *argv)
    assert_one_line_error(code, err, message)
    assert "error: alae" not in err
    assert not (tmp_path / "run").exists()


def test_resume_with_another_latent_size_is_one_line_naming_the_key(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    code, err = run_cli(capsys, "train", run, "--resume", "--kimg", "0.128", "--quiet",
                        "--set", "model.latent_size=16")
    assert_one_line_error(code, err, "model config differs in model.latent_size (checkpoint 8, now 16)")
    (run / "config.yaml").write_text("model: [unclosed\n")
    code, err = run_cli(capsys, "train", run, "--resume", "--quiet")
    assert_one_line_error(code, err, "config.yaml is not valid YAML")
