"""Building blocks shared by the networks: equalized learning rate, pixel norm.

Equalized learning rate (progressive GANs, section 4.1 of Karras et al. 2018; used by
ALAE for every layer, section 5 and 7): weights are stored as N(0, 1) / lrmul and
scaled at run time by lrmul * gain / sqrt(fan_in). Adam's step on the stored weight is
about lr regardless of scale, so the effective weight moves by about
lr * lrmul * gain / sqrt(fan_in): every layer learns at the same speed, and `lrmul`
slows a whole layer down (0.1 for F and D in the reference code), with stock Adam.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as nnf
from torch import nn

LRELU_SLOPE = 0.2
HE_GAIN = math.sqrt(2.0)


class EqualLinear(nn.Module):
    """A linear layer with run-time He scaling and a learning-rate multiplier."""

    def __init__(
        self,
        in_features: int,           # fan-in
        out_features: int,          # fan-out
        lrmul: float = 1.0,         # learning-rate multiplier of weight and bias
        gain: float = HE_GAIN,      # output scale at initialisation for unit-variance inputs
    ):
        super().__init__()
        self.in_features, self.out_features, self.lrmul = in_features, out_features, lrmul
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lrmul)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.weight_scale = lrmul * gain / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nnf.linear(x, self.weight * self.weight_scale, self.bias * self.lrmul)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, lrmul={self.lrmul}"


def leaky_relu(x: torch.Tensor) -> torch.Tensor:
    return nnf.leaky_relu(x, LRELU_SLOPE)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise each vector to unit root-mean-square (StyleGAN's input to F)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)
