"""StyleALAE's G and E (section 5), grown progressively from 4x4, as the authors' reference code builds them.

G is StyleGAN's synthesis network: a learned constant 4x4 input, then per level an
upsampling 3x3 convolution with blur, per-pixel noise, bias, leaky ReLU, instance norm
and AdaIN, twice, each time with its own style input (per-pixel noise is one map per
image, but on the constant input one map for the batch, as the reference); a to-RGB 1x1 convolution per
level (equalized-lr gain 0.03, so that a new G starts near a grey image) lets a new
level fade in. E mirrors G: per level a 3x3 convolution, then blur, a 3x3 convolution
and 2x2 average pooling, each followed by bias and leaky ReLU; after each an instance
norm takes the per-channel mean and standard deviation as that layer's style, and the
styles are mapped by learned linear maps and summed into w (eq. 9). E's last level
works like the others, downsampling 4x4 to 2x2. Its from-RGB layer per level is a 1x1
convolution followed by leaky ReLU twice (the reference applies one in the layer and one
where E starts).

Images are in [-1, 1], the reference's pixel units: `ALAE` converts from and to the
user's [0, 1].

G's upsample-then-convolve and E's convolve-then-downsample each run as one stride-2
(transposed) convolution with a 4x4 kernel (`EqualConv2d.up` / `.down`): the same
function as the separate resampling for 4/9 of the multiply-adds. The reference fuses
them this way only in blocks at 128x128 or more and resamples separately below; either
way the function is the same, so only an imported checkpoint's weight layout depends on
the block's resolution (`alae/reference/style.py`).

Levels count from 0 (4x4) to `levels - 1` (4 * 2 ** (levels - 1)). At level L with blend
b < 1, G's output is lerp(upsample(to_rgb_{L-1}), to_rgb_L, b) and E's input path is
lerp(from_rgb_{L-1}(downsample(x)), block_L(from_rgb_L(x)), b), with block L's styles
weighted by b: at b = 0 the new level adds nothing.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import UserError
from ..nn import (
    Blur,
    EqualConv2d,
    EqualLinear,
    NoiseInput,
    adain,
    downsample,
    instance_norm,
    instance_norm_style,
    leaky_relu,
    upsample,
)

TO_RGB_GAIN = 0.03  # equalized-lr gain of G's to-RGB layers in the reference code


def block_channels(levels: int, start_ch: int, max_ch: int) -> list[int]:
    """Feature maps of each level, 4x4 first: min(max_ch, start_ch * 2 ** (levels - 1 - level)).

    G's block at a level outputs this many; E's block at a level takes this many and
    outputs min(max_ch, 2 * this), so E's 4x4 block may be wider than G's."""
    return [min(max_ch, start_ch * 2 ** (levels - 1 - level)) for level in range(levels)]


def noise_stand_in(x: torch.Tensor, level: int) -> torch.Tensor:
    """x plus what the reference's G adds in place of noise when its noise inputs are off:
    0.8 s phi(x / s), phi the standard normal density, s = sqrt(level + 1); a fixed function
    of the map, kept so that noise-free images equal the reference's."""
    s = math.sqrt(level + 1)
    return x + (0.8 * s / math.sqrt(2 * math.pi)) * torch.exp(x * x * (-0.5 / (s * s)))


class GBlock(nn.Module):
    """One level of G: two (conv, noise, bias, leaky ReLU, instance norm, AdaIN) layers."""

    def __init__(self, in_ch: int, out_ch: int, latent_size: int, level: int):
        super().__init__()
        self.level, self.first = level, level == 0
        if self.first:
            self.const = nn.Parameter(torch.ones(1, out_ch, 4, 4))
        else:
            self.conv_1 = EqualConv2d(in_ch, out_ch, 3, bias=False)
            self.blur = Blur(out_ch)
        self.conv_2 = EqualConv2d(out_ch, out_ch, 3, bias=False)
        # the constant input is one map for the batch until the first AdaIN: its noise is one map too
        self.noise = nn.ModuleList([NoiseInput(out_ch, shared=self.first), NoiseInput(out_ch)])
        self.bias = nn.Parameter(torch.zeros(2, out_ch))
        self.style = nn.ModuleList([EqualLinear(latent_size, 2 * out_ch, gain=1.0) for _ in range(2)])

    def _layer(self, x: torch.Tensor, i: int, w: torch.Tensor, noise: bool) -> torch.Tensor:
        x = self.noise[i](x) if noise else noise_stand_in(x, self.level)
        x = leaky_relu(x + self.bias[i].view(1, -1, 1, 1))
        return adain(instance_norm(x), self.style[i](w))

    def forward(self, x: torch.Tensor | None, w1: torch.Tensor, w2: torch.Tensor, noise: bool) -> torch.Tensor:
        x = self.const if self.first else self.blur(self.conv_1.up(x))  # [1, C, 4, 4] until AdaIN broadcasts it
        x = self._layer(x, 0, w1, noise)
        return self._layer(self.conv_2(x), 1, w2, noise)


