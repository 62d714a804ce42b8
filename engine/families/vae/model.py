"""A convolutional VAE (Kingma & Welling 2014) with a choice of pixel distributions, β-VAE (Higgins
et al. 2017) or the capacity objective (Burgess et al. 2018), free bits (Kingma et al. 2016), the
conditional form (Sohn et al. 2015) and bits/dim by the importance-weighted bound (IWAE, Burda et
al. 2016).

Seeds: image i of sample(n, seed) decodes the latent of seed + i alone, so seed k gives the same
image in a grid and in an interpolation. Sampling shows the decoder's mean (the usual VAE picture),
not a draw of pixel noise around it."""
from __future__ import annotations

import math

import torch

from engine.nn.likelihood import bpd_discrete, dims, log_mean_exp, pixel_distribution
from engine.family.base import Batch, Family, StepContext, seed_noise
from engine.family.interfaces import Conditional, LatentModel, Likelihood, Reconstructor
from engine.families.vae.layers import ConvDecoder, ConvEncoder
from engine.family.progress import Cancelled
from engine.families.vae import SPEC

RENDER_BATCH = 256
IWAE_BATCH = 512          # decoder inputs per pass when computing the IWAE bound
LOG_2PI = math.log(2 * math.pi)


# ---- the objective's pieces -------------------------------------------------------------------
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per latent dimension, in closed form: (B, L) -> (B, L) nats."""
    return 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor | float = 0.0,
                         logvar: torch.Tensor | float = 0.0) -> torch.Tensor:
    """log N(z; mu, exp(logvar)) summed over the last (latent) dimension: (..., L) -> (...)."""
    logvar = torch.as_tensor(logvar, dtype=z.dtype, device=z.device)
    return (-0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar))).sum(-1)


def capacity_at(step: int, c_max: float, steps: int) -> float:
    """Burgess et al.'s target C_t: rises linearly from 0 at step 0 to c_max at `steps`, then stays."""
    return c_max * min(1.0, step / max(1, steps))


def free_bits_kl(kl_per_dim: torch.Tensor, floor: float) -> torch.Tensor:
    """The KL the loss penalises, from the batch-mean KL of each latent dimension (L,): each
    dimension counts as at least `floor` nats (Kingma et al. 2016's free bits), so a dimension under
    the floor gets no push toward the prior. floor 0 = the plain sum."""
    return kl_per_dim.clamp(min=floor).sum() if floor > 0 else kl_per_dim.sum()


