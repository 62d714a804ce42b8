"""Flow matching (Lipman et al. 2023) / rectified flow (Liu et al. 2022) on a UNet: the network
regresses the velocity of the path in path.py at a random t, and sampling integrates the ODE from
noise at t = 1 to the data at t = 0 over FlowTimes with any registered solver (ddim is the Euler
step here). Class conditioning with label dropout gives classifier-free guidance; the latent space
is the noise at t = 1, which images reach by running the Euler ODE backwards."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.diffusion.denoise import Denoiser
from engine.diffusion.family import DiffusionFamily
from engine.family.base import Batch, StepContext
from engine.families.flow_matching import SPEC
from engine.families.flow_matching.path import flow_levels, interpolate, sample_times, velocity
from engine.inpainting.classical import classical_fill
from engine.nn.backbones import build_backbone


class FlowMatchingFamily(DiffusionFamily):
    name = SPEC.name
    prediction = "flow"
    time_scale = 1000.0   # t in [0, 1] embedded like DDPM's timesteps 0..999
    latent_title = "x_1 (ODE noise)"
    inpaint_methods = SPEC.inpaint_methods
    hole_fill = staticmethod(classical_fill)

    def __init__(self, cfg, channels, resolution, class_names):
        super().__init__(cfg, channels, resolution, class_names)
        m = cfg.model
        self.setup_labels(m.class_conditional)
        self.sigma_min = float(m.sigma_min)
        self.networks["unet"] = build_backbone(m, channels=channels, resolution=resolution,
                                               num_classes=self.num_classes, time_range=(0.0, self.time_scale))
        self.init_ema()

    def noise_levels(self):
        return flow_levels(self.sigma_min)

    def denoiser_for(self, fn) -> Denoiser:
        if self.sigma_min == 0:
            return Denoiser(fn, prediction="flow")
        # on the sigma_min path x0 = x_t - t·u exactly (path.py); Denoiser's "flow" assumes sigma_min 0
        return Denoiser(lambda x, t: x - t.view(-1, 1, 1, 1) * fn(x, t), prediction="x0")

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        m = self.cfg.model
        x0 = batch.images
        b, dev, g = x0.shape[0], x0.device, ctx.generator
        t = sample_times(b, kind=m.time_sampling, generator=g, device=dev, mean=m.logit_mean, std=m.logit_std)
        eps = torch.randn(x0.shape, generator=g, device=dev)
        x_t = interpolate(x0, eps, t, self.sigma_min)
        labels = self.dropped_labels(batch.labels, g, m.label_dropout)
        with ctx.autocast():
            pred = self.networks["unet"](x_t, t * self.time_scale, labels)
        loss = F.mse_loss(pred.float(), velocity(x0, eps, self.sigma_min))
        ctx.optimize("unet", loss)
        return {"loss/flow": loss}
