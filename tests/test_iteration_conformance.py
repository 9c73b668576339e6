"""One training iteration equals the authors' (Algorithm 1, section 5): same losses, gradients, average w.

tests/data/reference/NAME.step.npz (copies of ../shared/reference, whose README says how they
were made) holds, for checkpoint NAME.pth, one iteration of the authors' StyleALAE code run
from the checkpoint's live networks: real images x (blended during a fade), every random draw
their code made (z, the second z and the crossover of style mixing, every noise input), and
for each of the three steps the loss, the gradient of every parameter the step's optimizers
hold and the average w after the step. Each step starts from the checkpoint. Cases are read
from the file (`lod{L}_blend{B}_mix{M}`), the architecture from the checkpoint.

This project's steps (`losses.d_step`, `g_step`, `ae_step`) are fed the same x and, through
`alae.draws`, the same draws; an optimizer with learning rate 0 leaves the gradients in place.
Ours run in float64, the exact function the float32 fixtures round: a float32 run of ours
can round a near-zero leaky-ReLU input onto the other branch as well (style-rgb64's step g
at the top level with mixing: ours in float32 is 2e-3 from ours in float64, the reference
within 1e-4 of it).
Gradients are compared in the reference's parametrization, d loss / d effective weight (the
weight as the layer applies it; `alae.nn` stores weight / its equalized-lr scale, so ours are
divided by that scale), each tensor within a relative error of 1e-4 as the fixtures' README
defines it (max abs difference over max(1, max abs value)).

A leaky ReLU's input can be a tie: smaller than float32 can resolve beside the largest
value of its tensor (2^-22 of it), its sign set by rounding order alone, so that the two
codes may take different branches there and every gradient behind it moves by up to 1e-3
(style-gray32, level 1 half faded in, step g without mixing: one from-RGB unit of E at
1.3e-7 beside 13.9). Where a case differs and has ties (at most MAX_TIES), each tie in turn
is put on the other branch, and the change that makes to each gradient is added to that
gradient's tolerance: whichever branches the reference's rounding took, ours must then agree.
"""

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from alae import draws
from alae.config import ModelConfig
from alae.losses import ae_step, d_step, g_step
from alae.model import ALAE
from alae.nn import fade_in
from alae.reference import copies, read, style

DATA = Path(__file__).parent / "data" / "reference"
FIXTURES = sorted(p.name[:-len(".step.npz")] for p in DATA.glob("*.step.npz"))
TOLERANCE = 1e-4
TIE = 2.0**-22  # a leaky ReLU input below this fraction of its tensor's largest has a rounding-set sign
MAX_TIES = 16
LEAKY_RELU = torch.nn.functional.leaky_relu
R1_GAMMA = 10.0  # the reference's d loss: ... + 5 ||grad_x D(E(x))||^2
UNLEARNED = ("blur.weight", "buff")  # tensors of the checkpoint that no optimizer holds
HELD = {"d": "ED", "g": "FG", "ae": "EDFG"}  # the networks each step's optimizers hold
REFERENCE_NAMES = {"E": "discriminator", "D": "mapping_tl", "G": "generator", "F": "mapping_fl"}


