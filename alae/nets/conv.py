"""The convolutional E and G of disentanglement_lib (Locatello et al. 2019, their Table 1 after
Higgins et al. 2017): the networks the field reports its beta-VAE numbers on dSprites with.

E: four 4x4 stride-2 convolutions of 32, 32, 64 and 64 maps, a dense layer of `hidden` units
(256 there) and the code. G mirrors it: a dense layer of `hidden` units, one of 64 maps of
(R/16)^2 pixels, and four 4x4 stride-2 transposed convolutions of 64, 32, 32 and C maps. At
dSprites' 64x64 the smallest maps are 4x4; at 32x32, 2x2. Every layer has the equalized
learning rate of the other families (`alae.nn`), so a preset's lr means the same step; the
activations and their config keys are the MLP family's: a leaky ReLU of slope 0.2 after E's
hidden layers and of slope `e_out_slope` after its output, `g_slope` after G's hidden layers
and `g_out_slope` after its output.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as nnf
from torch import nn

from ..errors import UserError
from ..nn import HE_GAIN, LRELU_SLOPE
from .mlp import MLP

MAPS = (32, 32, 64, 64)  # E's feature maps from the image side; G's in reverse
KERNEL, STRIDE = 4, 2
DOWNSAMPLING = STRIDE ** len(MAPS)  # the image side over the side of the smallest maps


class EqualConv(nn.Module):
    """A 4x4 stride-2 convolution (side halved) or transposed convolution (side doubled), padding 1,
    with run-time He scaling: the fan-in of a transposed one is in_channels * (4 / 2)^2, the
    kernel taps that reach one output pixel."""

    def __init__(self, in_channels: int, out_channels: int, transposed: bool):
        super().__init__()
        self.transposed = transposed
        shape = (in_channels, out_channels) if transposed else (out_channels, in_channels)
        self.weight = nn.Parameter(torch.randn(*shape, KERNEL, KERNEL))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        taps = (KERNEL // STRIDE) ** 2 if transposed else KERNEL * KERNEL
        self.weight_scale = HE_GAIN / math.sqrt(in_channels * taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op = nnf.conv_transpose2d if self.transposed else nnf.conv2d
        return op(x, self.weight * self.weight_scale, self.bias, stride=STRIDE, padding=1)


def check_resolution(resolution: int) -> None:
    """A one-line error unless the side is a multiple of 16 (four halvings to whole maps)."""
    if resolution < DOWNSAMPLING or resolution % DOWNSAMPLING:
        raise UserError(f"the conv networks take images whose side is a multiple of {DOWNSAMPLING}, got {resolution}")


class EncoderE(nn.Module):
    """E: image [N, C, R, R] -> w [N, latent] (the MLP EncoderE's interface)."""

    def __init__(self, latent_size: int, hidden: int, out_slope: float, resolution: int = 32, channels: int = 1):
        super().__init__()
        check_resolution(resolution)
        self.resolution, self.channels = resolution, channels
        sizes = (channels, *MAPS)
        self.convs = nn.ModuleList(EqualConv(a, b, transposed=False) for a, b in zip(sizes[:-1], sizes[1:]))
        side = resolution // DOWNSAMPLING
        self.mlp = MLP([MAPS[-1] * side * side, hidden, latent_size], last_slope=out_slope)

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """Images [N, C, R, R] -> the last convolution's maps, flattened; other shapes are refused."""
        if tuple(x.shape[1:]) != (self.channels, self.resolution, self.resolution):
            raise UserError(f"the conv encoder takes {self.resolution}x{self.resolution} images with {self.channels} "
                            f"channel(s), got shape {list(x.shape[1:])}")
        for conv in self.convs:
            x = nnf.leaky_relu(conv(x), LRELU_SLOPE)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.maps(x))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(w, h): the code and the activations of the dense layer before it."""
        return self.mlp(self.maps(x), return_hidden=True)


class GeneratorG(nn.Module):
    """G: w [N, latent] -> image [N, C, R, R] (the MLP GeneratorG's interface)."""

    def __init__(self, latent_size: int, hidden: int, hidden_slope: float, resolution: int = 32, channels: int = 1,
                 out_slope: float = 1.0):
        super().__init__()
        check_resolution(resolution)
        self.resolution, self.channels = resolution, channels
        self.side = resolution // DOWNSAMPLING
        self.mlp = MLP([latent_size, hidden, MAPS[-1] * self.side * self.side], hidden_slope=hidden_slope,
                       last_slope=hidden_slope)
        sizes = (*MAPS[::-1], channels)
        self.convs = nn.ModuleList(EqualConv(a, b, transposed=True) for a, b in zip(sizes[:-1], sizes[1:]))
        self.slopes = [hidden_slope] * (len(self.convs) - 1) + [None if out_slope == 1 else out_slope]

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        x = self.mlp(w).view(w.shape[0], MAPS[-1], self.side, self.side)
        for conv, slope in zip(self.convs, self.slopes):
            x = conv(x)
            if slope is not None:
                x = nnf.leaky_relu(x, slope)
        return x
