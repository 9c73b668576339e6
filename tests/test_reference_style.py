"""The authors' StyleALAE checkpoints convert to F, G, E, D that give the outputs their code computes.

tests/data/reference holds `style-gray32` and `style-rgb64` (copies of ../shared/reference):
checkpoints written by the authors' training code with random, perturbed weights, the inputs
and outputs their code computes from them (`*.expected.npz`, images in [-1, 1]) and the
architecture they were built with (`*.json`). The expected outputs come from the EMA (`_s`)
networks. Every array is checked at the top level fully grown and at level 1 half faded in,
within a relative error of 1e-4 (max abs difference over max(1, max abs value)).
"""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf

from alae.config import ModelConfig
from alae.errors import UserError
from alae.model import ALAE
from alae.nets.style import block_channels
from alae.nn import upsample
from alae.reference import style
from alae.reference.synthetic import synthetic_reference

DATA = Path(__file__).parent / "data" / "reference"
FIXTURES = ["style-gray32", "style-rgb64"]
TOLERANCE = 1e-4


def relative_error(ours: torch.Tensor, theirs: np.ndarray) -> float:
    theirs = torch.from_numpy(np.asarray(theirs))
    return float((ours.double() - theirs).abs().max() / max(1.0, float(theirs.abs().max())))


def reference_nets(name: str) -> dict[str, dict[str, torch.Tensor]]:
    """The EMA networks of a fixture under their plain names, with dlatent_avg, as the importer hands them over."""
    models = torch.load(DATA / f"{name}.pth", map_location="cpu", weights_only=True)["models"]
    return {k[:-2]: v for k, v in models.items() if k.endswith("_s")} | {"dlatent_avg": models["dlatent_avg"]}


def imported(nets) -> ALAE:
    fields, state = style.convert(nets)
    model = ALAE(ModelConfig(**fields))
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module", params=FIXTURES)
def fixture(request):
    name = request.param
    return name, imported(reference_nets(name)), dict(np.load(DATA / f"{name}.expected.npz"))


def stage_key(expected: dict, stage: str) -> tuple[str, int, float]:
    """The npz prefix, level and blend of the fixture's top level fully grown ("top") or of level 1 half faded ("fade")."""
    stages = sorted({k.split("/")[0] for k in expected if "/" in k})
    key = max(stages) if stage == "top" else "lod1_blend0.5"
    level, blend = key[3:].split("_blend")
    return key, int(level), float(blend)


def test_the_architecture_is_inferred_from_the_tensors(fixture):
    name, model, _ = fixture
    arch = json.loads((DATA / f"{name}.json").read_text())
    cfg = model.cfg
    assert (cfg.net, cfg.levels, cfg.latent_size, cfg.channels) == ("style", arch["layer_count"], arch["latent_size"],
                                                                     arch["channels"])
    assert (cfg.f_layers, cfg.d_layers, cfg.d_nonlinear) == (arch["mapping_layers"], 3, False)
    # the same feature maps in G and E as the reference's startf / maxf rule
    assert block_channels(cfg.levels, cfg.start_ch, cfg.max_ch) == block_channels(cfg.levels, arch["startf"], arch["maxf"])
    assert cfg.max_ch == min(arch["maxf"], arch["startf"] * 2 ** arch["layer_count"])


@pytest.mark.parametrize("stage", ["top", "fade"])
def test_F_G_E_D_give_the_reference_outputs(fixture, stage):
    name, model, expected = fixture
    key, level, blend = stage_key(expected, stage)
    model.grow(level, blend)
    got = {
        "w_of_z": model.map(torch.from_numpy(expected["z"]).float()),
        "g_of_w": model.decode(torch.from_numpy(expected[f"{key}/w_of_z"]).float(), noise=False, clip=False),
        "e_of_x": model.encode((torch.from_numpy(expected[f"{key}/x"]).float() + 1) / 2),
        "d_of_e_of_x": model.D(torch.from_numpy(expected[f"{key}/e_of_x"]).float()),
    }
    want = {k: expected[f"{key}/{k}"] for k in got} | {"g_of_w": (expected[f"{key}/g_of_w"] + 1) / 2}
    errors = {k: relative_error(got[k], want[k]) for k in got}
    assert max(errors.values()) < TOLERANCE, (name, key, errors)


