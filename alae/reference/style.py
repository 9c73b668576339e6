"""The authors' StyleALAE networks (`GeneratorDefault`, `EncoderDefault`, `MappingF`, `MappingD`)
as this project's F, G, E, D (section 5).

The architecture is read from the tensors: the number of G's blocks gives the levels,
their widths the feature maps, F's and D's layers their depth and width. Their layers
store the effective weight (the reference's default, implicit learning-rate
equalization: the weight already multiplied by gain / sqrt(fan_in) * lrmul); `alae.nn`
stores weight / that scale and bias / lrmul, and the conversion divides accordingly.

Where the names differ in more than the scale:
- E's blocks run from the highest resolution down (`encode_block.0` works at full size);
  here level 0 is 4x4, so E's block at level l is `encode_block.{levels - 1 - l}`.
- G's first convolution in blocks at 128x128 or more is a transposed convolution (fused
  upscaling), weight [in, out, 3, 3]; the same function as a convolution of the 2x
  upsampled map with that weight swapped to [out, in] and flipped in both spatial axes.
- D has 2 * latent outputs of which the losses use number `latent_size`: D here has that
  one output.
- The separate biases of the convolution blocks (`bias_1`, `bias_2`, [1, C, 1, 1]) are
  the convolutions' biases here (G: its per-layer bias rows); the blur kernels are fixed
  and only checked.
"""

from __future__ import annotations

import torch

from ..config import ModelConfig
from ..errors import UserError
from ..model import ALAE
from ..nn import Blur, EqualConv2d, EqualLinear

FUSED_FROM = 128  # the reference fuses resampling into the convolution in blocks at this resolution or more
REFERENCE_SETTINGS = dict(  # the reference code's values of what the tensors cannot say (its defaults.py, model.py)
    d_nonlinear=False,          # MappingD: linear layers with nothing between them
    f_lrmul=0.1,                # MappingF's learning-rate multiplier
    d_lrmul=0.1,                # MappingD's learning-rate multiplier
    truncation_psi=0.7,
    truncation_cutoff=8,
    style_mixing_prob=0.9,
    w_avg_beta=0.995,
)


def matches(nets: dict[str, dict[str, torch.Tensor]]) -> bool:
    """Whether `nets` (the authors' network names -> state dicts) are their StyleALAE networks."""
    return any(k.startswith("decode_block.") for k in nets.get("generator", {})) or \
        any(k.startswith("encode_block.") for k in nets.get("discriminator", {}))


class _Source:
    """The tensors of one reference network, each taken once, by name, with its shape checked."""

    def __init__(self, nets: dict[str, dict[str, torch.Tensor]], name: str):
        if name not in nets:
            raise UserError(f"not a StyleALAE checkpoint of the reference code: no network {name}")
        self.name, self.tensors, self.used = name, nets[name], set()

    def count(self, pattern: str) -> int:
        """How many consecutive i from 0 have `pattern.format(i)` among the tensors."""
        n = 0
        while pattern.format(n) in self.tensors:
            n += 1
        return n

    def take(self, key: str, shape: tuple[int, ...]) -> torch.Tensor:
        if key not in self.tensors:
            raise UserError(f"{self.name}.{key} is missing: not the StyleALAE architecture alae imports")
        value = self.tensors[key]
        if tuple(value.shape) != tuple(shape) or not value.is_floating_point():
            raise UserError(f"{self.name}.{key} has shape {tuple(value.shape)} ({value.dtype}), "
                            f"expected {tuple(shape)}: an architecture alae does not import")
        self.used.add(key)
        return value.detach().float()

    def check_all_used(self) -> None:
        extra = sorted(set(self.tensors) - self.used)
        if extra:
            raise UserError(f"{self.name}.{extra[0]} is not part of the StyleALAE architecture alae imports "
                            f"({len(extra)} such tensors)")


