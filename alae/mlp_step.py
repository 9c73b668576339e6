"""Step 1 of Algorithm 1 for the MLP networks (section 7.1), its gradients in closed form.

D∘E of MLP ALAE is one chain of equalized-lr linear layers, each followed by a leaky ReLU
or not: a_l = s_l h_{l-1} W_l^T + m_l b_l, h_l = phi_l(a_l), with h_0 = x and the logit
h_L. Step 1 minimises, over B real images x (logits r) and B generated ones (logits f),

    mean softplus(f) + mean softplus(-r) + gamma/2 mean ||q||^2,   q = grad_x r  (R1),

and all its gradients are products of a few matrices (phi' is piecewise constant, so
only the weights carry R1's gradient back):

- one backward pass over real and fake rows together, with upstream 1 for a real row
  and softplus'(f)/B for a fake one, gives delta_l = d(logit)/d(a_l): for real rows it
  is g_l, from which q = s_1 g_1 W_1, and the real loss term's gradient is c g_l with
  c = -softplus'(-r)/B per row (a backward pass is linear in its upstream gradient);
- R1's gradient runs back along sigma_0 = gamma/B q,
  sigma_l = phi_l'(a_l) * (s_l sigma_{l-1} W_l^T), and gives W_l the term s_l g_l^T sigma_{l-1};
- so W_l's whole gradient is one product, s_l delta_l^T [c h_{l-1} + sigma_{l-1}; h_{l-1}]
  (real rows over fake rows), and b_l's is m_l delta_l^T [c; 1].

`losses.d_step` computes the same with autograd (tests/test_mlp_step.py checks the two
against each other). Autograd runs the real rows' backward pass twice (for R1 and for the
loss) and makes three gradients for each weight of E, one product each, which it then
adds up: at MLP ALAE's sizes (batch 128) step 1 takes 18 batch-sized products with the
large layers of G and E where this takes 15, and
four weight-sized additions fewer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as nnf

from .losses import apply_gradients, at_least_fp32, fp32
from .nn import EqualLinear

if TYPE_CHECKING:
    from .model import ALAE


def chain(model: ALAE) -> list[tuple[EqualLinear, float | None]]:
    """D∘E as (linear layer, slope of the leaky ReLU after it or None) pairs, input side first."""
    return [pair for mlp in (model.E.mlp, model.D.mlp) for pair in zip(mlp.layers, mlp.slopes)]


def activation_backward(grad: torch.Tensor, h: torch.Tensor, slope: float | None) -> torch.Tensor:
    """grad through h = leaky_relu(a, slope) (from its output h), or through the identity."""
    return grad if slope is None else torch.ops.aten.leaky_relu_backward(grad, h, slope, True)


def d_step_mlp(model: ALAE, opt_ED: torch.optim.Optimizer, x: torch.Tensor, z: torch.Tensor, r1_gamma: float,
               autocast: Callable[[], contextlib.AbstractContextManager] = fp32) -> dict[str, torch.Tensor]:
    """Step 1 (`losses.d_step`) for MLP networks: update E and D to tell real x from
    generated G(F(z)), with R1 on real data, by the closed-form gradients above."""
    layers = chain(model)
    n = x.shape[0]
    with torch.no_grad(), autocast():
        fake = model.G(model.styles(z, mix=True))
        h = [torch.cat([model.E.flatten(x), fake.flatten(1)])]
        for layer, slope in layers:
            a = layer(h[-1])
            h.append(a if slope is None else nnf.leaky_relu(a, slope))
        real, fake_logits = at_least_fp32(h[-1]).squeeze(1).split(n)
        loss = nnf.softplus(fake_logits) + nnf.softplus(-real)
        c = -torch.sigmoid(-real) / n
        upstream = torch.cat([torch.ones_like(c), torch.sigmoid(fake_logits) / n])
        deltas, delta = [], upstream[:, None]
        for l in reversed(range(len(layers))):
            layer, slope = layers[l]
            delta = activation_backward(delta, h[l + 1], slope)
            deltas.insert(0, delta)
            if l > 0:
                delta = at_least_fp32(torch.mm(delta * layer.weight_scale, layer.weight))
        first = layers[0][0]
        if r1_gamma > 0:
            q = at_least_fp32(torch.mm(deltas[0][:n] * first.weight_scale, first.weight))
            r1 = q.pow(2).sum(dim=1)
            sigma = q * (r1_gamma / n)
        else:
            r1, sigma = None, None
        weights = torch.cat([c, torch.ones_like(c)])
        for l, (layer, slope) in enumerate(layers):
            if sigma is None:
                real_in = h[l][:n] * c[:, None]
            else:
                real_in = torch.addcmul(sigma, h[l][:n], c[:, None])
                if l + 1 < len(layers):
                    back = at_least_fp32(torch.mm(sigma * layer.weight_scale, layer.weight.t()))
                    sigma = activation_backward(back, h[l + 1][:n], slope)
            inputs = torch.cat([real_in, h[l][n:]]) * layer.weight_scale
            layer.weight.grad = torch.mm(deltas[l].t(), inputs).to(layer.weight.dtype)
            layer.bias.grad = (torch.mv(deltas[l].t(), weights) * layer.lrmul).to(layer.bias.dtype)
    apply_gradients(opt_ED)
    return {"loss_d": loss.mean()} | ({} if r1 is None else {"r1": r1.mean()})