class VAEFamily(Family, Conditional, LatentModel, Likelihood, Reconstructor):
    """A conv encoder q(z|x[, y]) and decoder p(x|z[, y]) with a standard-normal prior on z,
    trained on recon + β·KL or recon + γ·|KL − C_t|; see the module docstring for the papers."""

    name = SPEC.name
    latent_space, latent_title, encode_method = "z", "z (VAE latent, encoder mean)", "encoder mean"
    one_pass = True            # a latent renders in one decoder pass
    default_mode = "slerp"     # z is Gaussian: slerp keeps the walk at a typical norm
    exact_likelihood = False   # bits/dim is the IWAE bound (an upper bound on the true bits/dim)

    def __init__(self, cfg, channels, resolution, class_names):
        super().__init__(cfg, channels, resolution, class_names)
        m = cfg.model
        self.num_classes = len(class_names) if (m.class_conditional and len(class_names) > 1) else 0
        self.latent_dim = m.latent_dim
        self.pixels = pixel_distribution(m.decoder, m.gaussian_variance, m.fixed_std)
        self.networks["encoder"] = ConvEncoder(channels, resolution, m.channels, m.max_channels, m.latent_dim,
                                               self.num_classes)
        self.networks["decoder"] = ConvDecoder(channels * self.pixels.params_per_channel, resolution, m.channels,
                                               m.max_channels, m.latent_dim, self.num_classes)
        self.init_ema()

    # ---- training --------------------------------------------------------------------------------
    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        m = self.cfg.model
        x = batch.images
        labels = batch.labels if self.num_classes else None
        with ctx.autocast():
            mu, logvar = self.networks["encoder"](x, labels)
        mu, logvar = mu.float(), logvar.float()
        # reparameterisation: z = mu + sigma * eps, differentiable in mu and sigma
        eps = torch.randn(mu.shape, generator=ctx.generator, device=mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps
        with ctx.autocast():
            out = self.networks["decoder"](z, labels)
        recon = -self.pixels.log_prob(x, out.float()).mean()          # nats per image
        kl_per_dim = gaussian_kl(mu, logvar).mean(0)                  # (L,) batch mean, nats
        kl = kl_per_dim.sum()
        kl_term = free_bits_kl(kl_per_dim, m.free_bits)
        logs: dict[str, torch.Tensor] = {}
        if m.capacity:
            c = capacity_at(ctx.step, m.capacity_max, m.capacity_steps)
            loss = recon + m.capacity_gamma * (kl_term - c).abs()
            logs["vae/capacity"] = torch.tensor(c, device=mu.device)
        else:
            loss = recon + m.beta * kl_term
            logs["vae/beta"] = torch.tensor(m.beta, device=mu.device)
        ctx.optimize("vae", loss)
        logs.update({"loss/total": loss, "loss/recon": recon, "loss/kl": kl})
        logs.update({f"kl/z{j}": v for j, v in enumerate(kl_per_dim)})
        return logs

    # ---- the likelihood bound ----------------------------------------------------------------------
    @torch.no_grad()
    def importance_log_weights(self, images: torch.Tensor, labels=None, k: int = 1, *,
                               generator: torch.Generator | None = None, use_ema: bool = True) -> torch.Tensor:
        """log p(x|z_k) + log p(z_k) − log q(z_k|x) for k samples z_k ~ q(z|x[, y]) per image: (K, N)
        nats. The noise is drawn on the CPU from `generator` (a seed gives the same values on any device)."""
        nets = self.nets(use_ema)
        x = images.to(self.device).float()
        n = x.shape[0]
        lab = self.labels_on_device(labels, n)
        mu, logvar = nets["encoder"](x, lab)                                   # (N, L) each
        eps = torch.randn((k, n, self.latent_dim), generator=generator).to(self.device)
        z = mu + torch.exp(0.5 * logvar) * eps                                  # (K, N, L)
        log_w = gaussian_log_density(z) - gaussian_log_density(z, mu, logvar)   # log p(z) - log q(z|x)
        log_px = torch.empty(k * n, device=self.device)
        flat_z, flat_x = z.reshape(k * n, -1), x.repeat(k, 1, 1, 1)            # sample-major, as z
        flat_lab = lab.repeat(k) if lab is not None else None
        for i in range(0, k * n, IWAE_BATCH):
            sl = slice(i, i + IWAE_BATCH)
            out = nets["decoder"](flat_z[sl], flat_lab[sl] if flat_lab is not None else None)
            log_px[sl] = self.pixels.log_prob(flat_x[sl], out.float())
        return log_px.view(k, n) + log_w

    def log_likelihood_bound(self, images: torch.Tensor, labels=None, k: int = 1, *,
                             generator: torch.Generator | None = None, use_ema: bool = True) -> torch.Tensor:
        """The IWAE lower bound on log p(x[|y]) per image, (N,) nats (Burda et al. 2016):
        logmeanexp_k [log p(x|z_k) + log p(z_k) − log q(z_k|x)]; k = 1 is the ELBO."""
        return log_mean_exp(self.importance_log_weights(images, labels, k, generator=generator, use_ema=use_ema))

    def bits_per_dim(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """The IWAE bound with model.iwae_k samples, in bits per sub-pixel (an upper bound on the
        model's bits/dim; for a conditional model, of x given its label). The discretized decoders
        give bits/dim of the 8-bit levels; the Bernoulli decoder's is a surrogate (not comparable)."""
        g = torch.Generator().manual_seed(0)   # the same evaluation noise every time
        chunk = max(1, IWAE_BATCH * 4 // self.cfg.model.iwae_k)
        nll = []
        for i in range(0, images.shape[0], chunk):
            lab = labels[i:i + chunk] if labels is not None else None
            nll.append(-self.log_likelihood_bound(images[i:i + chunk], lab, self.cfg.model.iwae_k, generator=g))
        return float(bpd_discrete(torch.cat(nll), dims(images)).mean())

    # ---- latents and sampling ----------------------------------------------------------------------
    def seed_latents(self, seeds: list[int], labels=None, use_ema: bool = True) -> torch.Tensor:
        """A standard-normal z per seed: a draw from the prior."""
        return seed_noise(seeds, self.latent_dim).to(self.device)

    def decode_latents(self, latents: torch.Tensor, labels=None, *, options=None, use_ema: bool = True,
                       cancel=None, differentiable: bool = False) -> torch.Tensor:
        """The decoder's mean image for each z (the temperature applies when sampling, not here)."""
        dec = self.nets(use_ema)["decoder"]
        lab = self.labels_on_device(labels, latents.shape[0])
        with torch.set_grad_enabled(differentiable):
            img = self.pixels.mean(dec(latents.to(self.device).float(), lab).float())
        return img if differentiable else img.clamp(-1, 1).cpu()

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, labels=None) -> torch.Tensor:
        """The decoder's mean at the encoder's mean: the usual VAE reconstruction."""
        return self.decode_latents(self.encode_images(images, labels), labels)

    def default_encode_steps(self, options=None) -> int:
        return 1  # the encoder is one pass

    @torch.no_grad()
    def encode_images(self, images, labels=None, *, steps: int | None = None, options=None,
                      progress=None, cancel=None) -> torch.Tensor:
        """The encoder's mean of q(z|x) for images (N, C, H, W) in [-1, 1]; `steps` is ignored."""
        lab = self.labels_on_device(labels, images.shape[0])
        mu, _ = self.nets(True)["encoder"](images.to(self.device).float(), lab)
        if progress is not None:
            progress(1, 1)
        return mu

    @torch.no_grad()
    def generate(self, n, *, seed, labels, use_ema, options, progress, cancel) -> torch.Tensor:
        # labels None on a conditional model: cycle through the classes; a shorter list repeats
        lab = self.labels_for(n) if labels is None else (list(labels) * n)[:n]
        parts = []
        for i in range(0, n, RENDER_BATCH):
            if cancel is not None and cancel():
                raise Cancelled()
            k = min(RENDER_BATCH, n - i)
            z = self.seed_latents(list(range(seed + i, seed + i + k))) * float(options.temperature)
            parts.append(self.decode_latents(z, None if lab is None else lab[i:i + k], use_ema=use_ema))
            if progress is not None:
                progress(i + k, n)
        return torch.cat(parts)
