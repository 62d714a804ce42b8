"""GAN families: "gan" (DCGAN generator) and "stylegan" (StyleGAN-lite generator), sharing one
training step: non-saturating / WGAN-GP / hinge losses, R1 (lazy), n_critic, projection or AC-GAN
conditioning, DiffAugment or ADA, EMA of G, truncation. StyleGAN adds style-mixing regularization,
a tracked w average and optional path-length regularization.

Seeds: image i of sample(n, seed) is drawn from seed + i alone, so seed k gives the same image in a
grid, on the style-mixing canvas and in an interpolation."""
from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.families.gan.augment import AdaptiveAugment, diff_augment
from engine.family.base import Batch, Family, StepContext, seed_noise
from engine.family.interfaces import Conditional, LatentModel, StyleMixer
from engine.families.gan.dcgan import DCGenerator
from engine.families.gan.discriminator import Discriminator
from engine.families.gan.losses import d_loss, g_loss, gradient_penalty, path_length_penalty, r1_penalty
from engine.families.gan.stylegan import StyleGenerator, mix_styles, truncate
from engine.families.gan.section import NOISE_MODES
from engine.families.gan import GAN_SPEC, STYLEGAN_SPEC

RENDER_BATCH = 256


class GANFamily(Family, Conditional, LatentModel):
    name = GAN_SPEC.name
    d_kind = "dcgan"
    latent_space, latent_title, encode_method = "z", "z (DCGAN latent)", "projection"
    one_pass = True  # a latent renders in one generator pass: canvases re-render as controls move

    def __init__(self, cfg, channels, resolution, class_names):
        super().__init__(cfg, channels, resolution, class_names)
        m = cfg.model
        self.num_classes = len(class_names) if (m.class_conditional and len(class_names) > 1) else 0
        self.networks["G"] = self.build_generator()
        self.networks["D"] = Discriminator(channels, resolution, m.d_channels, m.max_channels, kind=self.d_kind,
                                           num_classes=self.num_classes, conditioning=m.conditioning,
                                           minibatch_std=m.minibatch_std, spectral=m.spectral_norm)
        if m.augment == "ada":
            self.networks["ada"] = AdaptiveAugment(m.ada_target, m.ada_interval, m.ada_kimg)
        self.policy = [p.strip() for p in m.diffaug_policy.split(",") if p.strip()]
        self.init_ema()

    def init_ema(self) -> None:
        # only G is averaged: D's average would never be used
        self.ema = nn.ModuleDict({"G": copy.deepcopy(self.networks["G"]).requires_grad_(False).eval()})

    def build_generator(self) -> nn.Module:
        m = self.cfg.model
        return DCGenerator(m.z_dim, self.channels, self.resolution, m.g_channels, m.max_channels, self.num_classes)

    def make_optimizers(self):
        t, m = self.cfg.training, self.cfg.model
        betas = (m.adam_beta1, m.adam_beta2)
        return {"G": torch.optim.Adam(self.networks["G"].parameters(), lr=t.lr, betas=betas),
                "D": torch.optim.Adam(self.networks["D"].parameters(), lr=t.lr * m.d_lr_ratio, betas=betas)}

    # ---- training ----------------------------------------------------------------------------
    def augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        kind = self.cfg.model.augment
        if kind == "diffaug":
            return diff_augment(x, self.policy, g)
        if kind == "ada":
            return self.networks["ada"](x, g)
        return x

    def noise(self, n: int, g: torch.Generator, device) -> torch.Tensor:
        return torch.randn((n, self.cfg.model.z_dim), generator=g, device=device)

    def generate_for_training(self, n: int, labels, g: torch.Generator, need_latents: bool = False):
        """Fakes for a training step -> (images, the latents they depend on or None)."""
        z = self.noise(n, g, labels.device if labels is not None else self.device)
        if need_latents:
            z.requires_grad_(True)
        return self.networks["G"](z, labels), z

    def extra_generator_loss(self, ctx: StepContext, labels) -> dict[str, torch.Tensor]:
        return {}

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        m = self.cfg.model
        D = self.networks["D"]
        g, x = ctx.generator, batch.images
        b = x.shape[0]
        labels = batch.labels if self.num_classes else None
        acgan = D.classify is not None
        out: dict[str, torch.Tensor] = {}

        # discriminator
        with torch.no_grad(), ctx.autocast():
            fake, _ = self.generate_for_training(b, labels, g)
        r1_now = m.r1_gamma > 0 and ctx.step % m.r1_every == 0
        real_in = self.augment(x, g).detach().requires_grad_(r1_now)
        fake_in = self.augment(fake.float(), g)
        with ctx.autocast():
            d_real, cls_real = D(real_in, labels)
            d_fake, cls_fake = D(fake_in, labels)
        d_real, d_fake = d_real.float(), d_fake.float()
        loss_d = d_loss(m.loss, d_real, d_fake)
        if m.loss == "wgan-gp":
            gp = gradient_penalty(lambda v: D(v, labels)[0], real_in, fake_in, g)
            loss_d = loss_d + m.gp_weight * gp
            out["reg/gp"] = gp
        if acgan:
            loss_d = loss_d + m.acgan_weight * (F.cross_entropy(cls_real.float(), labels)
                                                + F.cross_entropy(cls_fake.float(), labels))
        if r1_now:
            r1 = r1_penalty(d_real, real_in)
            loss_d = loss_d + (m.r1_gamma / 2) * r1 * m.r1_every  # lazy: scaled by the interval
            out["reg/r1"] = r1
        ctx.optimize("D", loss_d)
        out.update({"loss/D": loss_d, "gan/d_real": d_real.mean(), "gan/d_fake": d_fake.mean()})
        if "ada" in self.networks:
            ada = self.networks["ada"]
            ada.observe(d_real)
            if (ctx.step + 1) % m.ada_interval == 0:
                out["gan/ada_rt"] = ada.rt()
                ada.adjust(b * ctx.world_size)   # images seen by all processes (b is this one's share)
            out["gan/ada_p"] = ada.p.clone()

        # generator, every n_critic steps
        if ctx.step % m.n_critic == 0:
            D.requires_grad_(False)
            try:
                with ctx.autocast():
                    fake, _ = self.generate_for_training(b, labels, g)
                    score, cls = D(self.augment(fake, g), labels)
                loss_g = g_loss(m.loss, score.float())
                if acgan:
                    loss_g = loss_g + m.acgan_weight * F.cross_entropy(cls.float(), labels)
                extra = self.extra_generator_loss(ctx, labels)
                for v in extra.values():
                    loss_g = loss_g + v
                ctx.optimize("G", loss_g)
            finally:
                D.requires_grad_(True)
            out["loss/G"] = loss_g
        return out

    # ---- latents and rendering ---------------------------------------------------------------
    def _generator(self, use_ema: bool) -> nn.Module:
        return self.nets(use_ema)["G"]

    def seed_latents(self, seeds: list[int], labels=None, use_ema: bool = True) -> torch.Tensor:
        """The latent each seed stands for, in this family's interpolation space."""
        return seed_noise(seeds, self.cfg.model.z_dim).to(self.device)

    def decode_latents(self, latents: torch.Tensor, labels=None, *, options=None, use_ema: bool = True,
                       cancel=None, differentiable: bool = False) -> torch.Tensor:
        """Images in [-1, 1] for latents (on the device; CPU copies unless differentiable)."""
        opts = self.sample_options(options)
        G = self._generator(use_ema)
        lab = self.label_tensor(labels, latents.shape[0])
        was = G.training
        G.eval()
        try:
            with torch.set_grad_enabled(differentiable):
                img = self.render(G, latents.to(self.device), lab, opts)
        finally:
            G.train(was)
        return img if differentiable else img.float().clamp(-1, 1).cpu()

    def render(self, G, latents, labels, options) -> torch.Tensor:
        return G(latents * options.truncation_psi, labels)  # DCGAN's truncation: pull z toward its mean

    def projection_options(self):
        """Projection fits the untruncated generator (with fixed noise, where there is noise)."""
        return self.sample_options(truncation_psi=1.0)

    def start_latents(self, labels=None) -> torch.Tensor:
        """Candidate starting points for projection (it starts from the one closest to the target):
        a few dozen seeds' latents."""
        return self.seed_latents(list(range(32)), labels)

    def encode_images(self, images: torch.Tensor, labels=None, *, steps: int | None = None, options=None,
                      progress: Callable[[int, int], None] | None = None,
                      cancel: Callable[[], bool] | None = None) -> torch.Tensor:
        from engine.families.gan.projection import project
        return torch.cat([project(self, img, labels=None if labels is None else [labels[i % len(labels)]],
                                  steps=steps or self.default_encode_steps(), progress=progress, cancel=cancel).latent
                          for i, img in enumerate(images)])

    def generate(self, n, *, seed, labels, use_ema, options, progress, cancel) -> torch.Tensor:
        return self.generate_from_seeds(n, seed=seed, labels=labels, use_ema=use_ema, options=options,
                                        progress=progress, cancel=cancel, batch=RENDER_BATCH)


