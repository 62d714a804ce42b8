"""The discrete tokenizer (VQ-VAE, van den Oord et al. 2017; FSQ, Mentzer et al. 2023; VAR's
multi-scale residual tokens, Tian et al. 2024): encoder -> quantizer -> decoder, trained on
reconstruction + the quantizer's loss (commitment for VQ; none for FSQ).

The API the priors of the next stage (AR, MaskGIT, VAR) and latent diffusion use:

  encode_tokens(images) -> token grids     (N, h, w) int64 code indices for vq / fsq; for msrq a
                                           list of (N, s, s) maps, one per scale, coarse to fine
  decode_tokens(tokens) -> images          (N, C, H, W) in [-1, 1], on the CPU
  num_codes, token_shapes                  the vocabulary size and each map's (h, w)

Latents (LatentModel, for interpolation) are the encoder's continuous, pre-quantization map
(N, latent_dim, h, w); decoding one snaps it to the codes first, so a walk shows the token changes.

VQGAN-lite (model.gan, Esser et al. 2021): a patch discriminator "D" with its own optimizer joins
after model.disc_start steps; the decoder then also minimises the hinge GAN loss, scaled by the
adaptive weight, and a feature-matching loss in D's features (engine/families/vqvae/adversarial.py).
D is not averaged (no EMA copy: its average would never be used).

Sampling: a tokenizer alone has no model of how tokens go together (the priors of the next stage
are that). generate() draws each token independently from how often training used each code at
that position (a running count): a baseline that shows which codes are alive, not a generative
model; the reconstructions and token-map previews are this family's real pictures."""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.core.schema import ConfigError
from engine.family.base import Batch, Family, StepContext
from engine.family.interfaces import LatentModel, Reconstructor, Tokenizer
from engine.family.progress import check_cancel
from engine.families.vqvae import SPEC
from engine.families.vqvae.adversarial import adaptive_weight, feature_matching_loss, hinge_d_loss, hinge_g_loss
from engine.families.vqvae.discriminator import PatchDiscriminator
from engine.families.vqvae.layers import Decoder, Encoder
from engine.families.vqvae.quantizers import (FiniteScalarQuantizer, MultiScaleResidualQuantizer, VectorQuantizer,
                                             default_scales)

BATCH = 256                # images per encoder / decoder pass outside training
COUNT_DECAY = 0.99         # the sampling counts forget old steps (codes move and restart)


def build_quantizer(m, grid: int) -> nn.Module:
    """The [model] section's quantizer for a (grid x grid) token map."""
    if m.quantizer == "fsq":
        return FiniteScalarQuantizer(m.latent_dim, m.levels, usage_window=m.usage_window)
    vq = VectorQuantizer(m.latent_dim, m.codebook_size, code_dim=m.code_dim, decay=m.codebook_decay,
                         eps=m.laplace_eps, beta=m.beta, dead_after=m.dead_code_steps, pool_size=m.restart_pool,
                         l2=m.l2_codes, usage_window=m.usage_window)
    if m.quantizer == "msrq":
        return MultiScaleResidualQuantizer(vq, m.scales or default_scales(grid))
    return vq


class TokenCounts(nn.Module):
    """How often each code was chosen at each token position (all scales' positions in a row),
    a decayed running count kept while training: the independent-token sampling baseline."""

    def __init__(self, positions: int, num_codes: int):
        super().__init__()
        self.register_buffer("counts", torch.zeros(positions, num_codes))

    @torch.no_grad()
    def observe(self, flat_tokens: torch.Tensor) -> None:
        """flat_tokens (B, positions) code indices."""
        hits = torch.zeros_like(self.counts).scatter_add_(
            1, flat_tokens.t(), torch.ones(flat_tokens.t().shape, device=self.counts.device))
        self.counts.mul_(COUNT_DECAY).add_(hits)

    def draw(self, seeds: list[int], temperature: float) -> torch.Tensor:
        """(len(seeds), positions) codes, row i drawn from a CPU generator seeded with seeds[i]."""
        p = (self.counts.float().cpu() + 1e-6).pow(1.0 / temperature)   # the floor: all-zero counts draw uniformly
        p = p / p.sum(1, keepdim=True)
        rows = [torch.multinomial(p, 1, generator=torch.Generator().manual_seed(int(s)))[:, 0] for s in seeds]
        return torch.stack(rows)