def _shape(nets: dict, name: str, key: str) -> tuple[int, ...]:
    """The shape of tensor `key` of network `name`, refusing a missing one."""
    tensor = _Source(nets, name).tensors.get(key)
    if tensor is None:
        raise UserError(f"{name}.{key} is missing: not the StyleALAE architecture alae imports")
    return tuple(tensor.shape)


def infer_config(nets: dict[str, dict[str, torch.Tensor]]) -> dict:
    """ModelConfig fields of the networks, from their tensors' names and shapes."""
    levels = _Source(nets, "generator").count("decode_block.{}.conv_2.weight")
    if not 1 <= levels <= 9:
        raise UserError(f"generator has {levels} blocks; alae imports StyleALAE with 1 to 9 (4x4 to 1024x1024)")
    top = _shape(nets, "generator", f"decode_block.{levels - 1}.conv_2.weight")
    channels = _shape(nets, "generator", f"to_rgb.{levels - 1}.to_rgb.weight")[0]
    latent_size = _shape(nets, "generator", "decode_block.0.style_1.weight")[1]
    e_last = _shape(nets, "discriminator", f"encode_block.{levels - 1}.conv_2.weight")[0]
    f_layers = _Source(nets, "mapping_fl").count("map_blocks.{}.fc.weight")
    d_layers = _Source(nets, "mapping_tl").count("map_blocks.{}.weight")
    if not f_layers or not d_layers:
        raise UserError("mapping_fl or mapping_tl has no layers: not the StyleALAE architecture alae imports")
    widths = {_shape(nets, "mapping_fl", "map_blocks.0.fc.weight")[0]} if f_layers > 1 else set()
    widths |= {_shape(nets, "mapping_tl", "map_blocks.0.weight")[0]} if d_layers > 1 else set()
    if len(widths) > 1:
        raise UserError(f"F and D have hidden layers of different widths {sorted(widths)}; alae gives both one width")
    width = widths.pop() if widths else latent_size
    return dict(kind="alae", net="style", resolution=4 * 2 ** (levels - 1), channels=channels,
                latent_size=latent_size, start_ch=top[0], max_ch=e_last, f_layers=f_layers, d_layers=d_layers,
                fd_width=0 if width == latent_size else width, **REFERENCE_SETTINGS)


def _put(param: torch.Tensor, value: torch.Tensor) -> None:
    with torch.no_grad():
        param.copy_(value)


def _linear(layer: EqualLinear, src: _Source, prefix: str, outputs: int | None = None, first: int = 0) -> None:
    """An equalized-lr linear layer from the reference's `prefix`.weight / .bias; where the reference
    layer has more `outputs`, its rows from `first` on."""
    n, rows = outputs or layer.out_features, slice(first, first + layer.out_features)
    layer.set_effective(src.take(f"{prefix}.weight", (n, layer.in_features))[rows], src.take(f"{prefix}.bias", (n,))[rows])


def _conv(conv: EqualConv2d, src: _Source, key: str, transposed: bool = False) -> None:
    """An equalized-lr convolution's weight from `key`; a transposed one is swapped and flipped (module docstring)."""
    out_ch, in_ch, k, _ = conv.weight.shape
    if transposed:
        weight = src.take(key, (in_ch, out_ch, k, k)).transpose(0, 1).flip(2, 3)
    else:
        weight = src.take(key, (out_ch, in_ch, k, k))
    _put(conv.weight, weight / conv.weight_scale)


def _channel_bias(src: _Source, key: str, ch: int) -> torch.Tensor:
    return src.take(key, (1, ch, 1, 1)).view(ch)


def _check_blur(src: _Source, key: str, ch: int) -> None:
    """The blur kernels are constants of the architecture: refuse other values."""
    if not torch.allclose(src.take(key, (ch, 1, 3, 3)), Blur(ch).kernel):
        raise UserError(f"{src.name}.{key} is not the [1, 2, 1] blur kernel: an architecture alae does not import")