def test_truncation_gives_the_reference_image(fixture):
    """The authors' `generate` first moves dlatent_avg toward the batch's mean F(z) by 1 - beta,
    then truncates: the fixture's dlatent_avg and g_truncated are from after that step."""
    name, model, expected = fixture
    model = copy.deepcopy(model)
    key, level, blend = stage_key(expected, "top")
    model.grow(level, blend)
    nets = reference_nets(name)
    assert torch.equal(model.w_avg, nets["dlatent_avg"]["buff"][0])
    model.w_avg.lerp_(model.F(torch.from_numpy(expected["z"]).float()).mean(0), 1 - model.cfg.w_avg_beta)
    assert relative_error(model.w_avg, expected["dlatent_avg"]) < TOLERANCE
    w = torch.from_numpy(expected[f"{key}/w_of_z"]).float()
    image = model.decode(model.truncate(w, 0.7), noise=False, clip=False)
    assert relative_error(image, (expected[f"{key}/g_truncated"] + 1) / 2) < TOLERANCE


def test_matches_tells_style_networks_from_others():
    assert style.matches(reference_nets("style-gray32"))
    assert not style.matches({"generator": {"fc_1.weight": torch.zeros(1024, 50)},
                              "discriminator": {"fc_1.weight": torch.zeros(1024, 784)}})


def _refusal(nets) -> str:
    with pytest.raises(UserError) as error:
        style.convert(nets)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_tensor_of_a_wrong_shape_is_refused_with_one_line():
    nets = reference_nets("style-gray32")
    nets["generator"]["decode_block.1.conv_2.weight"] = torch.zeros(64, 32, 3, 3)
    assert "decode_block.1.conv_2.weight has shape (64, 32, 3, 3)" in _refusal(nets)


def test_a_missing_block_is_refused_with_one_line():
    nets = reference_nets("style-gray32")
    nets["discriminator"] = {k: v for k, v in nets["discriminator"].items() if not k.startswith("encode_block.3.")}
    assert "encode_block.3" in _refusal(nets) and "missing" in _refusal(nets)


def test_a_missing_network_is_refused_with_one_line():
    nets = reference_nets("style-gray32")
    del nets["mapping_tl"]
    assert "mapping_tl" in _refusal(nets)


@pytest.mark.parametrize("change", ["extra", "one_output_D", "blur", "w_avg_rows"])
def test_other_architectures_are_refused_with_one_line(change):
    nets = reference_nets("style-gray32")
    if change == "extra":  # the authors' EncoderWithFC has a linear head on E
        nets["discriminator"]["fc2.weight"] = torch.zeros(1, 64)
    elif change == "one_output_D":  # MappingDNoStyle: D of latent_size outputs
        nets["mapping_tl"]["map_blocks.2.weight"] = torch.zeros(32, 32)
    elif change == "blur":
        nets["generator"]["decode_block.1.blur.weight"] = torch.ones(64, 1, 3, 3) / 9
    else:
        nets["dlatent_avg"]["buff"] = torch.randn(8, 32)
    _refusal(nets)


@pytest.mark.parametrize("name", FIXTURES)
def test_the_synthetic_layout_is_the_authors(name):
    arch = json.loads((DATA / f"{name}.json").read_text())
    ours = synthetic_reference(arch["layer_count"], arch["startf"], arch["maxf"], arch["latent_size"],
                               arch["channels"], arch["mapping_layers"])
    theirs = reference_nets(name)
    assert {n: {k: tuple(v.shape) for k, v in net.items()} for n, net in ours.items()} == \
           {n: {k: tuple(v.shape) for k, v in net.items()} for n, net in theirs.items()}


def test_fused_upscaling_at_128_converts_to_the_same_function():
    """At 128x128 and above the authors' G upsamples by a transposed stride-2 convolution whose
    4x4 kernel sums the four placements of the stored 3x3 one; below, it upsamples then convolves."""
    nets = synthetic_reference(levels=6, startf=2, maxf=4, latent=4, channels=3, mapping_layers=2)
    model = imported(nets)
    x = torch.randn(2, 4, 32, 32)
    stored = nets["generator"]["decode_block.5.conv_1.weight"]
    kernel = nnf.avg_pool2d(nnf.pad(stored, (1, 1, 1, 1)), 2, stride=1) * 4
    theirs = nnf.conv_transpose2d(x, kernel, stride=2, padding=1)
    assert torch.allclose(model.G.blocks[5].conv_1.up(x), theirs, atol=1e-6)
    below = nets["generator"]["decode_block.4.conv_1.weight"]
    x = torch.randn(2, 4, 16, 16)
    assert torch.allclose(model.G.blocks[4].conv_1.up(x), nnf.conv2d(upsample(x), below, padding=1), atol=1e-6)
    assert model.decode(torch.randn(1, 4), noise=False).shape == (1, 3, 128, 128)