class Recorded(draws.Draws):
    """The draws the authors' code made in one step, handed out in the order it made them."""

    def __init__(self, arrays: dict[str, np.ndarray], prefix: str, cutoff: int):
        keys = sorted(k for k in arrays if k.startswith(prefix + "draw/"))
        self.queue = {"z": [], "z2": [], "noise": []}
        for key in keys:
            name = key[len(prefix + "draw/"):].split("_", 1)[1]
            self.queue[name.split("/")[0]].append((name, torch.from_numpy(arrays[key])))
        self.cutoff = cutoff

    def _next(self, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
        assert self.queue[kind], f"our step draws a {kind} more than the reference did"
        name, value = self.queue[kind].pop(0)
        assert tuple(value.shape) == tuple(shape), f"{name}: reference drew {tuple(value.shape)}, we {tuple(shape)}"
        return value.to(torch.float64)

    def z(self, n, latent_size):
        return self._next("z", (n, latent_size))

    def mixes(self, prob):
        return self.cutoff >= 0

    def z2(self, z):
        return self._next("z2", tuple(z.shape))

    def crossover(self, styles_now):
        assert 1 <= self.cutoff <= styles_now
        return self.cutoff

    def noise(self, x, shared):
        return self._next("noise", (1 if shared else x.shape[0], 1, x.shape[2], x.shape[3]))

    def all_used(self) -> bool:
        return not any(self.queue.values())


class TieBreaker:
    """torch's leaky ReLU (every network's: F, G, E), recording its ties (call number, element)
    and putting the elements of `flips` on the branch other than their sign's."""

    def __init__(self, flips=()):
        self.flips, self.ties, self.calls = set(flips), [], 0

    def __call__(self, x: torch.Tensor, negative_slope: float = 0.01, inplace: bool = False) -> torch.Tensor:
        call, self.calls = self.calls, self.calls + 1
        size = x.detach().abs()
        self.ties += [(call, i) for i in (size < TIE * size.max()).flatten().nonzero().flatten().tolist()]
        y = LEAKY_RELU(x, negative_slope)
        flipped = [i for c, i in self.flips if c == call]
        if not flipped:
            return y
        mask = torch.zeros(x.numel(), dtype=torch.bool)
        mask[flipped] = True
        return torch.where(mask.view_as(x), torch.where(x > 0, x * negative_slope, x), y)


def cases(arrays: dict) -> list[tuple[str, int, float, bool]]:
    """(prefix, level, blend, mixing) of every case of a fixture."""
    found = (re.fullmatch(r"lod(\d+)_blend([\d.]+)_mix([01])", name) for name in {k.split("/")[0] for k in arrays})
    return sorted((m.group(0), int(m.group(1)), float(m.group(2)), m.group(3) == "1") for m in found if m)


def live_networks(name: str) -> dict[str, dict[str, torch.Tensor]]:
    return copies(read(DATA / f"{name}.pth"))[0]


def shaped_like(nets: dict, value_of) -> dict:
    """`nets` with every learned tensor replaced by value_of(network, key, tensor); the fixed ones kept."""
    return {net: {k: t if k.endswith(UNLEARNED) else value_of(net, k, t) for k, t in tensors.items()}
            for net, tensors in nets.items()}


def model_from(nets: dict, level: int, blend: float) -> ALAE:
    fields, state = style.convert(nets)
    model = ALAE(ModelConfig(**fields))
    model.load_state_dict(state)
    model.grow(level, blend)
    return model.double()


def run_step(step: str, model: ALAE, arrays: dict, prefix: str) -> tuple[float, Recorded]:
    """Our step `step` on the case's x and draws; returns its loss, gradients left on the parameters."""
    cutoff = int(arrays.get(prefix + "mixing_cutoff", -1))
    recorded = Recorded(arrays, prefix, cutoff)
    opt = torch.optim.SGD([p for net in HELD[step] for p in getattr(model, net).parameters()], lr=0.0)
    x = torch.from_numpy(arrays[prefix.rsplit("/", 2)[0] + "/x"]).double()
    latent = model.cfg.latent_size
    with draws.using(recorded):
        z = recorded.z(x.shape[0], latent)
        if step == "d":
            stats = d_step(model, opt, x, z, R1_GAMMA)
            loss = stats["loss_d"] + 0.5 * R1_GAMMA * stats["r1"]
        elif step == "g":
            loss = g_step(model, opt, z)["loss_g"]
        else:
            loss = ae_step(model, opt, opt, z, trains_F=True)["loss_ae"]
    return float(loss), recorded


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """The fixtures' measure: max abs difference over max(1, max abs value)."""
    return float((ours.double() - theirs.double()).abs().max()) / max(1.0, float(theirs.abs().max()))


@pytest.fixture(scope="module", params=FIXTURES)
def fixture(request):
    name = request.param
    return name, live_networks(name), dict(np.load(DATA / f"{name}.step.npz"))


def test_the_fixtures_are_the_recorded_files():
    assert FIXTURES, "no *.step.npz under tests/data/reference"
    sums = dict(line.split()[::-1] for line in (DATA / "SHA256SUMS").read_text().splitlines())
    for name in FIXTURES:
        for suffix in (".pth", ".step.npz"):
            path = DATA / (name + suffix)
            assert hashlib.sha256(path.read_bytes()).hexdigest() == sums[path.name], f"{path} differs from its checksum"


def test_real_images_fade_in_as_the_reference_blends_them(fixture):
    _, _, arrays = fixture
    for prefix, _, blend, _ in cases(arrays):
        x = fade_in(torch.from_numpy(arrays[prefix + "/x_orig"]), blend)
        assert relative_error(x, torch.from_numpy(arrays[prefix + "/x"])) < 1e-6


def our_gradients(step, nets, arrays, case, level, blend, inverse_scale, flips=()):
    """Our step on the case with `flips` (`TieBreaker`): its loss, draws, ties, model, and the
    gradient of each tensor the step updates as d loss / d effective weight (ours times 1 / scale)."""
    breaker = TieBreaker(flips)
    model = model_from(nets, level, blend)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.functional, "leaky_relu", breaker)
        loss, recorded = run_step(step, model, arrays, f"{case}/{step}/")
    held = tuple(f"{net}." for net in HELD[step])
    grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p)) * inverse_scale[k]
             for k, p in model.named_parameters() if k.startswith(held)}
    return loss, recorded, breaker.ties, model, grads


