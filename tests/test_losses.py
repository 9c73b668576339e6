"""Algorithm 1: each step moves its own networks only; R1 equals its closed form."""

import math

import pytest
import torch
from torch import nn

from alae.losses import ae_step, d_step, g_step, pixel_step, r1_penalty
from tests.helpers import Recorder


def snapshot(model):
    return {name: {k: v.detach().clone() for k, v in getattr(model, name).state_dict().items()} for name in "FGED"}


def moved(model, before):
    return {name for name in "FGED"
            if any(not torch.equal(getattr(model, name).state_dict()[k], v) for k, v in before[name].items())}


def optimizers(model):
    adam = dict(lr=1e-3, betas=(0.0, 0.99))
    return (torch.optim.Adam([*model.E.parameters(), *model.D.parameters()], **adam),
            torch.optim.Adam([*model.F.parameters(), *model.G.parameters()], **adam))


@pytest.mark.parametrize("step,expected", [("d", {"E", "D"}), ("g", {"F", "G"}), ("ae", {"E", "G"}), ("ae_F", {"E", "G", "F"})])
def test_each_step_moves_only_its_networks(tiny_model, step, expected):
    opt_ED, opt_FG = optimizers(tiny_model)
    x, z = torch.rand(8, 1, 28, 28), torch.randn(8, 8)
    # warm both optimizers up so that Adam state exists for every network, then check one step
    d_step(tiny_model, opt_ED, x, z, 10.0)
    g_step(tiny_model, opt_FG, z)
    before = snapshot(tiny_model)
    if step == "d":
        stats = d_step(tiny_model, opt_ED, x, z, 10.0)
    elif step == "g":
        stats = g_step(tiny_model, opt_FG, z)
    else:
        stats = ae_step(tiny_model, opt_ED, opt_FG, z, trains_F=step == "ae_F")
    assert moved(tiny_model, before) == expected
    assert all(torch.isfinite(torch.as_tensor(v)) for v in stats.values())
    assert all(p.requires_grad for p in tiny_model.parameters())


def test_pixel_step_moves_encoder_and_generator(tiny_cfg):
    from alae.model import ALAE
    model = ALAE(tiny_cfg("mnist-ae-l1").model)
    assert model.F is None and model.D is None
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pixel_step(model, opt, torch.rand(8, 1, 28, 28), "l1")
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items() if k.endswith("weight"))


def test_r1_matches_closed_form_for_linear_discriminator():
    torch.manual_seed(0)
    E, D = nn.Linear(6, 3, bias=True), nn.Linear(3, 1, bias=True)
    x = torch.randn(5, 6, requires_grad=True)
    logits = D(E(x)).squeeze(1)
    # D(E(x)) = v.(A x + b) + c, so grad_x = A^T v for every sample
    expected = (E.weight.T @ D.weight.T).pow(2).sum()
    assert torch.allclose(r1_penalty(logits, x), expected.expand(5), rtol=1e-6)


def test_d_step_loss_is_softplus_terms_plus_half_gamma_r1(tiny_model):
    opt_ED, _ = optimizers(tiny_model)
    x, z = torch.rand(8, 1, 28, 28), torch.randn(8, 8)
    with torch.no_grad():
        fake_logits = tiny_model.D(tiny_model.E(tiny_model.G(tiny_model.F(z))))
        real_logits = tiny_model.D(tiny_model.E(x))
    expected = (nn.functional.softplus(fake_logits) + nn.functional.softplus(-real_logits)).mean().item()
    stats = d_step(tiny_model, opt_ED, x, z, 10.0)
    assert stats["loss_d"] == pytest.approx(expected, rel=1e-5)
    assert stats["r1"] > 0


def test_linear_discriminator_option_makes_D_affine_in_w(tiny_cfg):
    from alae.model import ALAE
    torch.manual_seed(0)
    D = ALAE(tiny_cfg("mnist-mlp", "model.d_nonlinear=false").model).D
    a, b = torch.randn(4, 8), torch.randn(4, 8)
    assert torch.allclose(D(a + b) - D(b), D(a) - D(torch.zeros(4, 8)), atol=1e-5)
    D_nl = ALAE(tiny_cfg().model).D
    assert not torch.allclose(D_nl(a + b) - D_nl(b), D_nl(a) - D_nl(torch.zeros(4, 8)), atol=1e-3)


# -- the objectives themselves, pinned by hand on networks small enough to differentiate on paper ---------

class Scale(nn.Module):
    """v -> v * s, one learned factor per coordinate: a diagonal linear map."""

    def __init__(self, s):
        super().__init__()
        self.s = nn.Parameter(torch.tensor(s, dtype=torch.float64))

    def forward(self, v):
        return v * self.s


