"""Glow (Kingma & Dhariwal 2018) and RealNVP (Dinh et al. 2017) as one normalizing-flow family: the
[model] section picks the parts (affine or additive coupling, channel or checkerboard masks, LU,
plain or no 1x1 convolutions). Trained by maximum likelihood on uniformly dequantized data, so the
loss is the batch's exact bits/dim (engine/nn/likelihood.py).

The latent space the canvases walk through is the standardized noise eps of every scale: a scale's
latent is z = mean + temperature * std * eps, where mean and std come from its learned prior (which,
for a split, depends on the half that stayed in the flow). eps is standard normal, so a seed's
latent is plain normal noise (seed_noise); encoding an image is the flow's exact forward pass,
x -> z -> eps, and decoding is its exact inverse. Seeds: image i of sample(n, seed) is drawn from
seed + i alone, as for a GAN."""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

from engine.nn.likelihood import bpd_continuous, dequantize
from engine.family.base import Batch, Family, StepContext, seed_noise
from engine.families.glow.layers import ActNorm, FlowStep, LearnedPrior, gaussian_log_prob, squeeze, unsqueeze
from engine.family.interfaces import Conditional, LatentModel, Likelihood
from engine.families.glow import SPEC

RENDER_BATCH = 256


class MultiScaleFlow(nn.Module):
    """Glow's multi-scale architecture (Dinh et al. 2017, §3.6): at each level, squeeze (C, H, W)
    -> (4C, H/2, W/2), apply `steps` flow steps, and (except at the last level) split off half of
    the channels as that level's latent, scored by a prior conditioned on the other half."""

    def __init__(self, channels: int, resolution: int, *, levels: int, steps: int, hidden: int, coupling: str,
                 mask: str, invertible_conv: str, num_classes: int = 0):
        super().__init__()
        self.levels = nn.ModuleList()
        self.priors = nn.ModuleList()
        self.z_shapes: list[tuple[int, int, int]] = []   # each level's latent (C, H, W), in encoding order
        c, size = channels, resolution
        for i in range(levels):
            c, size = c * 4, size // 2
            self.levels.append(nn.ModuleList(
                FlowStep(c, hidden, invertible_conv=invertible_conv, mask=mask, parity=k % 2,
                         additive=coupling == "additive") for k in range(steps)))
            last = i == levels - 1
            z_c = c if last else c // 2
            self.priors.append(LearnedPrior(z_c, size, cond_channels=0 if last else c - z_c, num_classes=num_classes))
            self.z_shapes.append((z_c, size, size))
            c -= 0 if last else z_c

    # ---- x -> z ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        """x (N, C, H, W) -> (zs, means, log_stds, logdet): each level's latent (N, *z_shape) with its
        prior's parameters, and log |det dz/dx| (N,) of the whole map."""
        zs, means, log_stds = [], [], []
        logdet = x.new_zeros(x.shape[0])
        h = x
        for i, (steps, prior) in enumerate(zip(self.levels, self.priors)):
            h = squeeze(h)
            for step in steps:
                h, ld = step(h)
                logdet = logdet + ld
            if i == len(self.levels) - 1:
                z, cond = h, None
            else:
                h, z = h[:, :h.shape[1] - self.z_shapes[i][0]], h[:, h.shape[1] - self.z_shapes[i][0]:]
                cond = h
            mean, log_std = prior(x.shape[0], cond, labels)
            zs.append(z), means.append(mean), log_stds.append(log_std)
        return zs, means, log_stds, logdet

    def log_prob(self, x: torch.Tensor, labels: torch.Tensor | None = None, *, wide: bool = False) -> torch.Tensor:
        """log p(x) in nats per image (N,): the priors' log-density of z plus log |det dz/dx|.
        wide: summed in float64 (evaluation): on images unlike the training data a split prior can
        predict a std of e^-40 for a latent tens away from its mean, whose squared standardised
        distance (~1e40) overflows float32 to -inf although log p(x) is a finite number."""
        zs, means, log_stds, logdet = self(x, labels)
        cast = _float64 if wide else (lambda t: t)
        return sum(gaussian_log_prob(cast(z), cast(m), cast(s)) for z, m, s in zip(zs, means, log_stds)) + cast(logdet)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """x -> eps (N, D), every level's (z - mean) / (temperature * std), flattened and joined."""
        zs, means, log_stds, _ = self(x, labels)
        return torch.cat([((z - m) * torch.exp(-s) / temperature).flatten(1)
                          for z, m, s in zip(zs, means, log_stds)], dim=1)

    # ---- z -> x ----------------------------------------------------------------------------------
    def decode(self, eps: torch.Tensor, labels: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """eps (N, D) -> x (N, C, H, W), the exact inverse of encode at the same temperature."""
        n = eps.shape[0]
        parts = list(torch.split(eps, [math.prod(s) for s in self.z_shapes], dim=1))
        h = None
        for i in reversed(range(len(self.levels))):
            e = parts[i].view(n, *self.z_shapes[i])
            mean, log_std = self.priors[i](n, h, labels)
            z = mean + torch.exp(log_std) * temperature * e
            h = z if h is None else torch.cat([h, z], dim=1)
            for step in reversed(self.levels[i]):
                h = step.reverse(h)
            h = unsqueeze(h)
        return h

    # ---- ActNorm's data-dependent init -----------------------------------------------------------
    def actnorms(self) -> list[ActNorm]:
        return [m for m in self.modules() if isinstance(m, ActNorm)]

    def is_initialized(self) -> bool:
        return all(bool(a.initialized) for a in self.actnorms())

    @torch.no_grad()
    def data_init(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """One forward pass in which every ActNorm sets itself from the values it sees, so each
        comes out with zero mean and unit variance per channel on this batch."""
        layers = self.actnorms()
        for a in layers:
            a.init_from_data = True
        try:
            self(x, labels)
        finally:
            for a in layers:
                a.init_from_data = False


def _float64(t: torch.Tensor) -> torch.Tensor:
    """t in float64; on the CPU where its device has none (Apple's MPS)."""
    return t.to("cpu", torch.float64) if t.device.type == "mps" else t.double()


class FlowFamily(Family, Conditional, LatentModel, Likelihood):
    """Glow / RealNVP: exact likelihood, exact encoding, one-pass sampling with a temperature."""

    name = SPEC.name
    latent_space, latent_title = "z", "z (the flow's Gaussian latents, all scales)"
    encode_method, one_pass, default_mode = "exact inverse", True, "slerp"
    exact_likelihood = True

    def __init__(self, cfg, channels, resolution, class_names):
        super().__init__(cfg, channels, resolution, class_names)
        m = cfg.model
        self.num_classes = len(class_names) if (m.class_conditional and len(class_names) > 1) else 0
        self.networks["flow"] = MultiScaleFlow(channels, resolution, levels=m.levels, steps=m.steps_per_level,
                                               hidden=m.hidden_channels, coupling=m.coupling, mask=m.coupling_mask,
                                               invertible_conv=m.invertible_conv, num_classes=self.num_classes)
        self.init_ema()
        self.dims = channels * resolution * resolution
        self._init_checked = False   # whether ActNorm's data init is known to be done (see training_step)

    # ---- training --------------------------------------------------------------------------------
    def make_optimizers(self):
        # Adam with L2 weight decay (not AdamW's decoupled decay), as this family has always trained
        t = self.cfg.training
        return {"flow": torch.optim.Adam(self.networks["flow"].parameters(), lr=t.lr, weight_decay=t.weight_decay)}

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        # float32 always (no autocast): log-determinants summed over every value need the precision
        flow = self.networks["flow"]
        x = dequantize(batch.images.float(), ctx.generator)
        labels = batch.labels if self.num_classes else None
        if not self._init_checked:
            if not flow.is_initialized():   # a fresh run's first batch; a resumed run loaded its init
                flow.data_init(x, labels)
                self.ema.load_state_dict(self.networks.state_dict())   # the average starts from it too
            self._init_checked = True
        bpd = bpd_continuous(-flow.log_prob(x, labels), self.dims).mean()
        ctx.optimize("flow", bpd)
        return {"loss/bpd": bpd}

    # ---- likelihood ------------------------------------------------------------------------------
    @torch.no_grad()
    def bits_per_dim(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """Mean bits/dim of images under the averaged flow, dequantized with fixed noise (seed 0),
        so the same images always score the same. Summed in float64: finite on any image, however
        unlike the training data; beyond even float64's range it is refused in one line."""
        flow = self.nets(True)["flow"]
        g = torch.Generator(device=self.device).manual_seed(0)
        total = 0.0
        for i in range(0, images.shape[0], RENDER_BATCH):
            x = dequantize(images[i:i + RENDER_BATCH].to(self.device).float(), g)
            lab = labels[i:i + RENDER_BATCH].to(self.device) if self.num_classes else None
            total += float(bpd_continuous(-flow.log_prob(x, lab, wide=True), self.dims).sum())
        if not math.isfinite(total):
            raise ValueError("bits/dim is beyond the range of a float64 on these images: the flow's priors "
                             "(engine/families/glow/model.py) give some of their latents a vanishing std")
        return total / images.shape[0]

    # ---- the latent space: eps of every scale -----------------------------------------------------
    def seed_latents(self, seeds: list[int], labels=None, use_ema: bool = True) -> torch.Tensor:
        """Standard-normal eps (len(seeds), C*H*W), one generator per seed; the priors map it to z."""
        return seed_noise(seeds, self.dims)

    def decode_latents(self, latents: torch.Tensor, labels=None, *, options=None, use_ema: bool = True,
                       cancel=None, differentiable: bool = False) -> torch.Tensor:
        """Images in [-1, 1] for eps, through the exact inverse at the options' temperature."""
        opts = self.sample_options(options)
        lab = self.label_tensor(labels, latents.shape[0])
        with torch.set_grad_enabled(differentiable):
            x = self.nets(use_ema)["flow"].decode(latents.to(self.device).float(), lab, float(opts.temperature))
        return x if differentiable else x.clamp(-1, 1).cpu()

    def default_encode_steps(self, options=None) -> int:
        return 1   # one exact forward pass

    def encoding_key(self, options=None) -> tuple:
        return (self._encode_temperature(options),)

    def _encode_temperature(self, options) -> float:
        # eps is divided by the temperature so that decoding at it gives the image back; at 0 every
        # eps decodes to the same image and nothing can round-trip: encode at temperature 1 then
        t = float(self.sample_options(options).temperature)
        return t if t > 0 else 1.0

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, labels=None, *, steps: int | None = None, options=None,
                      progress: Callable[[int, int], None] | None = None, cancel=None) -> torch.Tensor:
        """eps for images ((N, C, H, W) in [-1, 1]): the averaged flow's exact forward pass, with no
        dequantization noise (steps are ignored)."""
        lab = self.label_tensor(labels, images.shape[0])
        eps = self.nets(True)["flow"].encode(images.to(self.device).float(), lab, self._encode_temperature(options))
        if progress is not None:
            progress(1, 1)
        return eps.cpu()

    def generate(self, n, *, seed, labels, use_ema, options, progress, cancel) -> torch.Tensor:
        return self.generate_from_seeds(n, seed=seed, labels=labels, use_ema=use_ema, options=options,
                                        progress=progress, cancel=cancel, batch=RENDER_BATCH)
