"""The reference code's MLP ALAE of the MNIST experiment (section 7.1; commit "Ref" of its MNIST
branch) onto `alae.nets.mlp`.

Its networks: E (`EncoderFC`: fc_1, fc_2, fc_3), G (`GeneratorFC`: the same names), F
(`MappingFromLatent`: map_blocks.K.fc) and D (`MappingToLatentNoStyle`: map_blocks.K, no
activation between layers, the logit its first output). Its equalized-lr layers store the
effective weight (weight already multiplied by gain / sqrt(fan_in) times lrmul; their
Adam scales its step instead); alae stores weight / that scale and bias / lrmul.
What the tensors cannot say is the reference code's: F's and D's lr multiplier 0.1,
leaky ReLU 0.01 after E's output and G's hidden layers.
"""

from __future__ import annotations

import torch

from ..config import ModelConfig
from ..errors import UserError
from ..model import ALAE

REFERENCE = {"e_out_slope": 0.01, "g_slope": 0.01, "d_nonlinear": False, "f_lrmul": 0.1, "d_lrmul": 0.1}
UNUSED = {"bn_2.running_mean", "bn_2.running_var", "bn_2.num_batches_tracked"}  # a batch norm its forward skips
PIXELS = 28 * 28


def matches(nets: dict[str, dict[str, torch.Tensor]]) -> bool:
    return all("fc_1.weight" in nets[name] for name in ("discriminator", "generator"))


def _chain(net: str, state: dict[str, torch.Tensor], pattern: str,
           first: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, bias) of the layers named by `pattern` formatted with first, first + 1, ...; refuses other tensors."""
    layers = []
    while pattern.format(first + len(layers)) + ".weight" in state:
        name = pattern.format(first + len(layers))
        if name + ".bias" not in state:
            raise UserError(f"{net}.{name} has a weight and no bias: not the reference MLP architecture")
        layers.append((state[name + ".weight"], state[name + ".bias"]))
    names = {pattern.format(first + i) + suffix for i in range(len(layers)) for suffix in (".weight", ".bias")}
    extra = sorted(set(state) - names - UNUSED)
    if not layers or extra:
        raise UserError(f"{net} is not the reference MLP architecture (unexpected tensors: {', '.join(extra[:3]) or 'none'}; "
                        f"layers: {len(layers)})")
    return layers


def _sizes(net: str, layers) -> list[int]:
    """[in, hidden..., out] of a chain, checking each layer's input against the previous output."""
    sizes = [layers[0][0].shape[1]]
    for i, (weight, bias) in enumerate(layers):
        if weight.dim() != 2 or weight.shape[1] != sizes[-1] or bias.shape != weight.shape[:1]:
            raise UserError(f"{net} layer {i} has shapes {tuple(weight.shape)}, {tuple(bias.shape)}: "
                            f"not the reference MLP architecture")
        sizes.append(weight.shape[0])
    return sizes


def convert(nets: dict[str, dict[str, torch.Tensor]]) -> tuple[dict, dict[str, torch.Tensor]]:
    """(ModelConfig fields, ALAE state dict) of the reference MLP networks `nets`."""
    chains = {"E": _chain("discriminator", nets["discriminator"], "fc_{}", 1),
              "G": _chain("generator", nets["generator"], "fc_{}", 1),
              "F": _chain("mapping_fl", nets["mapping_fl"], "map_blocks.{}.fc"),
              "D": _chain("mapping_tl", nets["mapping_tl"], "map_blocks.{}")}
    sizes = {name: _sizes(name, layers) for name, layers in chains.items()}
    latent, hidden = sizes["G"][0], sizes["G"][1]
    width = sizes["F"][1] if len(chains["F"]) > 1 else latent
    expected = {"E": [PIXELS, hidden, hidden, latent], "G": [latent, hidden, hidden, PIXELS],
                "F": [latent] + [width] * (len(chains["F"]) - 1) + [latent],
                "D": [latent] + [width] * (len(chains["D"]) - 1)}
    for name, want in expected.items():
        got = sizes[name][:len(want)] if name == "D" else sizes[name]
        if got != want:
            raise UserError(f"network {name} has layer sizes {sizes[name]}, expected {want}: "
                            f"not the reference MLP architecture")
    fields = {"kind": "alae", "net": "mlp", "latent_size": latent, "hidden": hidden, "f_layers": len(chains["F"]),
              "d_layers": len(chains["D"]), "fd_width": 0 if width == latent else width, **REFERENCE}
    model = ALAE(ModelConfig(**fields))
    with torch.no_grad():
        for name, layers in chains.items():
            for i, (layer, (weight, bias)) in enumerate(zip(getattr(model, name).mlp.layers, layers)):
                if name == "D" and i == len(layers) - 1:  # the logit is D's first output
                    weight, bias = weight[:1], bias[:1]
                layer.set_effective(weight, bias)
        if "dlatent_avg" in nets:
            model.w_avg.copy_(nets["dlatent_avg"]["buff"][0])
    return fields, model.state_dict()

