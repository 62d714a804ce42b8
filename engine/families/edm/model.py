"""EDM (Karras et al. 2022) on a UNet: the network F is preconditioned (precond.py) into a denoiser
D(x; sigma), trained at log-normal sigmas with EDM's weighting so every level's target has unit
variance, and sampled over EDMSigmas (sigma_max down to sigma_min, rho-spaced, then 0) with any
registered solver through the Denoiser's "edm" prediction; Heun's method is the default. Class
conditioning with label dropout gives classifier-free guidance; the latent space is the (unit)
noise the chain starts from at sigma_max, reached from images by running the Euler ODE backwards."""
from __future__ import annotations

import math

import torch

from engine.diffusion.denoise import Denoiser
from engine.diffusion.family import DiffusionFamily
from engine.diffusion.levels import EDMSigmas
from engine.family.base import Batch, StepContext
from engine.families.edm import SPEC
from engine.families.edm.precond import loss_weight, preconditioning, sample_sigmas
from engine.inpainting.classical import classical_fill
from engine.nn.backbones import build_backbone


class EDMFamily(DiffusionFamily):
    name = SPEC.name
    prediction = "edm"
    # c_noise = ln(sigma)/4 spans about -1.6..1.1 over EDM's sigmas: scaled so the UNet's sinusoidal
    # embedding sees a range of a few hundred, like DDPM's integer timesteps
    time_scale = 250.0
    latent_title = "noise at sigma_max (ODE noise)"
    inpaint_methods = SPEC.inpaint_methods
    hole_fill = staticmethod(classical_fill)

    def __init__(self, cfg, channels, resolution, class_names):
        super().__init__(cfg, channels, resolution, class_names)
        m = cfg.model
        self.setup_labels(m.class_conditional)
        self.sigma_data = float(m.sigma_data)
        self.networks["unet"] = build_backbone(m, channels=channels, resolution=resolution,
                                               num_classes=self.num_classes, time_range=self.time_range())
        self.init_ema()

    def time_range(self) -> tuple[float, float]:
        """The span of the network's time input over the sampling sigmas (what DiT's TD-LN normalises)."""
        m = self.cfg.model
        return (self.time_scale * math.log(m.sigma_min) / 4, self.time_scale * math.log(m.sigma_max) / 4)

    def noise_levels(self):
        m = self.cfg.model
        return EDMSigmas(sigma_min=m.sigma_min, sigma_max=m.sigma_max, rho=m.rho)

    def denoiser_for(self, fn) -> Denoiser:
        return Denoiser(fn, prediction="edm", sigma_data=self.sigma_data)

    def denoise_batch(self, net, x: torch.Tensor, sigma: torch.Tensor, labels) -> torch.Tensor:
        """D(x; sigma) for a batch x (B, C, H, W) at per-image sigmas (B,)."""
        c = preconditioning(sigma.view(-1, 1, 1, 1), self.sigma_data)
        f = net(c.c_in * x, c.c_noise.flatten() * self.time_scale, labels)
        return c.c_skip * x + c.c_out * f.float()

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        m = self.cfg.model
        x0 = batch.images
        b, dev, g = x0.shape[0], x0.device, ctx.generator
        sigma = sample_sigmas(b, p_mean=m.p_mean, p_std=m.p_std, generator=g, device=dev)
        noise = torch.randn(x0.shape, generator=g, device=dev)
        labels = self.dropped_labels(batch.labels, g, m.label_dropout)
        with ctx.autocast():
            d = self.denoise_batch(self.networks["unet"], x0 + sigma.view(-1, 1, 1, 1) * noise, sigma, labels)
        per_image = ((d.float() - x0) ** 2).flatten(1).mean(1)
        loss = (loss_weight(sigma, self.sigma_data) * per_image).mean()
        ctx.optimize("unet", loss)
        return {"loss/edm": loss}