class Readout(nn.Module):
    """w -> d . w + e: a linear logit."""

    def __init__(self, d, e):
        super().__init__()
        self.d, self.e = nn.Parameter(torch.tensor(d, dtype=torch.float64)), nn.Parameter(torch.tensor(e, dtype=torch.float64))

    def forward(self, w):
        return w @ self.d + self.e


# F(z) = a*z, G(w) = b*w, E(x) = c*x (coordinate-wise), D(w) = d.w + e, in a 2-D latent space
A, B, C, D, E_BIAS = [0.5, -1.0], [2.0, 0.5], [1.0, 3.0], [1.5, -0.5], 0.25
Z = [[1.0, -2.0], [0.5, 1.0], [-1.0, 0.5]]
X = [[0.5, -1.0], [2.0, 1.0], [0.0, 3.0]]


def linear_alae(tiny_cfg):
    """An ALAE whose four networks are the diagonal maps above (steps 1-3 call only F, G, E, D
    and, for the MLP kind, styles(z) = F(z))."""
    from alae.model import ALAE
    model = ALAE(tiny_cfg().model)
    model.F, model.G, model.E, model.D = Scale(A), Scale(B), Scale(C), Readout(D, E_BIAS)
    opt_ED = Recorder([model.E.s, model.D.d, model.D.e])
    opt_FG = Recorder([model.F.s, model.G.s])
    return model, opt_ED, opt_FG


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


def softplus(v):
    return math.log1p(math.exp(v))


def close(got, expected):
    assert got is not None
    assert torch.allclose(got, torch.as_tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12), (got, expected)


@pytest.mark.parametrize("gamma", [10.0, 0.0])
def test_step_1_minimises_softplus_of_fake_and_minus_real_logits_plus_half_gamma_r1(tiny_cfg, gamma):
    """By hand: real logits r_i = sum_k d_k c_k x_ik + e, fake ones f_i the same of x~ = b a z_i.
    grad_x r_i = (d_k c_k)_k for every i, so R1 = sum_k (d_k c_k)^2 per image, and
      L = mean_i [softplus(f_i) + softplus(-r_i)] + gamma/2 * sum_k (d_k c_k)^2
      dL/dd_k = mean_i [s(f_i) c_k x~_ik - s(-r_i) c_k x_ik] + gamma d_k c_k^2
      dL/dc_k = mean_i [s(f_i) d_k x~_ik - s(-r_i) d_k x_ik] + gamma c_k d_k^2
      dL/de   = mean_i [s(f_i) - s(-r_i)]                      (s the logistic sigmoid)
    F and G get nothing (G(F(z)) is a constant of step 1)."""
    model, opt_ED, _ = linear_alae(tiny_cfg)
    x, z = X[:2], Z[:2]
    fake = [[B[k] * A[k] * zi[k] for k in range(2)] for zi in z]
    r = [sum(D[k] * C[k] * xi[k] for k in range(2)) + E_BIAS for xi in x]
    f = [sum(D[k] * C[k] * fi[k] for k in range(2)) + E_BIAS for fi in fake]
    r1 = sum((D[k] * C[k]) ** 2 for k in range(2)) if gamma else 0.0
    n = len(x)
    grad_d = [sum(sigmoid(f[i]) * C[k] * fake[i][k] - sigmoid(-r[i]) * C[k] * x[i][k] for i in range(n)) / n
              + gamma * D[k] * C[k] ** 2 for k in range(2)]
    grad_c = [sum(sigmoid(f[i]) * D[k] * fake[i][k] - sigmoid(-r[i]) * D[k] * x[i][k] for i in range(n)) / n
              + gamma * C[k] * D[k] ** 2 for k in range(2)]
    grad_e = sum(sigmoid(f[i]) - sigmoid(-r[i]) for i in range(n)) / n

    stats = d_step(model, opt_ED, torch.tensor(x, dtype=torch.float64), torch.tensor(z, dtype=torch.float64), gamma)
    close(stats["loss_d"], sum(softplus(f[i]) + softplus(-r[i]) for i in range(n)) / n)
    if gamma:
        close(stats["r1"], r1)
    else:  # no penalty computed, none reported (iterations without R1 under lazy R1)
        assert "r1" not in stats
    got_c, got_d, got_e = opt_ED.grads
    close(got_c, grad_c)
    close(got_d, grad_d)
    close(got_e, grad_e)
    assert model.F.s.grad is None and model.G.s.grad is None