def reference_gradients(step, nets, arrays, case, inverse_scale, keys) -> dict[str, torch.Tensor]:
    """The reference's gradients of our tensors `keys` (converted, divided by 1 / scale: d loss /
    d effective weight), after checking that the conversion leaves out no gradient (D's unused outputs)."""
    prefix = f"{case}/{step}/"

    def stored(net, key, tensor):
        value = arrays.get(f"{prefix}grad/{net}.{key}")
        return torch.zeros_like(tensor) if value is None else torch.from_numpy(value)

    converted = dict(style.convert(shaped_like(nets, stored))[1])
    theirs = {k: converted[k].double() / inverse_scale[k] for k in keys}
    energy = sum(float(torch.from_numpy(arrays[f"{prefix}grad/{REFERENCE_NAMES[n]}.{k}"]).double().pow(2).sum())
                 for n in HELD[step] for k in nets[REFERENCE_NAMES[n]] if not k.endswith(UNLEARNED))
    assert sum(float(t.pow(2).sum()) for t in theirs.values()) == pytest.approx(energy, rel=1e-6)
    return theirs


@pytest.mark.parametrize("step", ["d", "g", "ae"])
def test_each_step_gives_the_reference_loss_gradients_and_average_w(fixture, step):
    name, nets, arrays = fixture
    assert {mix for *_, mix in cases(arrays)} == {False, True}, "the fixture must hold a case with style mixing"
    assert len({level for _, level, _, _ in cases(arrays)}) >= 2
    # the conversion of a state dict divides each tensor by one scale: converting ones gives 1 / scale
    inverse_scale = dict(style.convert(shaped_like(nets, lambda n, k, t: torch.ones_like(t)))[1])
    for case, level, blend, _ in cases(arrays):
        prefix, where = f"{case}/{step}/", f"{name} {case} step {step}"
        loss, recorded, ties, model, ours = our_gradients(step, nets, arrays, case, level, blend, inverse_scale)
        theirs = reference_gradients(step, nets, arrays, case, inverse_scale, ours)
        expected_loss = float(arrays[prefix + "loss"])
        assert abs(loss - expected_loss) <= TOLERANCE * abs(expected_loss), where
        assert recorded.all_used(), f"{where}: the reference drew more than we did"
        w_avg = torch.from_numpy(arrays[prefix + "dlatent_avg_after"])
        assert relative_error(model.w_avg, w_avg) < TOLERANCE, f"{where}: average w"
        errors = {k: relative_error(ours[k], theirs[k]) for k in ours}
        allowed = dict.fromkeys(ours, TOLERANCE)
        if max(errors.values()) >= TOLERANCE and len(ties) <= MAX_TIES:
            for tie in ties:  # what the other branch at each tie changes
                flipped = our_gradients(step, nets, arrays, case, level, blend, inverse_scale, [tie])[4]
                for k in ours:
                    allowed[k] += float((flipped[k] - ours[k]).abs().max()) / max(1.0, float(theirs[k].abs().max()))
        bad = sorted((errors[k] / allowed[k], k) for k in ours if errors[k] >= allowed[k])
        assert not bad, (f"{where}: gradient of {bad[-1][1]} differs by {errors[bad[-1][1]]:.2e}, allowed "
                         f"{allowed[bad[-1][1]]:.2e} ({len(ties)} ties); {len(bad)} tensors differ")
