"""DDPM (Ho et al. 2020) with epsilon prediction over a small UNet; optional class conditioning
with label dropout for classifier-free guidance (Ho & Salimans 2022)."""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from engine.capabilities import Capabilities
from engine.models.base import Batch, Family, StepContext, seed_noise
from engine.models.unet import UNet
from engine.sampling.samplers import ddim_invert, sample_loop
from engine.sampling.schedules import make_schedule


class DDPMFamily(Family):
    name = "ddpm"

    def __init__(self, cfg, channels, resolution, class_names):
        super().__init__(cfg, channels, resolution, class_names)
        m = cfg.model
        self.num_classes = len(class_names) if (m.class_conditional and len(class_names) > 1) else 0
        self.networks["unet"] = UNet(
            in_channels=channels, resolution=resolution, base_channels=m.base_channels,
            channel_mults=tuple(m.channel_mults), num_res_blocks=m.num_res_blocks,
            attention_resolutions=tuple(m.attention_resolutions), attention_heads=m.attention_heads,
            dropout=m.dropout, num_classes=self.num_classes)
        self.init_ema()
        self.T = m.timesteps
        self.alphas_cumprod = make_schedule(m.schedule, m.timesteps)["alphas_cumprod"]

    @property
    def is_conditional(self) -> bool:
        return self.num_classes > 0

    def to(self, device):
        super().to(device)
        self.alphas_cumprod = self.alphas_cumprod.to(self.device)
        return self

    def make_optimizers(self):
        t = self.cfg.training
        return {"unet": torch.optim.AdamW(self.networks["unet"].parameters(), lr=t.lr,
                                          weight_decay=t.weight_decay, betas=(0.9, 0.999))}

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        x0 = batch.images
        b, dev, g = x0.shape[0], x0.device, ctx.generator
        t = torch.randint(0, self.T, (b,), generator=g, device=dev)
        noise = torch.randn(x0.shape, generator=g, device=dev)
        ab = self.alphas_cumprod[t].view(b, 1, 1, 1)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        labels = None
        if self.num_classes:
            drop = torch.rand(b, generator=g, device=dev) < self.cfg.model.label_dropout
            labels = torch.where(drop, torch.full_like(batch.labels, self.num_classes), batch.labels)
        with ctx.autocast():
            pred = self.networks["unet"](x_t, t, labels)
        loss = F.mse_loss(pred.float(), noise)
        ctx.optimize("unet", loss)
        return {"loss": loss}

    def eps_fn(self, net, labels: torch.Tensor | None, guidance_scale: float):
        """Noise predictor for the samplers, with classifier-free guidance folded in."""
        if labels is None or not self.num_classes:
            return lambda x, t: net(x, t, None)
        null = torch.full_like(labels, self.num_classes)
        if guidance_scale == 1.0:
            return lambda x, t: net(x, t, labels)

        def guided(x, t):
            # one batched forward for the conditional and unconditional predictions
            e_c, e_u = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null])).chunk(2)
            return e_u + guidance_scale * (e_c - e_u)
        return guided

    @torch.no_grad()
    def sample(self, n: int, *, seed: int = 0, labels: list[int] | None = None, use_ema: bool = True,
               progress: Callable[[int, int], None] | None = None, cancel: Callable[[], bool] | None = None,
               sampler: str = "ddim", steps: int = 50, eta: float = 0.0, guidance_scale: float = 1.0,
               x_T: torch.Tensor | None = None, **unused: Any) -> torch.Tensor:
        nets = self.ema if (use_ema and self.ema is not None) else self.networks
        net = nets["unet"]
        was_training = net.training
        net.eval()
        dev = self.device
        # noise is drawn on the CPU so that a seed gives the same images on every device
        g = torch.Generator().manual_seed(int(seed))
        shape = (n, self.channels, self.resolution, self.resolution)
        if x_T is None:
            x_T = torch.randn(shape, generator=g)
        lab = self._label_tensor(labels, n)
        dev_gen = torch.Generator(device=dev).manual_seed(int(seed) + 1)
        try:
            out = sample_loop(self.eps_fn(net, lab, float(guidance_scale)), x_T.to(dev), self.alphas_cumprod,
                              sampler=sampler, steps=steps, eta=eta, generator=dev_gen,
                              progress=progress, cancel=cancel)
        finally:
            net.train(was_training)
        return out.float().clamp(-1, 1).cpu()

    # ---- the latent space of interpolation: the initial noise x_T of deterministic DDIM ---------
    def seed_latents(self, seeds: list[int], labels=None, use_ema: bool = True) -> torch.Tensor:
        shape = (self.channels, self.resolution, self.resolution)
        return seed_noise(seeds, self.channels * self.resolution ** 2).view(len(seeds), *shape)

    def _label_tensor(self, labels, n: int) -> torch.Tensor | None:
        if labels is None or not self.num_classes:
            return None
        """Labels as a tensor of n (one label is repeated); None or a negative label = no label."""
        lab = [self.num_classes if (l is None or l < 0) else int(l) for l in labels]
        if any(l > self.num_classes for l in lab):
            raise ValueError(f"class label out of range: this model has {self.num_classes} classes")
        return torch.tensor((lab * n)[:n] if len(lab) != n else lab, dtype=torch.long, device=self.device)

    def decode_latents(self, latents: torch.Tensor, labels=None, *, use_ema: bool = True, steps: int = 25,
                       guidance_scale: float = 1.0, cancel=None, **unused: Any) -> torch.Tensor:
        """DDIM with eta 0 from each x_T: the same noise always gives the same image."""
        net = (self.ema if (use_ema and self.ema is not None) else self.networks)["unet"]
        was = net.training
        net.eval()
        try:
            out = sample_loop(self.eps_fn(net, self._label_tensor(labels, latents.shape[0]), float(guidance_scale)),
                              latents.to(self.device), self.alphas_cumprod, sampler="ddim", steps=steps, eta=0.0,
                              cancel=cancel)
        finally:
            net.train(was)
        return out.float().clamp(-1, 1).cpu()

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, labels=None, *, steps: int = 25, use_ema: bool = True,
                      progress=None, cancel=None) -> torch.Tensor:
        """DDIM inversion of images ((N, C, H, W) in [-1, 1]) to their x_T."""
        net = (self.ema if (use_ema and self.ema is not None) else self.networks)["unet"]
        was = net.training
        net.eval()
        try:
            lab = self._label_tensor(labels, images.shape[0])
            return ddim_invert(self.eps_fn(net, lab, 1.0), images.to(self.device).float(), self.alphas_cumprod,
                               steps=steps, progress=progress, cancel=cancel).cpu()
        finally:
            net.train(was)

    def capabilities(self) -> Capabilities:
        return Capabilities(family=self.name, sample=True, samplers=["ddim", "ddpm"],
                            guidance=self.num_classes > 0,
                            class_labels=self.class_names if self.num_classes else [],
                            resolution=self.resolution, channels=self.channels, invert=True, encode=True,
                            interpolate=True, latent_space="noise", encode_method="ddim-inversion")
