"""The MLP networks of the permutation-invariant MNIST experiment (section 7.1, Table 2).

Sizes follow the paper and its reference code: E 784-1024-1024-50 and G 50-1024-1024-784;
F and D are MLPs whose hidden width is the latent size, with a learning-rate multiplier
of 0.1. As in the reference code, E's output and each of F's layers end in a leaky ReLU,
and F starts by pixel-normalising z. The slopes of E's output activation and of G's
hidden activations are config values: the reference code ("Ref" commit of its MNIST
branch) uses PyTorch's default 0.01 there and 0.2 everywhere else; the MNIST presets
make E's output linear (slope 1): at 20 epochs it classifies as well from w as 0.01 and
its reconstructions keep their class and a clean background (bench/results.md,
"Table 2: E's output slope and the reference's settings at 20 epochs").
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import nn

from ..errors import UserError
from ..nn import LRELU_SLOPE, EqualLinear, pixel_norm


class MLP(nn.Module):
    """Equalized-lr linear layers, each followed by a leaky ReLU of its slope or by nothing."""

    def __init__(
        self,
        sizes: list[int],                   # [in, hidden..., out]
        lrmul: float = 1.0,                 # learning-rate multiplier of every layer
        hidden_slope: float | None = LRELU_SLOPE,  # leaky ReLU slope between layers (None: none)
        last_slope: float | None = None,    # leaky ReLU slope on the output (None: linear output)
    ):
        super().__init__()
        self.layers = nn.ModuleList(EqualLinear(a, b, lrmul) for a, b in zip(sizes[:-1], sizes[1:]))
        slopes = [hidden_slope] * (len(self.layers) - 1) + [last_slope]
        self.slopes = [None if slope == 1 else slope for slope in slopes]  # slope 1: the identity

    def forward(self, x: torch.Tensor, return_hidden: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        hidden = x
        for layer, slope in zip(self.layers, self.slopes):
            hidden, x = x, layer(x)
            if slope is not None:
                x = nnf.leaky_relu(x, slope)
        return (x, hidden) if return_hidden else x


class MappingF(nn.Module):
    """F: z -> w (section 4; reference MappingF): pixel norm, then `layers` blocks.

    With 0 layers F is the identity, w = z, with no pixel norm: the reference MNIST
    branch's last commit ("MNIST z - space").
    """

    def __init__(self, latent_size: int, layers: int, width: int, lrmul: float):
        super().__init__()
        self.latent_size = latent_size
        self.mlp = MLP([latent_size] + [width] * (layers - 1) + [latent_size], lrmul, last_slope=LRELU_SLOPE) if layers else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mlp(pixel_norm(z)) if self.mlp is not None else z


class DiscriminatorD(nn.Module):
    """D: w -> real/fake logit; the GAN discriminator is D∘E (section 4).

    With `nonlinear=False` its layers have no activation between them, as in the
    reference code, so that D is a linear read-out of w.
    """

    def __init__(self, latent_size: int, layers: int, width: int, lrmul: float, nonlinear: bool = True):
        super().__init__()
        self.mlp = MLP([latent_size] + [width] * (layers - 1) + [1], lrmul,
                       hidden_slope=LRELU_SLOPE if nonlinear else None)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.mlp(w).squeeze(1)


class EncoderE(nn.Module):
    """E: image -> w, 784-1024-1024-latent (section 7.1), leaky ReLU 0.2 after the hidden
    layers and of slope `out_slope` after the output. Other image sizes take
    resolution^2 * channels inputs."""

    def __init__(self, latent_size: int, hidden: int, out_slope: float, resolution: int = 28, channels: int = 1):
        super().__init__()
        self.resolution, self.channels = resolution, channels
        self.pixels = resolution * resolution * channels
        self.mlp = MLP([self.pixels, hidden, hidden, latent_size], last_slope=out_slope)

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        """Images [N, C, R, R] (any shape with C * R * R values per image) -> [N, C * R * R]."""
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.pixels:
            raise UserError(f"the MLP encoder takes {self.resolution}x{self.resolution} images with {self.channels} "
                            f"channel(s), got {x.shape[1]} values per image")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.flatten(x))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(w, h): the short 50-D code and the long 1024-D activations of the layer before the last (Table 2)."""
        return self.mlp(self.flatten(x), return_hidden=True)


class GeneratorG(nn.Module):
    """G: w -> image, latent-1024-1024-784, leaky ReLU of slope `hidden_slope` after the
    hidden layers and a linear output (section 7.1), or a leaky ReLU of slope `out_slope`
    there; images of `channels` x `resolution`^2."""

    def __init__(self, latent_size: int, hidden: int, hidden_slope: float, resolution: int = 28, channels: int = 1,
                 out_slope: float = 1.0):
        super().__init__()
        self.resolution, self.channels = resolution, channels
        self.mlp = MLP([latent_size, hidden, hidden, channels * resolution * resolution], hidden_slope=hidden_slope,
                       last_slope=out_slope)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.mlp(w).view(w.shape[0], self.channels, self.resolution, self.resolution)
