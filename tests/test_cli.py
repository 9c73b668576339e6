"""The command line: user mistakes give one line on stderr and exit status 2 (bad configurations:
tests/test_config_errors.py), and a run directory is never overwritten."""

import subprocess

import pytest

from alae.cli import main
from alae.run import Run
from tests.helpers import TINY_STYLE, assert_one_line_error, child_env, python, run_cli, set_args, tiny_args


@pytest.mark.parametrize("argv,message", [
    (["eval", "table2", "no/such/run"], "run directory not found: no/such/run"),
    (["report", "no/such/run"], "run directory not found"),
    (["train", "x", "--resume"], "cannot resume: run directory x does not exist"),
    (["train", "x", "--epochs", "1", "--kimg", "2"], "not allowed with argument"),
    (["train"], "the following arguments are required: run"),
    (["frobnicate"], "invalid choice"),
    (["generate"], "the following arguments are required: run, --out (see alae generate --help)"),
    (["serve", "no/such/run", "--port", "99999"], "argument --port: a port lies from 0 to 65535, got 99999"),
    (["import", "text.pth", "r"], "text.pth is not a readable torch checkpoint"),
    (["import", "noise.pth", "r"], "noise.pth "),  # refused, as unreadable or as holding objects
])
def test_user_errors_are_one_line_with_exit_2(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.pth").write_text("hello\n")
    (tmp_path / "noise.pth").write_bytes(bytes(range(256)) * 20)
    code, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, message)
    assert "error: alae" not in err


def test_version_is_printed(capsys):
    import alae
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"alae {alae.__version__}"


def test_console_script_runs_and_fails_cleanly(tmp_path):
    ok = subprocess.run(python("-m", "alae", "--help"), env=child_env(), capture_output=True, text=True)
    assert ok.returncode == 0 and "train" in ok.stdout
    bad = subprocess.run(python("-m", "alae", "eval", "table2", str(tmp_path / "missing")), env=child_env(),
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == f"alae: error: run directory not found: {tmp_path / 'missing'}"


def test_train_then_eval_through_the_cli(capsys, tmp_path):
    out = tmp_path / "run"
    sets = tiny_args()
    assert main(["train", str(out), "--kimg", "0.064", "--quiet", *sets]) == 0
    assert (out / "config.yaml").is_file() and (out / "stats.jsonl").is_file()
    code, err = run_cli(capsys, "train", str(out), "--kimg", "0.064", "--quiet", *sets)
    assert code == 2 and "--resume" in err
    assert main(["train", str(out), "--resume", "--kimg", "0.128", "--quiet"]) == 0
    import alae
    assert alae.load(out).cfg.latent_size == 8


def test_table2_of_a_style_run_is_refused_clearly(capsys, tmp_path):
    out = tmp_path / "style"
    sets = set_args(*TINY_STYLE)
    assert main(["train", "--config", "mnist-style", str(out), "--kimg", "0.016", "--quiet", *sets]) == 0
    code, err = run_cli(capsys, "eval", "table2", str(out))
    assert code == 2 and "Table 2 is defined for the MLP networks on MNIST" in err


def test_epochs_count_passes_over_the_training_set(tmp_path, packed_fashion):
    from alae.cli import build_parser, resolve_config
    args = build_parser().parse_args(["train", str(tmp_path / "r"), "--epochs", "0.5"])
    assert resolve_config(args).train.kimg == 30.0  # half of MNIST's 60k
    args = build_parser().parse_args(["train", "--config", "fashion-style", str(tmp_path / "s"),
                                      "--epochs", "2", "--set", f"data.dataset={packed_fashion[0]}", "--set", "data.split=dw"])
    assert resolve_config(args).train.kimg == 120.0


def test_generate_refuses_a_sheet_no_reader_opens(capsys, mlp_run, tmp_path):
    code, err = run_cli(capsys, "generate", str(mlp_run), "--num", "100000", "--out", str(tmp_path / "g.png"))
    assert code == 2 and "--num must lie from 1 to 1024 at 28x28" in err and not (tmp_path / "g.png").exists()


@pytest.mark.usefixtures("one_thread")
def test_a_run_directory_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(out), "--kimg", "0.032", "--quiet", *tiny_args()]) == 0
    code, err = run_cli(capsys, "train", out, "--kimg", "0.064", "--quiet", *tiny_args())
    assert_one_line_error(code, err, "already exists: pass --resume to continue it or --force to start over")
    assert [p.name for p in Run(out).checkpoints()] == ["ckpt-000000000032.safetensors"]
    assert main(["train", str(out), "--kimg", "0.016", "--force", "--quiet", *tiny_args()]) == 0
    assert [p.name for p in Run(out).checkpoints()] == ["ckpt-000000000016.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing left beside it
    (tmp_path / "a-file").write_text("")
    code, err = run_cli(capsys, "train", tmp_path / "a-file" / "run", "--quiet", *tiny_args())
    assert_one_line_error(code, err, "cannot create run directory", "a-file/run")
