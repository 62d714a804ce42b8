"""Latent diffusion (Rombach et al. 2022): DDPM's epsilon-prediction diffusion (Ho et al. 2020) on
the latents of a frozen parent: a VAE's posterior mean (a vector, denoised by an MLP), or a vqvae
tokenizer's continuous pre-quantization map (the LDM paper's VQ-regularised autoencoders; a map,
denoised by the UNet or a DiT), quantised only when the parent's decoder decodes a sample. The dataset is encoded once
before training (cached in the run folder's encoded/, reused on resume); the latents are scaled by
1/std of those latents, estimated from the data, so the diffusion sees unit variance (Stable
Diffusion's scale factor, measured rather than hard-coded); samples are denoised in the latent
space with any registered solver and decoded by the parent. Class-conditional with label dropout
for classifier-free guidance (Ho & Salimans 2022). Its latent space for interpolation is the
initial latent noise of deterministic DDIM, which images enter by the parent's encoder and DDIM
inversion."""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from engine.core.schema import ConfigError
from engine.diffusion.denoise import Denoiser, denoise, invert
from engine.diffusion.levels import DiscreteVP
from engine.diffusion.schedules import make_schedule
from engine.diffusion.solvers import Solver, build_solver
from engine.family.base import Batch, Family, StepContext
from engine.family.interfaces import Conditional, IterativeSampler, LatentModel
from engine.family.noise import STEP_NOISE_SEED_OFFSET, RowGenerators, seeded_rows
from engine.family.parent import Parent, cached_encoding, encoding_key
from engine.family.progress import Cancelled
from engine.families.ldm import SPEC
from engine.families.ldm.layers import LatentDenoiser, SpatialLatentDenoiser

ENCODE_BATCH = 256


