"""Options that might speed up training, each measured against plain eager fp32.

For MLP ALAE (batch 128) and StyleALAE `mnist-style` at 32x32 (batch 64), prints ms per
iteration and the ratio to eager for:
  channels_last  the style networks' weights and the real images in channels-last memory format
  compile G+F    torch.compile of G and F (E and D cannot be compiled: R1 needs the double
                 backward of E and D, which torch.compile does not support; tried first)
An option goes into training only where it measurably helps.

    python bench/options.py [--iterations 5]
"""

import argparse
import time

import torch

from throughput import step_seconds, top_level_trainer


def time_steps(trainer, iterations: int) -> tuple[float, float]:
    """(seconds of the first two steps, which include compilation; median seconds per later step)."""
    t0 = time.perf_counter()
    for _ in range(2):
        trainer.step()
    first = time.perf_counter() - t0
    return first, step_seconds(trainer, iterations)


def with_option(preset: str, option: str):
    trainer = top_level_trainer(preset, "fp32", "auto", 128 if preset == "mnist-mlp" else None)
    m = trainer.model
    if option == "channels_last":
        m.to(memory_format=torch.channels_last)
        batch = trainer.stream.batch
        trainer.stream.batch = lambda *a, **k: batch(*a, **k).contiguous(memory_format=torch.channels_last)
    elif option == "compile E+D":
        m.E, m.D = torch.compile(m.E), torch.compile(m.D)
    elif option == "compile G+F":
        m.G, m.F = torch.compile(m.G), torch.compile(m.F)
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()
    cases = {"mnist-mlp": ["eager", "compile E+D", "compile G+F"],
             "mnist-style": ["eager", "channels_last", "compile E+D", "compile G+F"]}
    for preset, options in cases.items():
        eager = None
        for option in options:
            try:
                first, step = time_steps(with_option(preset, option), args.iterations)
            except Exception as e:  # an option the installed torch cannot run is reported, not fatal
                print(f"{preset:12} {option:14} fails: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
                continue
            eager = eager or step
            print(f"{preset:12} {option:14} {step * 1000:9.1f} ms/iter  x{eager / step:.2f} vs eager  "
                  f"(first two steps {first:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
