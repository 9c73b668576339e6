"""Options that might speed up training, each measured against plain eager fp32.

For MLP ALAE (batch 128) and StyleALAE `mnist-style` at 32x32 (batch 64), prints ms per
iteration with the option and without, and their ratio, for:
  channels_last  the style networks' weights and the real images in channels-last memory format
  compile E+D    torch.compile of E and D (MLP ALAE runs step 1 by its own gradients,
                 `alae.mlp_step`, so only steps 2 and 3 go through the compiled networks;
                 StyleALAE's R1 needs their double backward, which torch.compile does not support)
  compile G+F    torch.compile of G and F
Each option is timed in the same process as an eager trainer, in alternating rounds, so
that both see the same load of the machine. An option goes into training only where it
measurably helps.

    python bench/options.py [--iterations 3] [--rounds 4]
"""

import argparse
import time

import numpy as np
import torch
from throughput import step_seconds, top_level_trainer


def compare(preset: str, option: str, iterations: int, rounds: int) -> tuple[float, float, float]:
    """(seconds of the option's first two steps, which include compilation; median seconds
    per step of eager; of the option), the two timed in alternating rounds."""
    eager, other = with_option(preset, "eager"), with_option(preset, option)
    for _ in range(2):
        eager.step()
    t0 = time.perf_counter()
    for _ in range(2):
        other.step()
    first = time.perf_counter() - t0
    times = {"eager": [], option: []}
    for _ in range(rounds):
        for name, trainer in (("eager", eager), (option, other)):
            times[name].append(step_seconds(trainer, iterations))
    return first, float(np.median(times["eager"])), float(np.median(times[option]))


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
    parser.add_argument("--iterations", type=int, default=3, help="steps per round")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds of eager and the option")
    args = parser.parse_args()
    cases = {"mnist-mlp": ["compile E+D", "compile G+F"],
             "mnist-style": ["channels_last", "compile E+D", "compile G+F"]}
    for preset, options in cases.items():
        for option in options:
            try:
                first, eager, step = compare(preset, option, args.iterations, args.rounds)
            except Exception as e:  # an option the installed torch cannot run is reported, not fatal
                print(f"{preset:12} {option:14} fails: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
                continue
            print(f"{preset:12} {option:14} {step * 1000:9.1f} ms/iter against eager {eager * 1000:9.1f}  "
                  f"x{eager / step:.2f}  (first two steps {first:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