def test_step_2_minimises_softplus_of_minus_the_fake_logit_through_a_frozen_D_E(tiny_cfg):
    """By hand: l_i = sum_k kappa_k z_ik + e with kappa_k = d_k c_k b_k a_k, and
      L = mean_i softplus(-l_i)
      dL/da_k = -mean_i s(-l_i) d_k c_k b_k z_ik,   dL/db_k = -mean_i s(-l_i) d_k c_k a_k z_ik
    E and D pass the gradient through but keep none, and stay trainable afterwards."""
    model, opt_ED, opt_FG = linear_alae(tiny_cfg)
    n = len(Z)
    logit = [sum(D[k] * C[k] * B[k] * A[k] * zi[k] for k in range(2)) + E_BIAS for zi in Z]
    assert logit == [0.25, 1.75, -0.875]  # both signs, so that softplus(l) and softplus(-l) differ
    grad_a = [-sum(sigmoid(-logit[i]) * D[k] * C[k] * B[k] * Z[i][k] for i in range(n)) / n for k in range(2)]
    grad_b = [-sum(sigmoid(-logit[i]) * D[k] * C[k] * A[k] * Z[i][k] for i in range(n)) / n for k in range(2)]

    stats = g_step(model, opt_FG, torch.tensor(Z, dtype=torch.float64))
    close(stats["loss_g"], sum(softplus(-v) for v in logit) / n)
    close(opt_FG.grads[0], grad_a)
    close(opt_FG.grads[1], grad_b)
    assert all(p.grad is None and p.requires_grad for p in (model.E.s, model.D.d, model.D.e))


@pytest.mark.parametrize("trains_F", [False, True])
def test_step_3_minimises_the_squared_latent_error_against_a_fixed_target(tiny_cfg, trains_F):
    """By hand: w = a z and E(G(w)) = c b a z, so with N images and K = 2 coordinates
      L = 1/(N K) sum_ik (c_k b_k - 1)^2 a_k^2 z_ik^2
      dL/dc_k = 2/(N K) sum_i (c_k b_k - 1) a_k^2 z_ik^2 b_k,  dL/db_k the same with c_k for b_k
      dL/da_k = 2/(N K) sum_i (c_k b_k - 1) a_k z_ik^2 c_k b_k   (only with trains_F: F(z) is the
    target, held fixed, and F moves only through E(G(F(z)))); D gets nothing."""
    model, opt_ED, opt_FG = linear_alae(tiny_cfg)
    n, k2 = len(Z), 2
    err = [C[k] * B[k] - 1 for k in range(2)]
    sq = [sum(zi[k] ** 2 for zi in Z) for k in range(2)]
    loss = sum(err[k] ** 2 * A[k] ** 2 * sq[k] for k in range(2)) / (n * k2)
    grad_c = [2 / (n * k2) * err[k] * A[k] ** 2 * sq[k] * B[k] for k in range(2)]
    grad_b = [2 / (n * k2) * err[k] * A[k] ** 2 * sq[k] * C[k] for k in range(2)]
    grad_a = [2 / (n * k2) * err[k] * A[k] * sq[k] * C[k] * B[k] for k in range(2)]

    stats = ae_step(model, opt_ED, opt_FG, torch.tensor(Z, dtype=torch.float64), trains_F=trains_F)
    close(stats["loss_ae"], loss)
    got_c, got_d, got_e = opt_ED.grads
    close(got_c, grad_c)
    assert got_d is None and got_e is None
    got_a, got_b = opt_FG.grads
    close(got_b, grad_b)
    if trains_F:
        close(got_a, grad_a)
    else:
        assert got_a is None


@pytest.mark.parametrize("d_zero_step", [False, True])
def test_step_3_steps_D_on_a_zero_gradient_only_when_asked(tiny_model, d_zero_step):
    """train.d_zero_grad_step: as the reference under PyTorch 1.x, step 3 steps D's Adam on a zero
    gradient: D's weights stay, its step count rises and its second moment decays by beta2. Without
    it, step 3 leaves D's Adam state as step 1 left it."""
    opt_ED, opt_FG = optimizers(tiny_model)
    x, z = torch.rand(8, 1, 28, 28), torch.randn(8, 8)
    d_step(tiny_model, opt_ED, x, z, 10.0)
    params = list(tiny_model.D.parameters())
    weights = [p.detach().clone() for p in params]
    steps = [float(opt_ED.state[p]["step"]) for p in params]
    second = [opt_ED.state[p]["exp_avg_sq"].clone() for p in params]
    ae_step(tiny_model, opt_ED, opt_FG, z, trains_F=False, d_zero_step=d_zero_step)
    beta2 = opt_ED.param_groups[0]["betas"][1]
    for p, w, n, v in zip(params, weights, steps, second):
        assert torch.equal(p.detach(), w)
        assert float(opt_ED.state[p]["step"]) == n + d_zero_step
        torch.testing.assert_close(opt_ED.state[p]["exp_avg_sq"], v * beta2 if d_zero_step else v, rtol=0, atol=0)