class LDMFamily(Family, Conditional, IterativeSampler, LatentModel):
    name = SPEC.name
    parent_families = ("vae", "vqvae")
    prediction = "eps"
    latent_space, latent_title, encode_method = "noise", "x_T (DDIM noise in the parent's latent space)", \
        "parent's encoder + DDIM inversion"

    def __init__(self, cfg, channels, resolution, class_names, *, parent: Parent):
        super().__init__(cfg, channels, resolution, class_names)
        m = cfg.model
        self.parent = parent
        self.num_classes = len(class_names) if (m.class_conditional and len(class_names) > 1) else 0
        self.guidance = self.num_classes > 0
        vae = parent.family
        # the parent's latent: a VAE's vector, e.g. (16,), or a tokenizer's map, e.g. (32, 4, 4)
        self.latent_shape = tuple(vae.seed_latents([0]).shape[1:])
        self.latent_dim = math.prod(self.latent_shape)
        self.networks["denoiser"] = self._build_denoiser(m, parent)
        self.init_ema()
        self.T = m.timesteps
        self.alphas_cumprod = make_schedule(m.schedule, m.timesteps)["alphas_cumprod"]
        self.latents: torch.Tensor | None = None          # the dataset's latents (prepare_data), unscaled
        self.latents_flipped: torch.Tensor | None = None  # of the mirrored images, when data.hflip
        self.encoded_from_cache: bool | None = None

    def _build_denoiser(self, m, parent: Parent):
        spatial = len(self.latent_shape) == 3
        backbone = m.backbone if m.backbone != "auto" else ("unet" if spatial else "mlp")
        if backbone == "mlp":
            return LatentDenoiser(self.latent_dim, m.width, m.depth, self.num_classes, m.dropout)
        if not spatial:
            raise ConfigError(f"model.backbone = {backbone!r} needs a latent map (a vqvae parent); the "
                             f"{parent.family_name} parent's latent is a vector of {self.latent_dim}: use \"mlp\"")
        from types import SimpleNamespace
        from engine.nn.backbones import build_backbone
        c, h, w = self.latent_shape
        levels = len(m.channel_mults) - 1
        if h != w or (backbone == "unet" and h % 2 ** levels) or (backbone == "dit" and h % m.dit_patch_size):
            raise ConfigError(f"the parent's latent map is {h}x{w}: model.channel_mults ({len(m.channel_mults)} "
                             f"levels) or model.dit_patch_size = {m.dit_patch_size} does not divide it")
        net = SimpleNamespace(   # the backbone's fields, from the [model] section's
            backbone=backbone, base_channels=m.width, channel_mults=list(m.channel_mults), num_res_blocks=m.depth,
            attention_resolutions=list(m.attention_resolutions), attention_heads=m.heads, dropout=m.dropout,
            dit_patch_size=m.dit_patch_size, dit_width=m.width, dit_depth=m.depth, dit_heads=m.heads,
            dit_mlp_ratio=4.0, dit_pos_embed="sincos", dit_norm="adaln-zero")
        return SpatialLatentDenoiser(build_backbone(net, channels=c, resolution=h, num_classes=self.num_classes,
                                                    time_range=(0, m.timesteps - 1)), self.latent_shape)

    def to(self, device):
        super().to(device)
        self.parent.family.to(self.device)
        self.alphas_cumprod = self.alphas_cumprod.to(self.device)
        for name in ("latents", "latents_flipped"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).to(self.device))
        return self

    # ---- the parent: encode and decode ------------------------------------------------------------
    @property
    def latent_scale(self) -> float:
        return float(self.networks["denoiser"].latent_scale)

    def _parent_labels(self, labels, n: int):
        """The labels the parent needs (a class-conditional VAE encodes and decodes given a class):
        the ones given, and one class per image, cycling, where none is (a guided sample's "no
        class"); None for an unconditional parent."""
        vae = self.parent.family
        if not vae.is_conditional:
            return None
        cycle = vae.labels_for(n)
        lab = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels or [])
        lab = (lab * n)[:n] if lab else cycle
        return [int(v) if v is not None and 0 <= int(v) < vae.num_classes else cycle[i] for i, v in enumerate(lab)]

    @torch.no_grad()
    def encode_to_latents(self, images: torch.Tensor, labels=None) -> torch.Tensor:
        """The parent's latents of images (N, C, H, W) in [-1, 1] (a VAE's posterior means, a tokenizer's
        pre-quantization maps), flat and unscaled: (N, D)."""
        z = self.parent.family.encode_images(images.to(self.device).float(), self._parent_labels(labels, len(images)))
        return z.reshape(len(images), -1).float()

    @torch.no_grad()
    def decode_from_latents(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        """Images in [-1, 1] on the CPU from scaled latents (N, D), through the parent's decoder."""
        z = (z / self.latent_scale).reshape(len(z), *self.latent_shape)
        return self.parent.family.decode_latents(z, self._parent_labels(labels, len(z)))

    def prepare_data(self, images, labels, *, cache_dir, data_config, hflip, say) -> None:
        """Encode the dataset with the parent once (cached under the parent's hash and the data
        section; a resumed run reads the file) and set the scale factor from it."""
        def encode_all(flip: bool) -> torch.Tensor:
            parts = []
            for i in range(0, len(images), ENCODE_BATCH):
                x = images[i:i + ENCODE_BATCH].to(self.device).float().div(127.5).sub(1.0)
                parts.append(self.encode_to_latents(x.flip(-1) if flip else x, labels[i:i + ENCODE_BATCH]).cpu())
            return torch.cat(parts)

        what = "mean+flipped" if hflip else "mean"
        key = encoding_key(self.parent, data_config, what)
        tensors, cached = cached_encoding(
            cache_dir, key, lambda: {"mean": encode_all(False), **({"flipped": encode_all(True)} if hflip else {})})
        self.encoded_from_cache = cached
        self.latents = tensors["mean"].to(self.device)
        self.latents_flipped = tensors["flipped"].to(self.device) if hflip else None
        scale = 1.0 / max(float(self.latents.std()), 1e-6)
        for nets in (self.networks, self.ema):
            nets["denoiser"].latent_scale.fill_(scale)
        say(f"parent latents of {len(images)} images {'read from' if cached else 'encoded into'} "
            f"{cache_dir}/{key}.safetensors; latent scale factor 1/std = {scale:.4g}")

    def _batch_latents(self, batch: Batch) -> torch.Tensor:
        """The batch's scaled latents: rows of the encoded dataset, or encoded now when the batch
        does not say which images it holds."""
        if batch.index is None or self.latents is None:
            return self.encode_to_latents(batch.images, batch.labels) * self.latent_scale
        idx = batch.index.to(self.device)
        z = self.latents[idx]
        if batch.flips is not None and self.latents_flipped is not None:
            z = torch.where(batch.flips.to(self.device).view(-1, 1), self.latents_flipped[idx], z)
        return z * self.latent_scale

    # ---- labels: the label-dropout token is "no class" ----------------------------------------
    def null_label(self) -> int | None:
        return self.num_classes

    def unlabelled(self, n: int) -> None:
        return None  # labels=None samples unconditionally

    # ---- training --------------------------------------------------------------------------------
    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        z0 = self._batch_latents(batch)
        b, dev, g = z0.shape[0], z0.device, ctx.generator
        t = torch.randint(0, self.T, (b,), generator=g, device=dev)
        noise = torch.randn(z0.shape, generator=g, device=dev)
        ab = self.alphas_cumprod[t].view(b, 1)
        z_t = ab.sqrt() * z0 + (1 - ab).sqrt() * noise
        labels = None
        if self.num_classes:
            drop = torch.rand(b, generator=g, device=dev) < self.cfg.model.label_dropout
            labels = torch.where(drop, torch.full_like(batch.labels, self.num_classes), batch.labels)
        with ctx.autocast():
            pred = self.networks["denoiser"](z_t, t, labels)
        loss = F.mse_loss(pred.float(), noise)
        ctx.optimize("denoiser", loss)
        return {"loss/mse": loss}

    # ---- sampling --------------------------------------------------------------------------------
    def denoiser(self, net, labels: torch.Tensor | None, guidance_scale: float) -> Denoiser:
        """The network as an epsilon predictor, with classifier-free guidance folded in."""
        if labels is None or not self.num_classes:
            fn = lambda x, t: net(x, t, None)  # noqa: E731
        elif guidance_scale == 1.0:
            fn = lambda x, t: net(x, t, labels)  # noqa: E731
        else:
            null = torch.full_like(labels, self.num_classes)

            def fn(x, t):
                # one batched forward for the conditional and unconditional predictions
                e_c, e_u = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null])).chunk(2)
                return e_u + guidance_scale * (e_c - e_u)
        return Denoiser(fn, prediction=self.prediction)

    def solver(self, options, sampler: str | None = None, eta: float | None = None) -> Solver:
        levels = DiscreteVP(self.alphas_cumprod, options.spacing)
        return build_solver(sampler or options.sampler, levels, lenient=True,
                            eta=options.eta if eta is None else eta)

    @torch.no_grad()
    def _run(self, z_T: torch.Tensor, labels, options, *, use_ema: bool, sampler: str, eta: float,
             generator=None, progress=None, cancel=None) -> torch.Tensor:
        """Denoise latents from z_T and decode them through the parent: images on the CPU."""
        net = self.nets(use_ema)["denoiser"]
        was_training = net.training
        net.eval()
        try:
            lab = self.label_tensor(labels, z_T.shape[0])
            z0 = denoise(self.denoiser(net, lab, float(options.guidance_scale)), self.solver(options, sampler, eta),
                         z_T.to(self.device), options.steps, generator=generator, progress=progress, cancel=cancel)
        finally:
            net.train(was_training)
        if cancel is not None and cancel():
            raise Cancelled()
        return self.decode_from_latents(z0.float(), labels).float().clamp(-1, 1).cpu()

    def network_evaluations(self, options=None) -> int:
        """The solver's denoiser passes, two for each under classifier-free guidance (the
        parent's decoder then runs once per image, as a VAE's: not counted, like any family's
        networks other than its own)."""
        opts = self.sample_options(options)
        calls = self.solver(opts).network_evaluations(int(opts.steps))
        guided = self.num_classes > 0 and float(opts.guidance_scale) != 1.0
        return calls * (2 if guided else 1)

    def initial_noise(self, seeds: list[int]) -> torch.Tensor:
        """z_T, one latent per seed, drawn on the CPU (the same on every device and in every batch)."""
        return seeded_rows(seeds, (self.latent_dim,))

    def generate(self, n, *, seed, labels, use_ema, options, progress, cancel) -> torch.Tensor:
        seeds = list(range(int(seed), int(seed) + n))
        step_noise = RowGenerators([s + STEP_NOISE_SEED_OFFSET for s in seeds], self.device)
        return self._run(self.initial_noise(seeds), labels, options, use_ema=use_ema, sampler=options.sampler,
                         eta=options.eta, generator=step_noise, progress=progress, cancel=cancel)

    # ---- the latent space: z_T of deterministic DDIM -------------------------------------------
    def seed_latents(self, seeds: list[int], labels=None, use_ema: bool = True) -> torch.Tensor:
        return self.initial_noise(seeds)

    def decode_latents(self, latents, labels=None, *, options=None, use_ema: bool = True, cancel=None,
                       differentiable: bool = False) -> torch.Tensor:
        """DDIM with eta 0 from each z_T, then the parent's decoder."""
        opts = self.sample_options(options)
        return self._run(latents, labels, opts, use_ema=use_ema, sampler="ddim", eta=0.0, cancel=cancel)

    def default_encode_steps(self, options=None) -> int:
        return int(self.sample_options(options).steps)

    def encoding_key(self, options=None) -> tuple:
        opts = self.sample_options(options)
        return int(opts.steps), opts.spacing, float(opts.guidance_scale)

    @torch.no_grad()
    def encode_images(self, images, labels=None, *, steps: int | None = None, options=None,
                      progress: Callable[[int, int], None] | None = None, cancel=None) -> torch.Tensor:
        """The parent's posterior mean of each image, scaled, then DDIM inversion to its z_T."""
        opts = self.sample_options(options)
        net = self.nets(True)["denoiser"]
        was = net.training
        net.eval()
        try:
            lab = self.label_tensor(labels, images.shape[0])
            z0 = self.encode_to_latents(images, labels) * self.latent_scale
            solver = build_solver("ddim", DiscreteVP(self.alphas_cumprod, opts.spacing))
            return invert(self.denoiser(net, lab, float(opts.guidance_scale)), solver, z0,
                          steps or self.default_encode_steps(opts), progress=progress, cancel=cancel).cpu()
        finally:
            net.train(was)