def _generator(G, src: _Source) -> None:
    for level, block in enumerate(G.blocks):
        pre, ch = f"decode_block.{level}", block.conv_2.weight.shape[0]
        if block.first:
            _put(block.const, src.take("const", tuple(block.const.shape)))
        else:
            _conv(block.conv_1, src, f"{pre}.conv_1.weight", transposed=4 * 2**level >= FUSED_FROM)
        _check_blur(src, f"{pre}.blur.weight", ch)
        _conv(block.conv_2, src, f"{pre}.conv_2.weight")
        for i in range(2):
            _put(block.noise[i].weight, src.take(f"{pre}.noise_weight_{i + 1}", (1, ch, 1, 1)))
            _put(block.bias[i], _channel_bias(src, f"{pre}.bias_{i + 1}", ch))
            _linear(block.style[i], src, f"{pre}.style_{i + 1}")
        _conv(G.to_rgb[level], src, f"to_rgb.{level}.to_rgb.weight")
        _put(G.to_rgb[level].bias, src.take(f"to_rgb.{level}.to_rgb.bias", tuple(G.to_rgb[level].bias.shape)))


def _encoder(E, src: _Source) -> None:
    for level, block in enumerate(E.blocks):
        i = E.levels - 1 - level
        pre, in_ch, out_ch = f"encode_block.{i}", block.conv_1.weight.shape[0], block.conv_2.weight.shape[0]
        _conv(block.conv_1, src, f"{pre}.conv_1.weight")
        _put(block.conv_1.bias, _channel_bias(src, f"{pre}.bias_1", in_ch))
        _check_blur(src, f"{pre}.blur.weight", in_ch)
        _conv(block.conv_2, src, f"{pre}.conv_2.weight")
        _put(block.conv_2.bias, _channel_bias(src, f"{pre}.bias_2", out_ch))
        _linear(block.style_1, src, f"{pre}.style_1")
        _linear(block.style_2, src, f"{pre}.style_2")
        rgb = E.from_rgb[level]
        _conv(rgb, src, f"from_rgb.{i}.from_rgb.weight")
        _put(rgb.bias, src.take(f"from_rgb.{i}.from_rgb.bias", tuple(rgb.bias.shape)))


def _mapping(F, src: _Source) -> None:
    for i, layer in enumerate(F.mlp.layers):
        _linear(layer, src, f"map_blocks.{i}.fc")


def _discriminator(D, src: _Source, latent_size: int) -> None:
    *body, last = D.mlp.layers
    for i, layer in enumerate(body):
        _linear(layer, src, f"map_blocks.{i}")
    _linear(last, src, f"map_blocks.{len(body)}", outputs=2 * latent_size, first=latent_size)


def _w_avg(src: _Source, levels: int, latent_size: int) -> torch.Tensor:
    """The average w: the buffer holds it once per style input, all rows equal."""
    buff = src.take("buff", (2 * levels, latent_size))
    if not torch.equal(buff, buff[:1].expand_as(buff)):
        raise UserError(f"{src.name}.buff has different rows; alae keeps one average w for every style input")
    return buff[0]


def convert(nets: dict[str, dict[str, torch.Tensor]]) -> tuple[dict, dict[str, torch.Tensor]]:
    """(ModelConfig fields, ALAE state dict) of the authors' StyleALAE networks `nets`.

    Raises a UserError naming the first tensor that is missing, misshapen or left over.
    """
    fields = infer_config(nets)
    model = ALAE(ModelConfig(**fields))
    sources = {name: _Source(nets, name) for name in ("generator", "discriminator", "mapping_fl", "mapping_tl",
                                                       "dlatent_avg")}
    _generator(model.G, sources["generator"])
    _encoder(model.E, sources["discriminator"])
    _mapping(model.F, sources["mapping_fl"])
    _discriminator(model.D, sources["mapping_tl"], fields["latent_size"])
    _put(model.w_avg, _w_avg(sources["dlatent_avg"], model.G.levels, fields["latent_size"]))
    for src in sources.values():
        src.check_all_used()
    return fields, model.state_dict()
