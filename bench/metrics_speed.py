"""Images per second of the metric networks on this machine: Inception-v3 (FID) and LPIPS.

Inception: the file as loaded (the reference) against each change on its own and together
(channels-last layout; the graph frozen with batch norms folded into the convolutions;
batch size), each with the largest difference of its features from the reference's; then
`alae.metrics.inception.Inception` as the metrics run it. LPIPS: VGG16 and AlexNet.

    python bench/metrics_speed.py
"""

import argparse
import time
import warnings

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
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"device {args.device}, threads {torch.get_num_threads()}")
    ours = Inception(device=args.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        reference = torch.jit.load(str(ours.path), map_location=args.device).eval()
        scripted = torch.jit.load(str(ours.path), map_location=args.device).eval()
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(scripted))
    images = torch.randint(0, 256, (args.batch, 3, 32, 32), dtype=torch.uint8)
    x = prepare(images).to(args.device)
    xc = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = reference(x)
        base = rate(lambda: reference(x), args.batch, args.repeats)
        print(f"inception batch {args.batch}, as loaded: {base:.2f} img/s")
        for name, net, inp in (("channels-last", reference, xc), ("frozen, BN folded", frozen, x),
                               ("frozen, BN folded, channels-last", frozen, xc)):
            r = rate(lambda: net(inp), args.batch, args.repeats)
            diff = (net(inp) - expected).abs().max().item()
            print(f"  {name}: {r:.2f} img/s (x{r / base:.2f}), max |feature difference| {diff:.2e}")
        for batch in (8, 64):
            xb = prepare(torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8)).to(args.device)
            print(f"  as loaded, batch {batch}: {rate(lambda: reference(xb), batch, args.repeats):.2f} img/s")
    r = rate(lambda: ours(images), args.batch, args.repeats)
    diff = (ours(images) - expected.double().cpu()).abs().max().item()
    print(f"alae.metrics.inception.Inception, batch {args.batch}: {r:.2f} img/s (x{r / base:.2f} the file as loaded), "
          f"max |feature difference| {diff:.2e}")
    for net in ("vgg16", "alexnet"):
        lpips = LPIPS(net).to(args.device)
        for size in (32, 256):
            a, b = (torch.rand(16, 3, size, size, device=args.device) * 2 - 1 for _ in range(2))
            with torch.inference_mode():
                print(f"lpips {net} {size}x{size}: {rate(lambda: lpips(a, b), 16, args.repeats):.1f} image pairs/s")


if __name__ == "__main__":
    main()
