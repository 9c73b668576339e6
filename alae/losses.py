"""The three updates of one ALAE iteration (Algorithm 1), the pixel-AE baseline step and the beta-VAE step.

With f = softplus (non-saturating loss) and gamma the R1 weight:
  1. E, D:  f(D(E(G(F(z))))) + f(-D(E(x))) + gamma/2 * ||grad_x D(E(x))||^2
  2. F, G:  f(-D(E(G(F(z)))))
  3. E, G:  ||F(z) - E(G(F(z)))||^2   (latent reciprocity; F too if `ae_trains_F`)

Steps 1 and 2 feed G with style mixing (`ALAE.styles`), step 3 with one w per image. A step
takes z as an argument and every other draw from `draws.current()`.

For the MLP networks the trainer runs step 1 as `mlp_step.d_step_mlp`: the same update,
with its gradients in closed form and fewer matrix products.

`opt_ED` holds E and D, `opt_FG` holds F and G (as the reference code); step 3 steps
both, and Adam skips every parameter that received no gradient, so each step moves
only its own networks. The reference code ran on PyTorch 1.x, whose `zero_grad` leaves
zero tensors: its step 3 steps D's Adam on a zero gradient, which moves no weight (beta1
is 0) but decays D's second-moment average a second time per iteration, so that D's
steps settle near sqrt(2) times the learning rate. `ae_step(d_zero_step=True)` does the
same (`train.d_zero_grad_step`).

Each step runs its networks under `autocast` (a context: none for fp32, bf16 autocast for
mixed precision) and computes its losses, the R1 penalty included, in fp32. Gradients are
averaged over data-parallel processes before each optimizer step. Steps return their
statistics as 0-dim tensors, so that the hot loop does not wait on the device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as nnf
from torch import nn

from . import dist

if TYPE_CHECKING:
    from .model import ALAE

fp32 = contextlib.nullcontext


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """t in fp32, or as it is if wider: losses and R1 are never computed in bf16."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


