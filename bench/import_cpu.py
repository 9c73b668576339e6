"""What a CPU needs for an imported checkpoint of the authors' FFHQ architecture: the time to
import and load it, and the time and peak memory of encoding and decoding 1024x1024 images.

The checkpoint has the published FFHQ model's architecture (9 levels, feature maps 16 to
512, latent 512, F 8 layers, RGB) and random weights, written in the authors' format by
`alae.reference.synthetic`.

    python bench/import_cpu.py [--images 1] [--repeat 3]
"""

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import alae  # noqa: E402
from alae.reference import import_checkpoint  # noqa: E402
from alae.reference.synthetic import synthetic_reference  # noqa: E402

FFHQ = dict(levels=9, startf=16, maxf=512, latent=512, channels=3, mapping_layers=8)


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1, help="images per encode and decode call")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ffhq.pth"
        torch.save({"models": synthetic_reference(**FFHQ), "auxiliary": {}}, path)
        t0 = time.perf_counter()
        import_checkpoint(path, Path(tmp) / "run")
        t_import = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = alae.load(Path(tmp) / "run")
        t_load = time.perf_counter() - t0
        print(f"checkpoint {path.stat().st_size / 2**20:.0f} MiB; import {t_import:.1f} s, load {t_load:.1f} s; "
              f"{torch.get_num_threads()} threads; resolution {model.resolution}")
        x = torch.rand(args.images, 3, 1024, 1024)
        for what, fn in (("encode", lambda: model.encode(x)), ("decode", lambda: model.decode(w))):
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                out = fn()
                times.append(time.perf_counter() - t0)
                if what == "encode":
                    w = out
            print(f"{what} {args.images} image(s) at 1024x1024: {min(times):.2f} s (min of {args.repeat}; "
                  f"all {', '.join(f'{t:.2f}' for t in times)}), peak memory so far {peak_gib():.2f} GiB")


if __name__ == "__main__":
    main()
