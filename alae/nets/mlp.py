"""The MLP networks of the permutation-invariant MNIST experiment (section 7.1, Table 2).

Sizes follow the paper and its reference code: E 784-1024-1024-50 and G 50-1024-1024-784
with leaky ReLU 0.2; F and D are MLPs whose hidden width is the latent size, with a
learning-rate multiplier of 0.1. As in the reference code, E's output and each of F's
layers end in a leaky ReLU, and F starts by pixel-normalising z.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from ..nn import EqualLinear, leaky_relu, pixel_norm


class MLP(nn.Module):
    """Equalized-lr linear layers with leaky ReLU between them (and after the last if asked)."""

    def __init__(
        self,
        sizes: list[int],           # [in, hidden..., out]
        lrmul: float = 1.0,         # learning-rate multiplier of every layer
        activate_last: bool = False,  # leaky ReLU on the output too
        activate_hidden: bool = True,  # leaky ReLU between layers (False: a product of linear maps)
    ):
        super().__init__()
        self.layers = nn.ModuleList(EqualLinear(a, b, lrmul) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activate_last, self.activate_hidden = activate_last, activate_hidden

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        *body, last = self.layers
        for layer in body:
            x = layer(x)
            if self.activate_hidden:
                x = leaky_relu(x)
        hidden = x
        x = last(x)
        if self.activate_last:
            x = leaky_relu(x)
        return (x, hidden) if return_hidden else x


class MappingF(nn.Module):
    """F: z -> w (section 4; reference MappingF): pixel norm, then `layers` blocks."""

    def __init__(self, latent_size: int, layers: int, width: int, lrmul: float):
        super().__init__()
        self.latent_size = latent_size
        self.mlp = MLP([latent_size] + [width] * (layers - 1) + [latent_size], lrmul, activate_last=True)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mlp(pixel_norm(z))


class DiscriminatorD(nn.Module):
    """D: w -> real/fake logit; the GAN discriminator is D∘E (section 4).

    With `nonlinear=False` its layers have no activation between them, as in the
    reference code, so that D is a linear read-out of w.
    """

    def __init__(self, latent_size: int, layers: int, width: int, lrmul: float, nonlinear: bool = True):
        super().__init__()
        self.mlp = MLP([latent_size] + [width] * (layers - 1) + [1], lrmul, activate_hidden=nonlinear)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.mlp(w).squeeze(1)


class EncoderE(nn.Module):
    """E: image -> w, 784-1024-1024-latent (section 7.1)."""

    def __init__(self, latent_size: int, hidden: int, pixels: int = 28 * 28):
        super().__init__()
        self.pixels = pixels
        self.mlp = MLP([pixels, hidden, hidden, latent_size], activate_last=True)

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        """Images [N, 1, 28, 28] (any shape with 784 values per image) -> [N, 784]."""
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.pixels:
            raise UserError(f"the MLP encoder takes 28x28 grayscale images, got {x.shape[1]} values per image")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.flatten(x))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(w, h): the short 50-D code and the long 1024-D activations of the layer before the last (Table 2)."""
        return self.mlp(self.flatten(x), return_hidden=True)


class GeneratorG(nn.Module):
    """G: w -> image, latent-1024-1024-784 with a linear output (section 7.1)."""

    def __init__(self, latent_size: int, hidden: int, resolution: int = 28):
        super().__init__()
        self.resolution = resolution
        self.mlp = MLP([latent_size, hidden, hidden, resolution * resolution])

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.mlp(w).view(w.shape[0], 1, self.resolution, self.resolution)