class VQVAEFamily(Family, LatentModel, Reconstructor, Tokenizer):
    """Encoder, quantizer (vq / fsq / msrq) and decoder; see the module docstring."""

    name = SPEC.name
    latent_space, latent_title, encode_method = "z", "z (pre-quantization encoder map)", "encoder"
    one_pass = True
    default_mode = "lerp"     # the encoder's map is not Gaussian: a straight line between two images

    def __init__(self, cfg, channels, resolution, class_names):
        super().__init__(cfg, channels, resolution, class_names)
        m = cfg.model
        if resolution % m.downsample:
            raise ConfigError(f"data.resolution = {resolution} must be divisible by model.downsample = {m.downsample}")
        halvings = int(math.log2(m.downsample))
        self.grid = resolution // m.downsample
        quantizer = build_quantizer(m, self.grid)
        self.num_codes = quantizer.num_codes
        self.quantizer_kind = m.quantizer
        sizes = quantizer.scale_sizes if m.quantizer == "msrq" else [self.grid]
        self.token_shapes = [(s, s) for s in sizes]
        self.networks["encoder"] = Encoder(channels, m.channels, m.max_channels, halvings, m.latent_dim, m.res_blocks)
        self.networks["quantizer"] = quantizer
        self.networks["decoder"] = Decoder(channels, m.channels, m.max_channels, halvings, m.latent_dim, m.res_blocks)
        self.networks["token_counts"] = TokenCounts(sum(h * w for h, w in self.token_shapes), self.num_codes)
        if m.gan:
            self.networks["D"] = PatchDiscriminator(channels, m.disc_channels, m.max_channels, m.disc_layers,
                                                    spectral=m.disc_spectral_norm)
        self.init_ema()

    def init_ema(self) -> None:
        # every network but the discriminator (only the tokenizer's networks are used averaged)
        self.ema = nn.ModuleDict({k: copy.deepcopy(v) for k, v in self.networks.items() if k != "D"})
        self.ema.requires_grad_(False).eval()

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The base's AdamW over the tokenizer (named as without a GAN, so checkpoints agree), and
        with model.gan the discriminator's own Adam (betas 0.5 / 0.9, as VQGAN's)."""
        if not self.cfg.model.gan:
            return super().make_optimizers()
        t, m = self.cfg.training, self.cfg.model
        tokenizer = [p for k, net in self.networks.items() if k != "D" for p in net.parameters()]
        return {self.optimizer_name(): torch.optim.AdamW(tokenizer, lr=t.lr, weight_decay=t.weight_decay,
                                                         betas=(0.9, 0.999)),
                "D": torch.optim.Adam(self.networks["D"].parameters(), lr=t.lr * m.disc_lr_ratio, betas=(0.5, 0.9))}

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """The networks' weights averaged; a module with no weights (the quantizer without
        projections, the token counts) only has its buffers (codebook, counts) copied."""
        from engine.family.ema import update_ema
        for name, averaged in self.ema.items():
            if next(averaged.parameters(), None) is not None:
                update_ema(averaged, self.networks[name], decay)
            else:
                for eb, mb in zip(averaged.buffers(), self.networks[name].buffers()):
                    eb.copy_(mb)

    @property
    def multi_scale(self) -> bool:
        return isinstance(self.networks["quantizer"], MultiScaleResidualQuantizer)

    # ---- training --------------------------------------------------------------------------------
    def reconstruction_loss(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(out, x) if self.cfg.model.recon_loss == "l1" else F.mse_loss(out, x)

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        nets = self.networks
        x = batch.images
        with ctx.autocast():
            z = nets["encoder"](x)
        q = nets["quantizer"](z.float(), update=True, generator=ctx.generator,
                              collectives=ctx.collectives)   # moves the EMA codebook
        with ctx.autocast():
            out = nets["decoder"](q.z_q)
        recon = self.reconstruction_loss(out.float(), x)
        loss = recon + q.loss
        logs = {}
        adversarial = self.cfg.model.gan and ctx.step >= self.cfg.model.disc_start
        if adversarial:
            extra, logs = self.adversarial_generator_loss(x, out, recon, ctx)
            loss = loss + extra
        elif self.cfg.model.gan:
            logs["gan/adaptive_weight"] = torch.zeros(())   # the warm-up: no adversarial term yet
        ctx.optimize(self.optimizer_name(), loss)
        if adversarial:
            logs.update(self.discriminator_step(x, out.detach(), ctx))
        nets["token_counts"].observe(self.flatten_tokens(q.tokens))
        logs.update({"loss/total": loss, "loss/recon": recon, **q.logs})
        if self.cfg.model.quantizer != "fsq":
            logs["loss/commit"] = q.loss
        return logs

    def last_layer_weight(self) -> torch.Tensor:
        """The weight of the decoder's output conv: where the adaptive weight compares gradients."""
        return self.networks["decoder"].net[-1].weight

    def adversarial_generator_loss(self, x, out, recon, ctx: StepContext):
        """The decoder's VQGAN terms: disc_weight * lambda * hinge GAN loss + feature_weight *
        feature matching, with D frozen -> (their sum, logged values)."""
        m, D = self.cfg.model, self.networks["D"]
        D.requires_grad_(False)
        try:
            with ctx.autocast():
                fake_feats = D.features(out)
                with torch.no_grad():
                    real_feats = D.features(x)
            gan = hinge_g_loss(fake_feats[-1].float())
            feature = feature_matching_loss(real_feats[:-1], fake_feats[:-1])
            scale = float(ctx.scaler.get_scale()) if ctx.scaler is not None else 1.0
            weight = adaptive_weight(recon, gan, self.last_layer_weight(), m.adaptive_max, scale) * m.disc_weight
        finally:
            D.requires_grad_(True)
        return weight * gan + m.feature_weight * feature, {"loss/G": gan, "loss/feature": feature,
                                                           "gan/adaptive_weight": weight}

    def discriminator_step(self, x, fake, ctx: StepContext) -> dict[str, torch.Tensor]:
        """One hinge step of D on the batch and its (detached) reconstructions."""
        D = self.networks["D"]
        with ctx.autocast():
            real_scores, fake_scores = D(x).float(), D(fake).float()
        loss = hinge_d_loss(real_scores, fake_scores)
        ctx.optimize("D", loss)
        return {"loss/D": loss, "gan/d_real": real_scores.mean(), "gan/d_fake": fake_scores.mean()}

    # ---- tokens: the API of the priors -------------------------------------------------------------
    def flatten_tokens(self, tokens) -> torch.Tensor:
        """Token grid(s) -> (N, positions), the scales one after another."""
        maps = tokens if isinstance(tokens, list) else [tokens]
        return torch.cat([t.reshape(t.shape[0], -1) for t in maps], dim=1)

    def unflatten_tokens(self, flat: torch.Tensor):
        """(N, positions) -> what encode_tokens returns (a grid, or one map per scale)."""
        maps, at = [], 0
        for h, w in self.token_shapes:
            maps.append(flat[:, at:at + h * w].reshape(-1, h, w))
            at += h * w
        return maps if self.multi_scale else maps[0]

    @torch.no_grad()
    def encode_tokens(self, images: torch.Tensor, *, use_ema: bool = True):
        """Images (N, C, H, W) in [-1, 1] -> their token grids on the CPU: (N, h, w) int64 code
        indices in [0, num_codes), or for msrq a list of (N, s, s) maps, coarse to fine."""
        nets = self.nets(use_ema)
        parts = []
        for i in range(0, images.shape[0], BATCH):
            z = nets["encoder"](images[i:i + BATCH].to(self.device).float())
            parts.append(self.flatten_tokens(nets["quantizer"](z).tokens).cpu())
        return self.unflatten_tokens(torch.cat(parts))

    @torch.no_grad()
    def decode_tokens(self, tokens, *, use_ema: bool = True) -> torch.Tensor:
        """What encode_tokens gives (or a prior samples) -> images (N, C, H, W) in [-1, 1], CPU."""
        nets = self.nets(use_ema)
        flat = self.flatten_tokens(tokens)
        parts = []
        for i in range(0, flat.shape[0], BATCH):
            part = self.unflatten_tokens(flat[i:i + BATCH].to(self.device))
            parts.append(nets["decoder"](nets["quantizer"].decode_tokens(part)).clamp(-1, 1).cpu())
        return torch.cat(parts)

    def image_codes(self, images: torch.Tensor) -> torch.Tensor:
        """(N, positions) code indices of images, every scale's (the codebook measure counts them)."""
        return self.flatten_tokens(self.encode_tokens(images))

    # ---- latents, reconstructions, samples ---------------------------------------------------------
    def seed_latents(self, seeds: list[int], labels=None, use_ema: bool = True) -> torch.Tensor:
        """The code vectors of the tokens drawn for each seed (the sampling baseline), as a map."""
        nets = self.nets(use_ema)
        flat = nets["token_counts"].draw(seeds, float(self.cfg.sampling.temperature)).to(self.device)
        with torch.no_grad():
            return nets["quantizer"].decode_tokens(self.unflatten_tokens(flat)).float()

    def decode_latents(self, latents: torch.Tensor, labels=None, *, options=None, use_ema: bool = True,
                       cancel=None, differentiable: bool = False) -> torch.Tensor:
        """Pre-quantization maps -> snapped to the codes -> decoded images."""
        nets = self.nets(use_ema)
        with torch.set_grad_enabled(differentiable):
            img = nets["decoder"](nets["quantizer"](latents.to(self.device).float()).z_q)
        return img if differentiable else img.clamp(-1, 1).cpu()

    def default_encode_steps(self, options=None) -> int:
        return 1  # the encoder is one pass

    @torch.no_grad()
    def encode_images(self, images, labels=None, *, steps: int | None = None, options=None,
                      progress=None, cancel=None) -> torch.Tensor:
        """The encoder's continuous map (N, latent_dim, h, w) before quantization; `steps` is ignored."""
        z = self.nets(True)["encoder"](images.to(self.device).float())
        if progress is not None:
            progress(1, 1)
        return z

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, labels=None) -> torch.Tensor:
        return self.decode_latents(self.encode_images(images), use_ema=True)

    @torch.no_grad()
    def generate(self, n, *, seed, labels, use_ema, options, progress, cancel) -> torch.Tensor:
        counts = self.nets(use_ema)["token_counts"]
        parts = []
        for i in range(0, n, BATCH):
            check_cancel(cancel)
            k = min(BATCH, n - i)
            flat = counts.draw(list(range(seed + i, seed + i + k)), float(options.temperature))
            parts.append(self.decode_tokens(self.unflatten_tokens(flat), use_ema=use_ema))
            if progress is not None:
                progress(i + k, n)
        return torch.cat(parts)

    def training_artifacts(self) -> list:
        from engine.families.vqvae.artifacts import CodeUsageHistogram, TokenMaps
        return super().training_artifacts() + [TokenMaps(), CodeUsageHistogram()]
