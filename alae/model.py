"""ALAE: the four networks F, G, E, D (section 4) and what a user does with a trained model.

Training code uses the networks directly (`model.F(z)`, `model.E(x)`, ...), with images in
the networks' pixel units (`to_net`: [-1, 1] for the style networks). The methods
`encode`, `decode`, `generate` and `reconstruct` are the inference API returned by
`alae.load`: no gradients, in batches, on the model's device, images in [0, 1].
"""

from __future__ import annotations

import copy
import functools
import os

import numpy.typing as npt
import torch
from torch import nn

from . import checkpoint, dist, draws, images, latent
from .config import ModelConfig
from .errors import UserError
from .nets import conv, mlp, style
from .nn import downsample_to

INFERENCE_BATCH = 1024
FAMILIES = {"mlp": mlp, "conv": conv}  # the E and G of one image size (section 7.1; disentanglement_lib's)
WEIGHTS = {"ema": "ema.", "live": "model."}  # which networks `load` gives: the moving average, or the trained ones


class ALAE(nn.Module):
    """F: z -> w, G: w -> x, E: x -> w, D: w -> logit. The "ae" kind has only E and G; so has
    the "vae" kind, whose E gives the mean and log-variance of q(w | x) and whose G gives the
    logits of Bernoulli pixels."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = copy.deepcopy(cfg)
        width = cfg.fd_width or cfg.latent_size
        if cfg.net in FAMILIES:
            family = FAMILIES[cfg.net]
            code = 2 * cfg.latent_size if cfg.kind == "vae" else cfg.latent_size  # a VAE's E: mean, log-variance
            self.E = family.EncoderE(code, cfg.hidden, cfg.e_out_slope, cfg.resolution, cfg.channels)
            self.G = family.GeneratorG(cfg.latent_size, cfg.hidden, cfg.g_slope, cfg.resolution, cfg.channels,
                                       cfg.g_out_slope)
        else:
            self.E = style.EncoderE(cfg.levels, cfg.latent_size, cfg.start_ch, cfg.max_ch, cfg.channels)
            self.G = style.GeneratorG(cfg.levels, cfg.latent_size, cfg.start_ch, cfg.max_ch, cfg.channels)
        self.register_buffer("w_avg", torch.zeros(cfg.latent_size))  # for the truncation trick
        if cfg.kind == "alae":
            self.F = mlp.MappingF(cfg.latent_size, cfg.f_layers, width, cfg.f_lrmul)
            self.D = mlp.DiscriminatorD(cfg.latent_size, cfg.d_layers, width, cfg.d_lrmul, cfg.d_nonlinear)
        else:
            self.F = self.D = None

    @property
    def is_style(self) -> bool:
        """Whether these are StyleALAE's networks (section 5): G and E grow by levels, images are in
        [-1, 1] inside the networks, G has noise inputs, style mixing and the truncation trick."""
        return self.cfg.net == "style"

    def grow(self, level: int, blend: float) -> None:
        """Set the stage of progressive growing that G and E run at (section 5)."""
        if self.is_style:
            self.G.level = self.E.level = level
            self.G.blend = self.E.blend = blend

    @property
    def resolution(self) -> int:
        """Side of the images G makes and E takes now."""
        return 4 * 2**self.G.level if self.is_style else self.cfg.resolution

    def styles(self, z: torch.Tensor, mix: bool = False) -> torch.Tensor:
        """F(z) for a training step, as the reference's `generate` makes it (section 5).

        Style networks: the average w (truncation) moves toward this batch's mean F(z) by
        1 - w_avg_beta, once per call (the reference calls it in each of the three steps); with
        `mix`, with probability style_mixing_prob the style inputs from a random crossover on
        come from F(z') of a second z' (style-mixing regularisation). Every draw comes from
        `draws.current()`. Returns w [N, latent] or ws [N, num_styles, latent]."""
        w = self.F(z)
        if not self.is_style:
            return w
        self.track_w_avg(w)
        draw = draws.current()
        if not (mix and draw.mixes(self.cfg.style_mixing_prob)):
            return w
        w2 = self.F(draw.z2(z))
        crossover = draw.crossover(2 * (self.G.level + 1))
        layer = torch.arange(self.G.num_styles, device=w.device)[None, :, None]
        return torch.where(layer < crossover, w[:, None], w2[:, None])

    def track_w_avg(self, w: torch.Tensor) -> None:
        """Move the average w toward the mean of the batch w (over all processes) by 1 - w_avg_beta."""
        with torch.no_grad():
            _, world = dist.world()
            mean = dist.sum_all(w.detach().float().mean(0)) / world
            self.w_avg.lerp_(mean.to(self.w_avg.dtype), 1.0 - self.cfg.w_avg_beta)

    def truncate(self, w: torch.Tensor, psi: float) -> torch.Tensor:
        """The truncation trick (StyleGAN, section 5): w [N, latent] (or ws [N, num_styles, latent]) ->
        ws [N, num_styles, latent] whose first `model.truncation_cutoff` style inputs move toward the
        average w by psi (1: unchanged, 0: the average); `decode` takes the result."""
        ws = w[:, None].expand(-1, self.G.num_styles, -1) if w.dim() == 2 else w
        layer = torch.arange(ws.shape[1], device=ws.device)[None, :, None]
        return torch.where(layer < self.cfg.truncation_cutoff, torch.lerp(self.w_avg, ws, psi), ws)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _batched(self, fn, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([fn(chunk.to(self.device)) for chunk in x.split(INFERENCE_BATCH)])

    def as_images(self, x: images.ImagesLike) -> torch.Tensor:
        """What a user passes as images (`images.to_batch`: paths, PIL images, tensors or arrays of
        uint8 or floats in [0, 1]) -> floats [N, C, R, R] in [0, 1] at the model's resolution R:
        larger square images whose side is a multiple of R are averaged down to it."""
        x = images.to_batch(x, self.resolution, self.cfg.channels)
        side = x.shape[-1]
        if x.shape[-2] == side > self.resolution and side % self.resolution == 0:
            x = downsample_to(x, self.resolution)
        if x.shape[-2:] != (self.resolution, self.resolution):
            raise UserError(f"images must be {self.resolution}x{self.resolution} (or a multiple, averaged down), "
                            f"got {x.shape[-2]}x{x.shape[-1]}")
        return x

    def encode(self, x: images.ImagesLike) -> torch.Tensor:
        """Images (anything `as_images` takes) -> w [N, latent] (a VAE: the posterior mean)."""
        x = self.as_images(x)
        return self._batched(lambda chunk: self.E(self.to_net(chunk)), x)[:, :self.cfg.latent_size]

    def to_net(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> the networks' pixel units: [-1, 1] for the style networks, as the
        reference code trains them (R1 is taken w.r.t. this input), [0, 1] for the MLP, as its
        reference."""
        return x * 2 - 1 if self.is_style else x

    def from_net(self, x: torch.Tensor) -> torch.Tensor:
        """Images in the networks' pixel units -> [0, 1] (the inverse of `to_net`); a VAE's G gives
        Bernoulli logits, whose probabilities are the image."""
        if self.cfg.kind == "vae":
            return torch.sigmoid(x)
        return (x + 1) / 2 if self.is_style else x

    def features(self, x: images.ImagesLike) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (anything `as_images` takes) -> (short w, long penultimate activations), the features of Table 2."""
        x = self.as_images(x)
        with torch.no_grad():
            pairs = [self.E.features(chunk.to(self.device)) for chunk in x.split(INFERENCE_BATCH)]
        return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])

    def decode(self, w: torch.Tensor | npt.ArrayLike, noise: bool = True, clip: bool = True) -> torch.Tensor:
        """w [N, latent] (or one w [latent], or ws [N, num_styles, latent] for the style networks)
        -> images [N, C, R, R] in [0, 1], clipped as a saved image is; `clip=False` gives G's output
        in those units as it is. `noise=False` puts the style G's fixed stand-in for its noise inputs
        in their place (`style.noise_stand_in`), as the reference does, for repeatable images."""
        w = self._latents(w, "w")
        if w.dim() == 3 and not (self.is_style and w.shape[1] == self.G.num_styles):
            raise UserError(f"ws must be [N, {self.G.num_styles if self.is_style else 1}, {self.cfg.latent_size}] "
                            f"(one w per style input), got {list(w.shape)}")
        G = functools.partial(self.G, noise=noise) if self.is_style else self.G
        out = self._batched(lambda chunk: self.from_net(G(chunk)), w)
        return out.clamp(0, 1) if clip else out

    def reconstruct(self, x: images.ImagesLike) -> torch.Tensor:
        """G(E(x)): images (anything `as_images` takes) -> images [N, C, R, R] in [0, 1]."""
        return self.decode(self.encode(x))

    def mix(self, dst: images.ImagesLike, src: images.ImagesLike, group: str) -> torch.Tensor:
        """Real-image style mixing (Figure 9): each destination image with the `group`'s styles
        ("coarse", "middle" or "fine": `latent.STYLE_GROUPS`) taken from each source image; both are
        anything `as_images` takes. Returns images [len(dst), len(src), C, R, R] in [0, 1]."""
        if not self.is_style:
            raise UserError("style mixing needs the style networks (e.g. a run of --config mnist-style)")
        if group not in latent.STYLE_GROUPS or not latent.style_group_inputs(self, group):
            usable = [g for g in latent.STYLE_GROUPS if latent.style_group_inputs(self, g)]
            raise UserError(f"group must be one of {', '.join(usable)} at {self.resolution}x{self.resolution}, got {group!r}")
        w_dst, w_src = self.encode(dst), self.encode(src)
        return torch.stack([self.decode(latent.mixed_styles(self, w, w_src, group)) for w in w_dst])

    def interpolate(self, a: images.ImagesLike, b: images.ImagesLike, steps: int = 8) -> torch.Tensor:
        """G(w) at `steps` evenly spaced points of the straight line in w from E(a) to E(b), ends
        included (one step: E(a) alone); a and b are one image each. Returns images [steps, C, R, R] in [0, 1]."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise UserError(f"steps must be a positive integer, got {steps!r}")
        wa, wb = self.encode(a), self.encode(b)
        if len(wa) != 1 or len(wb) != 1:
            raise UserError(f"interpolate takes one image at each end, got {len(wa)} and {len(wb)}")
        return self.decode(latent.lerp_rows(wa, wb, steps)[0])

    def map(self, z: torch.Tensor | npt.ArrayLike) -> torch.Tensor:
        """z [N, latent] (or one z [latent]) -> w = F(z) [N, latent]."""
        self._require_F("map z to w")
        return self._batched(self.F, self._latents(z, "z"))

    def _latents(self, v, name: str) -> torch.Tensor:
        """A user's latent vectors as floats [N, latent] (or [N, styles, latent]); a one-line error otherwise."""
        try:
            v = torch.as_tensor(v).float()
        except (TypeError, ValueError, RuntimeError):
            raise UserError(f"{name} must be a tensor or array of numbers, got {type(v).__name__}") from None
        if v.dim() == 1:
            v = v[None]
        if v.dim() not in (2, 3) or v.shape[-1] != self.cfg.latent_size:
            raise UserError(f"{name} must be [N, {self.cfg.latent_size}] (this model's latent size), got {list(v.shape)}")
        return v

    def generate(self, n: int, seed: int | None = None, truncation: float | None = None) -> torch.Tensor:
        """n images G(F(z)) [n, C, R, R] in [0, 1], z ~ N(0, I) and G's noise inputs drawn from
        `seed`; `truncation` psi (the truncation trick) for the style networks."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UserError(f"the number of images must be a positive integer, got {n!r}")
        truncated = truncation is not None and truncation != 1.0
        if truncated and not self.is_style:
            raise UserError("truncation applies to the style networks only")
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if seed is not None:
                torch.manual_seed(seed)
            w = self.map(torch.randn(n, self.cfg.latent_size))
            if truncated:
                w = self.truncate(w, truncation)
            return self.decode(w)

    def _require_F(self, what: str) -> None:
        if self.F is None:
            raise UserError(f"cannot {what}: a pixel autoencoder run has no mapping F (use an ALAE run)")


def load(run: str | os.PathLike, device: str | torch.device = "cpu", weights: str = "ema") -> ALAE:
    """The EMA model of a run directory (its newest checkpoint) or of one checkpoint file;
    `weights="live"` gives the trained networks themselves instead of their moving average.

    Checkpoints of older alae versions load; one this alae cannot read names the version it needs.
    """
    from .run import Run

    if weights not in WEIGHTS:
        raise UserError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    path = Run.checkpoint_of(run)
    tensors, meta = checkpoint.load(path)
    model = ALAE(checkpoint.saved_config(meta, path).model)
    prefix = WEIGHTS[weights]
    tensors, meta = checkpoint.upgrade_legacy(tensors, meta, model, prefix)
    checkpoint.require(meta, ("level", "blend"), path)
    checkpoint.load_into(model, tensors, prefix, path)
    model.grow(meta["level"], meta["blend"])
    return model.to(device).eval().requires_grad_(False)
