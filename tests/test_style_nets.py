"""StyleALAE networks: shapes at every level and blend, fade-in, mirrored style counts, the
reference's initial scales. tests/test_reference_style.py checks them against the authors' outputs."""

import pytest
import torch

from alae.nets.style import EncoderE, GeneratorG, block_channels
from alae.nn import downsample, upsample

LEVELS, LATENT = 4, 16


@pytest.fixture
def nets():
    torch.manual_seed(0)
    return (GeneratorG(LEVELS, LATENT, start_ch=4, max_ch=16, channels=3),
            EncoderE(LEVELS, LATENT, start_ch=4, max_ch=16, channels=3))


def test_block_channels_follow_the_reference_rule():
    assert block_channels(4, 64, 256) == [256, 256, 128, 64]          # MNIST 32x32
    assert block_channels(9, 16, 512) == [512, 512, 512, 512, 256, 128, 64, 32, 16]  # FFHQ 1024


@pytest.mark.parametrize("level", range(LEVELS))
@pytest.mark.parametrize("blend", [0.0, 0.3, 1.0])
def test_shapes_at_every_level_and_blend(nets, level, blend):
    G, E = nets
    ws = torch.randn(2, G.num_styles, LATENT)
    x = G(ws, level, blend)
    assert x.shape == (2, 3, 4 * 2**level, 4 * 2**level)
    assert E(x, level, blend).shape == (2, LATENT)


@pytest.mark.parametrize("level", range(1, LEVELS))
def test_at_blend_zero_the_new_level_adds_nothing(nets, level):
    G, E = nets
    ws = torch.randn(2, G.num_styles, LATENT)
    assert torch.allclose(G(ws, level, 0.0, noise=False), upsample(G(ws, level - 1, 1.0, noise=False)), atol=1e-6)
    x = torch.randn(2, 3, 4 * 2**level, 4 * 2**level)
    assert torch.allclose(E(x, level, 0.0), E(downsample(x), level - 1, 1.0), atol=1e-5)
    assert not torch.allclose(G(ws, level, 0.5, noise=False), G(ws, level, 0.0, noise=False))


def test_encoder_blocks_all_downsample_and_the_4x4_one_may_be_wider(nets):
    """E's 4x4 block is a convolutional block like the others (no dense layer), ending at 2x2 with
    min(max_ch, 2 * ch) feature maps whose instance-norm statistics are its second style."""
    _, E = nets
    ch = block_channels(LEVELS, 4, 16)
    for level, block in enumerate(E.blocks):
        h, w = block(torch.randn(2, ch[level], 4 * 2**level, 4 * 2**level))
        assert h.shape == (2, min(16, 2 * ch[level]), 2 * 2**level, 2 * 2**level) and w.shape == (2, LATENT)
    assert not any("dense" in n for n, _ in E.named_modules())


def test_a_new_generator_draws_near_grey_images_and_E_projects_styles_with_he_gain(nets):
    """The reference initialises to-RGB with gain 0.03 (so a new G's images sit near 0, mid-grey in
    [-1, 1]) and E's style projections with the default gain sqrt(2)."""
    G, E = nets
    for level in range(LEVELS):
        rgb = G.to_rgb[level]
        assert rgb.weight_scale * rgb.weight.std().item() == pytest.approx(0.03 / rgb.weight.shape[1] ** 0.5, rel=0.5)
        assert G(torch.randn(64, LATENT), level, noise=False).std() < 0.1
    for block in E.blocks:
        for layer in (block.style_1, block.style_2):
            assert layer.weight_scale == pytest.approx(2**0.5 / layer.in_features**0.5)


def test_encoder_and_generator_styles_line_up(nets):
    G, E = nets
    assert E.num_styles == G.num_styles == 2 * LEVELS
    e_maps = [n for n, _ in E.named_modules() if n.split(".")[-1] in ("style_1", "style_2")]
    g_maps = [n for n, _ in G.named_modules() if n.split(".")[-2:-1] == ["style"]]
    assert len(e_maps) == len(g_maps) == 2 * LEVELS


def test_each_style_input_reaches_the_output(nets):
    G, _ = nets
    ws = torch.randn(1, G.num_styles, LATENT)
    base = G(ws, LEVELS - 1, noise=False)
    for i in range(G.num_styles):
        changed = ws.clone()
        changed[:, i] += 1.0
        assert not torch.allclose(G(changed, LEVELS - 1, noise=False), base), i


def test_encoder_refuses_wrong_resolution(nets):
    from alae.errors import UserError
    with pytest.raises(UserError, match=r"level 2 takes images \[N, 3, 16, 16\]"):
        nets[1](torch.randn(1, 3, 32, 32), 2)