@contextlib.contextmanager
def frozen(*nets: nn.Module) -> Iterator[None]:
    """Let gradients flow through `nets` to their inputs without accumulating on their weights."""
    params = [p for net in nets for p in net.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def parameters(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The parameters `opt` updates, in its order."""
    return [p for group in opt.param_groups for p in group["params"]]


def update(loss: torch.Tensor, *opts: torch.optim.Optimizer, zero: list[torch.Tensor] = ()) -> None:
    """Backpropagate `loss` into the parameters of `opts`, average over processes, step.

    Parameters in `zero` that `loss` does not reach get a zero gradient instead of none,
    so that Adam steps them (module docstring)."""
    for opt in opts:
        opt.zero_grad(set_to_none=True)
    # gradients for the parameters only, none for inputs (the real images of R1)
    loss.backward(inputs=[p for opt in opts for p in parameters(opt) if p.requires_grad])
    for p in zero:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    apply_gradients(*opts)


def apply_gradients(*opts: torch.optim.Optimizer) -> None:
    """Average the gradients of each optimizer's parameters over processes, then step it."""
    for opt in opts:
        dist.average_gradients(parameters(opt))
        opt.step()


def r1_penalty(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample ||grad_x logit||^2 on real data (Mescheder et al. 2018), in fp32, graph kept for backward."""
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return at_least_fp32(grad).pow(2).reshape(grad.shape[0], -1).sum(dim=1)


def d_step(model: ALAE, opt_ED: torch.optim.Optimizer, x: torch.Tensor, z: torch.Tensor, r1_gamma: float,
           autocast: Callable[[], contextlib.AbstractContextManager] = fp32) -> dict[str, torch.Tensor]:
    """Step 1: update E and D to tell real x from generated G(F(z)), with R1 on real data
    (weight `r1_gamma`; its statistic "r1" is the unweighted penalty, absent where the weight is 0).

    x is in the networks' pixel units (`ALAE.to_net`), so R1 is taken w.r.t. the image E sees:
    for the style networks [-1, 1], as in the reference code."""
    with autocast():
        with torch.no_grad():
            fake = model.G(model.styles(z, mix=True))
        x = x.detach().requires_grad_(r1_gamma > 0)
        real_logits = at_least_fp32(model.D(model.E(x)))
        fake_logits = at_least_fp32(model.D(model.E(fake)))
    loss = nnf.softplus(fake_logits) + nnf.softplus(-real_logits)
    if r1_gamma == 0:  # no R1 (or an iteration without it under lazy R1): no "r1" statistic
        update(loss.mean(), opt_ED)
        return {"loss_d": loss.detach().mean()}
    r1 = r1_penalty(real_logits, x)
    update((loss + 0.5 * r1_gamma * r1).mean(), opt_ED)
    return {"loss_d": loss.detach().mean(), "r1": r1.detach().mean()}


def g_step(model: ALAE, opt_FG: torch.optim.Optimizer, z: torch.Tensor,
           autocast: Callable[[], contextlib.AbstractContextManager] = fp32) -> dict[str, torch.Tensor]:
    """Step 2: update F and G so that D∘E takes G(F(z)) for real."""
    with frozen(model.E, model.D):
        with autocast():
            logits = at_least_fp32(model.D(model.E(model.G(model.styles(z, mix=True)))))
        loss = nnf.softplus(-logits).mean()
        update(loss, opt_FG)
    return {"loss_g": loss.detach()}


def ae_step(model: ALAE, opt_ED: torch.optim.Optimizer, opt_FG: torch.optim.Optimizer, z: torch.Tensor, trains_F: bool,
            autocast: Callable[[], contextlib.AbstractContextManager] = fp32,
            d_zero_step: bool = False) -> dict[str, torch.Tensor]:
    """Step 3: update E and G so that E(G(w)) gives back w = F(z) (latent autoencoding).

    `d_zero_step`: D's Adam steps too, on a zero gradient, as in the reference code (module docstring)."""
    with autocast():
        with torch.set_grad_enabled(trains_F):
            w = model.styles(z)
        w_back = at_least_fp32(model.E(model.G(w)))
    loss = (w_back - at_least_fp32(w.detach())).pow(2).mean()
    update(loss, opt_ED, opt_FG, zero=list(model.D.parameters()) if d_zero_step else [])
    return {"loss_ae": loss.detach()}


def pixel_step(model: ALAE, opt: torch.optim.Optimizer, x: torch.Tensor, kind: str,
               autocast: Callable[[], contextlib.AbstractContextManager] = fp32) -> dict[str, torch.Tensor]:
    """The AE baseline of Table 2: update E and G on |x - G(E(x))| (L1) or its square (L2)."""
    with autocast():
        y = at_least_fp32(model.G(model.E(x)))
    diff = y - x
    loss = diff.abs().mean() if kind == "l1" else diff.pow(2).mean()
    update(loss, opt)
    return {"loss_pixel": loss.detach()}


def vae_step(model: ALAE, opt: torch.optim.Optimizer, x: torch.Tensor, beta: float,
             autocast: Callable[[], contextlib.AbstractContextManager] = fp32) -> dict[str, torch.Tensor]:
    """The beta-VAE baseline (Higgins et al., ICLR 2017): update E and G on the negative ELBO
    with the KL term weighted by beta. E(x) gives the mean and log-variance of q(w | x); w is
    drawn from it by reparameterisation (Kingma and Welling 2014); G(w) gives the logits of
    Bernoulli pixels. Both terms are summed over an image's pixels and latents, averaged over images."""
    with autocast():
        mean, logvar = at_least_fp32(model.E(x)).chunk(2, dim=1)
        w = mean + torch.exp(0.5 * logvar) * dist.randn_rows(*mean.shape, device=mean.device)
        logits = at_least_fp32(model.G(w))
    rec = nnf.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)
    kl = 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1).sum(dim=1)
    update((rec + beta * kl).mean(), opt)
    return {"loss_rec": rec.detach().mean(), "kl": kl.detach().mean()}
