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

from . import draws

LRELU_SLOPE = 0.2
HE_GAIN = math.sqrt(2.0)
STD_FLOOR = 1e-10  # added to a variance before its square root where the reference adds nothing


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
        """x W^T scale + b lrmul, the scale applied to whichever of x and W has fewer values.

        Backward multiplies the gradient of the scaled operand by the scale: with a batch
        smaller than the fan-out, scaling x makes that an activation-sized pass instead of
        a weight-sized one (1M values per layer and step for the MLP, bench/throughput.py).
        """
        bias = self.bias if self.lrmul == 1 else self.bias * self.lrmul
        if x.numel() < self.weight.numel():
            return torch.addmm(bias, x * self.weight_scale, self.weight.t())
        return torch.addmm(bias, x, self.weight.t(), alpha=self.weight_scale)

    @torch.no_grad()
    def set_effective(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Make this layer compute x weight^T + bias: store each divided by its run-time scale."""
        self.weight.copy_(weight / self.weight_scale)
        self.bias.copy_(bias / self.lrmul)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, lrmul={self.lrmul}"


def leaky_relu(x: torch.Tensor) -> torch.Tensor:
    return nnf.leaky_relu(x, LRELU_SLOPE)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise each vector to unit root-mean-square (StyleGAN's input to F)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


class EqualConv2d(nn.Module):
    """A 2-D convolution with run-time He scaling ('same' padding, stride 1)."""

    def __init__(
        self,
        in_channels: int,           # input feature maps
        out_channels: int,          # output feature maps
        kernel_size: int,           # odd square kernel
        gain: float = HE_GAIN,      # output scale at initialisation for unit-variance inputs
        bias: bool = True,          # add a learned per-channel bias
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nnf.conv2d(x, self.weight * self.weight_scale, self.bias, padding=self.padding)

    def up(self, x: torch.Tensor) -> torch.Tensor:
        """This 3x3 convolution of x upsampled 2x (nearest), as one stride-2 transposed
        convolution with the 4x4 kernel that sums the four shifts of the 3x3 one.

        StyleGAN's fused upscale: the same result up to rounding (tests/test_nn.py) for
        4/9 of the multiply-adds (bench/results.md has its speed).
        """
        kernel = _shift_mean(self.weight * (4 * self.weight_scale)).flip(2, 3).transpose(0, 1)
        return nnf.conv_transpose2d(x, kernel, self.bias, stride=2, padding=1)

    def down(self, x: torch.Tensor) -> torch.Tensor:
        """This 3x3 convolution followed by 2x2 average pooling, as one stride-2 convolution
        with the 4x4 kernel that averages the four shifts of the 3x3 one (StyleGAN's fused
        downscale; the same result up to rounding for 4/9 of the multiply-adds)."""
        return nnf.conv2d(x, _shift_mean(self.weight * self.weight_scale), self.bias, stride=2, padding=1)


def _shift_mean(weight: torch.Tensor) -> torch.Tensor:
    """[O, I, 3, 3] -> [O, I, 4, 4]: the mean of the kernel placed at the four corners of a 4x4 grid."""
    return nnf.avg_pool2d(nnf.pad(weight, (1, 1, 1, 1)), 2, stride=1)


class Blur(nn.Module):
    """Low-pass filter [1, 2, 1] x [1, 2, 1] / 16, per channel (StyleGAN's anti-aliasing)."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        kernel = (k[:, None] * k[None, :]) / 16.0
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nnf.conv2d(x, self.kernel, padding=1, groups=x.shape[1])


class NoiseInput(nn.Module):
    """Per-pixel Gaussian noise scaled by a learned per-channel weight (StyleGAN, section 5);
    `shared`: one noise map for the whole batch (`draws.Draws.noise`)."""

    def __init__(self, channels: int, shared: bool = False):
        super().__init__()
        self.shared = shared
        self.weight = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight * draws.current().noise(x, self.shared)


def upsample(x: torch.Tensor) -> torch.Tensor:
    return nnf.interpolate(x, scale_factor=2, mode="nearest")


def downsample(x: torch.Tensor) -> torch.Tensor:
    return nnf.avg_pool2d(x, 2)


def downsample_to(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Images [N, C, R, R] averaged down to [N, C, resolution, resolution] (R a multiple of it):
    the lower levels' real images, as the reference's mip levels; as they are where R <= resolution."""
    return nnf.avg_pool2d(x, x.shape[-1] // resolution) if x.shape[-1] > resolution else x


def fade_in(x: torch.Tensor, blend: float) -> torch.Tensor:
    """Real images while a new level fades in (section 5): blended with their copy at half the
    resolution, nearest-upsampled, by weight `blend` (the reference's train_alae.py)."""
    return x if blend >= 1 else torch.lerp(upsample(downsample(x)), x, blend)


def instance_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Each channel of each image to zero mean and unit variance (G's layers, before AdaIN)."""
    return nnf.instance_norm(x, eps=eps)


def instance_norm_style(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Instance norm that also returns what it removed: the style [mean; std] per channel (eq. 9).

    As the reference's E: the map is normalised with `eps` added to the variance (1e-5, torch's
    InstanceNorm2d default, which the reference uses there), the style's std is the plain one;
    STD_FLOOR inside its root only keeps the gradient finite for a
    constant channel (a blank image): it changes a std by at most 1e-5, one of 0.01 by 5e-9.
    Reductions over the flattened last axis run faster on the CPU than var_mean over two axes
    (bench/results.md); everything is plain ops, so R1's double backward runs through.
    """
    flat = x.flatten(2)
    mean = flat.mean(2, keepdim=True)
    centered = flat - mean
    var = centered.pow(2).mean(2, keepdim=True)
    normalized = (centered * (var + eps).rsqrt()).view_as(x)
    return normalized, torch.cat([mean, (var + STD_FLOOR).sqrt()], dim=1).flatten(1)


def adain(x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """AdaIN on a normalised map: x * (1 + y_s) + y_b, with style = [y_s; y_b] per channel."""
    scale, shift = style.view(style.shape[0], 2, x.shape[1], 1, 1).unbind(1)
    return x * (1 + scale) + shift