class GeneratorG(nn.Module):
    """G: styles -> image in [-1, 1] (StyleGAN synthesis network with progressive growing, section 5)."""

    def __init__(
        self,
        levels: int,                # resolutions 4 .. 4 * 2 ** (levels - 1)
        latent_size: int,           # size of w
        start_ch: int,              # feature maps at the highest resolution
        max_ch: int,                # cap on feature maps
        channels: int,              # image channels (1 or 3)
    ):
        super().__init__()
        ch = block_channels(levels, start_ch, max_ch)
        self.levels, self.num_styles = levels, 2 * levels
        self.level, self.blend = levels - 1, 1.0  # the current stage of growth, set by ALAE.grow
        self.blocks = nn.ModuleList(GBlock(ch[max(i - 1, 0)], ch[i], latent_size, i) for i in range(levels))
        self.to_rgb = nn.ModuleList(EqualConv2d(ch[i], channels, 1, gain=TO_RGB_GAIN) for i in range(levels))

    def forward(self, ws: torch.Tensor, level: int | None = None, blend: float | None = None,
                noise: bool = True) -> torch.Tensor:
        """ws [N, num_styles, latent] (or [N, latent], one w for all) -> images [N, C, R, R], R = 4 * 2 ** level.

        `level` and `blend` default to the current stage of growth; `noise=False` replaces the
        noise inputs by the reference's fixed stand-in (`noise_stand_in`), for repeatable images.
        """
        level = self.level if level is None else level
        blend = self.blend if blend is None else blend
        if ws.dim() == 2:
            ws = ws[:, None].expand(-1, self.num_styles, -1)
        x, prev = None, None
        for i in range(level + 1):
            if i == level and level > 0 and blend < 1:
                prev = upsample(self.to_rgb[i - 1](x))
            x = self.blocks[i](x, ws[:, 2 * i], ws[:, 2 * i + 1], noise)
        image = self.to_rgb[level](x)
        return image if prev is None else torch.lerp(prev, image, blend)


class EBlock(nn.Module):
    """One level of E: conv, leaky ReLU, IN-style; blur, conv, 2x2 average pooling, leaky ReLU,
    IN-style. Returns the map at half the resolution and the block's part of w (eq. 9)."""

    def __init__(self, in_ch: int, out_ch: int, latent_size: int):
        super().__init__()
        self.conv_1 = EqualConv2d(in_ch, in_ch, 3)
        self.blur = Blur(in_ch)
        self.conv_2 = EqualConv2d(in_ch, out_ch, 3)
        self.style_1 = EqualLinear(2 * in_ch, latent_size)
        self.style_2 = EqualLinear(2 * out_ch, latent_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, s1 = instance_norm_style(leaky_relu(self.conv_1(x)))
        x, s2 = instance_norm_style(leaky_relu(self.conv_2.down(self.blur(x))))
        return x, self.style_1(s1) + self.style_2(s2)


class EncoderE(nn.Module):
    """E: image in [-1, 1] -> w = sum of the mapped styles of every layer (eq. 9), with progressive growing."""

    def __init__(self, levels: int, latent_size: int, start_ch: int, max_ch: int, channels: int):
        super().__init__()
        ch = block_channels(levels, start_ch, max_ch)
        self.levels, self.channels, self.num_styles = levels, channels, 2 * levels
        self.level, self.blend = levels - 1, 1.0  # the current stage of growth, set by ALAE.grow
        self.blocks = nn.ModuleList(EBlock(ch[i], min(max_ch, 2 * ch[i]), latent_size) for i in range(levels))
        self.from_rgb = nn.ModuleList(EqualConv2d(channels, ch[i], 1) for i in range(levels))

    def _from_rgb(self, x: torch.Tensor, level: int) -> torch.Tensor:
        return leaky_relu(leaky_relu(self.from_rgb[level](x)))

    def forward(self, x: torch.Tensor, level: int | None = None, blend: float | None = None) -> torch.Tensor:
        """images [N, C, R, R], R = 4 * 2 ** level -> w [N, latent]; level and blend default to the current ones."""
        level = self.level if level is None else level
        blend = self.blend if blend is None else blend
        size = 4 * 2**level
        if x.dim() != 4 or x.shape[1] != self.channels or x.shape[2:] != (size, size):
            raise UserError(f"E at level {level} takes images [N, {self.channels}, {size}, {size}], got {list(x.shape)}")
        h, w = self.blocks[level](self._from_rgb(x, level))
        if level > 0 and blend < 1:
            h = torch.lerp(self._from_rgb(downsample(x), level - 1), h, blend)
            w = w * blend
        for i in range(level - 1, -1, -1):
            h, w_i = self.blocks[i](h)
            w = w + w_i
        return w