class StyleGANFamily(GANFamily, StyleMixer):
    name = STYLEGAN_SPEC.name
    d_kind = "residual"
    latent_space, latent_title, default_mode = "w+", "w+ (StyleGAN styles)", "lerp"

    def build_generator(self) -> nn.Module:
        m = self.cfg.model
        G = StyleGenerator(m.z_dim, m.w_dim, m.mapping_layers, self.channels, self.resolution, m.g_channels,
                           m.max_channels, self.num_classes, m.mapping_lr_mult)
        G.register_buffer("pl_mean", torch.zeros(()))
        return G

    def generate_for_training(self, n, labels, g, need_latents: bool = False):
        m, G = self.cfg.model, self.networks["G"]
        dev = labels.device if labels is not None else self.device
        w = G.mapping(self.noise(n, g, dev), labels)
        if torch.is_grad_enabled():  # the G step: track the average w (the centre of truncation)
            with torch.no_grad():
                G.mapping.w_avg.lerp_(w.detach().float().mean(0), 1 - m.w_avg_beta)
        crossover = torch.full((n,), G.num_ws, device=dev)
        if m.style_mixing_prob > 0:
            w2 = G.mapping(self.noise(n, g, dev), labels)
            cut = torch.randint(1, G.num_ws, (n,), generator=g, device=dev)
            mixed = torch.rand(n, generator=g, device=dev) < m.style_mixing_prob
            crossover = torch.where(mixed, cut, crossover)
            ws = mix_styles(w, w2, crossover, G.num_ws)
        else:
            ws = w.unsqueeze(1).expand(-1, G.num_ws, -1)
        if need_latents:
            ws = ws.detach().requires_grad_(True)
        return G.synthesis(ws, "random", g), ws

    def extra_generator_loss(self, ctx, labels) -> dict[str, torch.Tensor]:
        m = self.cfg.model
        if m.pl_weight <= 0 or (ctx.step // m.n_critic) % m.pl_every:
            return {}
        G = self.networks["G"]
        n = max(1, (labels.shape[0] if labels is not None else self.cfg.training.batch_size) // 2)
        sub = labels[:n] if labels is not None else None
        img, ws = self.generate_for_training(n, sub, ctx.generator, need_latents=True)
        pl = path_length_penalty(ws, img, G.pl_mean, ctx.generator)
        return {"reg/pl": pl * m.pl_weight * m.pl_every}

    def seed_latents(self, seeds, labels=None, use_ema: bool = True) -> torch.Tensor:
        """w+ (N, num_ws, w_dim): each seed's mapped w, repeated for every style input."""
        G = self._generator(use_ema)
        z = seed_noise(seeds, self.cfg.model.z_dim).to(self.device)
        with torch.no_grad():
            w = G.mapping(z, self.label_tensor(labels, len(seeds)))
        return w.unsqueeze(1).repeat(1, G.num_ws, 1)

    def render(self, G, latents, labels, options):
        if latents.dim() == 2:
            latents = latents.unsqueeze(1).expand(-1, G.num_ws, -1)
        return G.synthesis(truncate(latents, G.mapping.w_avg, options.truncation_psi), options.noise_mode)

    def projection_options(self):
        return self.sample_options(truncation_psi=1.0, noise_mode="const")

    def start_latents(self, labels=None) -> torch.Tensor:
        """The average w (the usual start) and some seeds' w."""
        G = self.ema["G"]
        avg = G.mapping.w_avg.view(1, 1, -1).repeat(1, G.num_ws, 1)
        return torch.cat([avg, self.seed_latents(list(range(15)), labels)])

    def style_layers(self) -> list[int]:
        return list(self.ema["G"].synthesis.style_resolutions)

    def noise_modes(self) -> list[str]:
        return list(NOISE_MODES)

    def style_groups(self) -> dict[str, list[int]]:
        """Style indices by scale: coarse / middle / fine thirds of the resolution levels."""
        res = self.ema["G"].synthesis.style_resolutions
        levels = sorted(set(res))
        groups = [g.tolist() for g in np.array_split(np.array(levels), 3)]  # coarse gets any extra level
        return {name: [i for i, r in enumerate(res) if r in grp] for name, grp in zip(("coarse", "middle", "fine"), groups)}

    @torch.no_grad()
    def style_mix(self, row_latents: torch.Tensor, col_latents: torch.Tensor, layers: list[int], *,
                  options=None, use_ema: bool = True) -> torch.Tensor:
        """The style-mixing figure: (R+1) x (C+1) images, row-major. The top row shows the column
        sources, the left column the row sources (the corner is blank, white); cell (r, c) is row
        r's styles with the chosen layers taken from column c."""
        G = self._generator(use_ema)
        bad = [i for i in layers if not 0 <= i < G.num_ws]
        if bad:
            raise ValueError(f"style layer {bad[0]} is out of range: this model has layers 0..{G.num_ws - 1}")
        R, C = row_latents.shape[0], col_latents.shape[0]
        chosen = torch.zeros(G.num_ws, dtype=torch.bool, device=self.device)
        chosen[list(layers)] = True
        rows = row_latents.to(self.device).unsqueeze(1).expand(-1, C, -1, -1)
        cols = col_latents.to(self.device).unsqueeze(0).expand(R, -1, -1, -1)
        cells = torch.where(chosen.view(1, 1, -1, 1), cols, rows).reshape(R * C, G.num_ws, -1)
        everything = torch.cat([col_latents.to(self.device), row_latents.to(self.device), cells])
        imgs = self.decode_latents(everything, None, use_ema=use_ema, options=options)
        top, left, body = imgs[:C], imgs[C:C + R], imgs[C + R:].view(R, C, *imgs.shape[1:])
        blank = torch.ones_like(imgs[:1])
        grid = [torch.cat([blank, top])]
        for r in range(R):
            grid.append(torch.cat([left[r:r + 1], body[r]]))
        return torch.cat(grid)
