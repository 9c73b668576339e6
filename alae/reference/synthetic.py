"""Random networks in the authors' StyleALAE layout, as their checkpoints hold them: a stand-in
for a published checkpoint where none can be downloaded (bench/import_cpu.py writes one of the
FFHQ architecture; the tests check the layout against the authors' own fixtures)."""

import torch

from ..nets.style import block_channels


def synthetic_reference(levels: int, startf: int, maxf: int, latent: int, channels: int, mapping_layers: int,
                        seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Random networks in the authors' StyleALAE layout (names and shapes as their code makes them)."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return 0.1 * torch.randn(*shape, generator=gen)

    def blur(c: int) -> torch.Tensor:
        k = torch.tensor([1.0, 2.0, 1.0])
        return (k[:, None] * k / 16).expand(c, 1, 3, 3).clone()

    ch = block_channels(levels, startf, maxf)
    G = {"const": rand(1, ch[0], 4, 4)}
    E = {}
    for level in range(levels):
        c, pre = ch[level], f"decode_block.{level}"
        if level:
            fused = 4 * 2**level >= 128  # a transposed convolution's weight: [in, out, 3, 3]
            G[f"{pre}.conv_1.weight"] = rand(ch[level - 1], c, 3, 3) if fused else rand(c, ch[level - 1], 3, 3)
        G |= {f"{pre}.conv_2.weight": rand(c, c, 3, 3), f"{pre}.blur.weight": blur(c)}
        for i in (1, 2):
            G |= {f"{pre}.noise_weight_{i}": rand(1, c, 1, 1), f"{pre}.bias_{i}": rand(1, c, 1, 1),
                  f"{pre}.style_{i}.weight": rand(2 * c, latent), f"{pre}.style_{i}.bias": rand(2 * c)}
        G |= {f"to_rgb.{level}.to_rgb.weight": rand(channels, c, 1, 1), f"to_rgb.{level}.to_rgb.bias": rand(channels)}
        i, out = levels - 1 - level, min(maxf, 2 * c)
        pre = f"encode_block.{i}"
        E |= {f"from_rgb.{i}.from_rgb.weight": rand(c, channels, 1, 1), f"from_rgb.{i}.from_rgb.bias": rand(c),
              f"{pre}.conv_1.weight": rand(c, c, 3, 3), f"{pre}.bias_1": rand(1, c, 1, 1), f"{pre}.blur.weight": blur(c),
              f"{pre}.conv_2.weight": rand(out, c, 3, 3), f"{pre}.bias_2": rand(1, out, 1, 1),
              f"{pre}.style_1.weight": rand(latent, 2 * c), f"{pre}.style_1.bias": rand(latent),
              f"{pre}.style_2.weight": rand(latent, 2 * out), f"{pre}.style_2.bias": rand(latent)}
    F = {f"map_blocks.{i}.fc.{p}": rand(latent, latent) if p == "weight" else rand(latent)
         for i in range(mapping_layers) for p in ("weight", "bias")}
    D = {f"map_blocks.{i}.weight": rand(latent * (2 if i == 2 else 1), latent) for i in range(3)}
    D |= {f"map_blocks.{i}.bias": rand(latent * (2 if i == 2 else 1)) for i in range(3)}
    return {"generator": G, "discriminator": E, "mapping_fl": F, "mapping_tl": D,
            "dlatent_avg": {"buff": rand(1, latent).expand(2 * levels, latent).clone()}}
