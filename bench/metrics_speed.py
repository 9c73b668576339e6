"""Images per second of the metric networks on this machine: Inception-v3 (FID) and LPIPS.

Inception is timed as loaded from the file (the reference) and as `alae.metrics.inception`
runs it, at several batch sizes; the largest difference of its features from the
reference's is printed next to each rate. LPIPS is timed for VGG16 and AlexNet.

    python bench/metrics_speed.py
"""

import argparse
import time

import torch

from alae.metrics.inception import Inception, prepare
from alae.metrics.lpips import LPIPS


def rate(fn, n: int, repeats: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return n * repeats / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="16,64")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"device {args.device}, threads {torch.get_num_threads()}")
    ours = Inception(device=args.device)
    reference = torch.jit.load(str(ours.path), map_location=args.device).eval()
    for batch in (int(b) for b in args.batches.split(",")):
        images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8)
        x = prepare(images).to(args.device)
        with torch.inference_mode():
            expected = reference(x).double().cpu()
            base = rate(lambda: reference(x), batch, args.repeats)
        fast = rate(lambda: ours(images), batch, args.repeats)
        diff = (ours(images) - expected).abs().max().item()
        print(f"inception batch {batch}: reference {base:.2f} img/s, alae {fast:.2f} img/s "
              f"(x{fast / base:.2f}), max |feature difference| {diff:.2e}")
    for net in ("vgg16", "alexnet"):
        lpips = LPIPS(net).to(args.device)
        for size in (32, 256):
            a, b = (torch.rand(32, 3, size, size, device=args.device) * 2 - 1 for _ in range(2))
            with torch.inference_mode():
                r = rate(lambda: lpips(a, b), 32, args.repeats)
            print(f"lpips {net} {size}x{size}: {r:.1f} image pairs/s")


if __name__ == "__main__":
    main()
