"""Do reconstructions keep their class? A pixel-space classifier judges real and reconstructed test images.

An exact 1-nearest-neighbour classifier on raw pixels, fitted on the real training
images, classifies the real test images and their reconstructions G(E(x)) (clipped to
[0, 1]). The closer the two accuracies, the more of what makes an image its class the
autoencoder keeps (the check behind the paper's reconstruction figures, section 7).
The background level is the mean of the clipped reconstruction over the pixels that are 0
in the real image: the speckle a reconstruction adds where the digit has none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as nnf

from ..data import source
from ..errors import UserError
from .table2 import nn1_accuracy

if TYPE_CHECKING:
    from ..config import Config
    from ..model import ALAE


def flat(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """[N, C, H, W] images (uint8 or floats in [0, 1]) -> float32 [N, C*H*W] in [0, 1]."""
    x = images.detach().cpu() if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float().clamp(0, 1)
    return x.flatten(1).numpy()


def evaluate(model: ALAE, cfg: Config, test_limit: int | None = None) -> dict[str, float]:
    """Accuracy in % of the pixel 1NN on real test images and on their reconstructions; pixel
    MSE; background level (see the module docstring)."""
    train, train_rows, train_labels = source.images(cfg, "train")
    test, test_rows, test_labels = source.images(cfg, "test")
    if train_labels is None:
        raise UserError(f"{cfg.data.dataset} has no class labels: the class check needs the MNIST family")
    test_rows = test_rows[:test_limit]
    real = flat(test[test_rows])
    recon = model.reconstruct(np.asarray(test[test_rows]))
    if recon.shape[-1] < test.shape[-1]:  # a model not grown to full size: compare at the data's size
        recon = nnf.interpolate(recon, size=test.shape[-2:], mode="nearest")
    recon = flat(recon)
    train_x, y_train, y_test = flat(train[train_rows]), train_labels[train_rows], test_labels[test_rows]
    return {"real": 100 * nn1_accuracy(train_x, y_train, real, y_test),
            "reconstructed": 100 * nn1_accuracy(train_x, y_train, recon, y_test),
            "mse": float(((recon - real) ** 2).mean()), "background": float(recon[real == 0].mean()),
            "test_images": len(test_rows)}
