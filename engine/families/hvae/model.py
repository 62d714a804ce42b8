"""A hierarchical VAE, VDVAE-lite (Child 2021, "Very Deep VAEs"): a bottom-up residual encoder and a
top-down residual decoder with latent groups at several resolutions (engine/families/hvae/layers.py),
the pixel distributions of the flat VAE (engine/families/vae/layers.py), gradient skipping, bits/dim by
the ELBO or the importance-weighted bound (IWAE, Burda et al. 2016), and a temperature per group.

Latents and seeds: the latent space the canvases walk through is that of the groups at the top
resolution (or of the top `model.latent_groups` groups), standardised by their priors:
z = prior mean + prior std * latent, so a standard-normal latent is a draw from the prior. Decoding
a latent draws the groups below from their priors with one fixed noise, scaled by their
temperatures (0 = the prior means), so a decode is a function of the latent; encoding takes the
posterior means. Image i of sample(n, seed) draws the latent groups' noise from seed + i (exactly
seed_latents([seed + i])) and the lower groups' from the same generator after it: seed k's latent
is the one a walk through seed k uses, the lower groups' noise is the image's own."""
from __future__ import annotations


import torch

from engine.nn.likelihood import bpd_discrete, dims, log_mean_exp, pixel_distribution
from engine.family.base import Batch, Family, StepContext, seed_noise
from engine.families.hvae.layers import Encoder, TopDownDecoder
from engine.family.interfaces import Conditional, LatentModel, Likelihood, Reconstructor
from engine.family.progress import Cancelled
from engine.families.hvae.section import check_level_list, check_temperatures
from engine.families.hvae import SPEC

RENDER_BATCH = 256
BOUND_BATCH = 512         # decoder inputs per pass when computing the IWAE bound
DETAIL_SEED = 0           # the fixed noise of the lower groups when decoding top latents


def group_temperatures(options, groups: int) -> list[float]:
    """One temperature per group from the sample options: group_temperatures, then `temperature`."""
    given = check_temperatures(list(options.group_temperatures), "sampling.group_temperatures", groups)
    return given + [float(options.temperature)] * (groups - len(given))


class HVAEFamily(Family, Conditional, LatentModel, Likelihood, Reconstructor):
    """Encoder q(z_1..z_G | x) and top-down decoder p(z_1) p(z_2 | z_1) ... p(x | z_1..z_G), trained on
    the negative ELBO per sub-pixel; see the module docstring for the latents and the papers."""

    name = SPEC.name
    latent_space, latent_title = "z_top", "z_top (the top latent groups, standardised by their priors)"
    encode_method = "encoder mean"
    one_pass = True
    default_mode = "slerp"
    exact_likelihood = False   # bits/dim is the ELBO / IWAE bound (an upper bound)

    def __init__(self, cfg, channels, resolution, class_names):
        super().__init__(cfg, channels, resolution, class_names)
        m = cfg.model
        self.sizes = m.sizes(resolution)
        for name in ("decoder_groups", "encoder_blocks"):  # a config built without a run's validation
            check_level_list(getattr(m, name), name, "model", resolution, m.top_1x1)
        self.num_classes = len(class_names) if (m.class_conditional and len(class_names) > 1) else 0
        self.pixels = pixel_distribution(m.decoder, m.gaussian_variance, m.fixed_std)
        self.networks["encoder"] = Encoder(channels, m.width, m.bottleneck, self.sizes, m.encoder_blocks)
        self.networks["decoder"] = TopDownDecoder(channels * self.pixels.params_per_channel, m.width, m.bottleneck,
                                                  m.zdim, self.sizes, m.decoder_groups, self.num_classes)
        dec = self.networks["decoder"]
        self.num_groups = dec.num_groups
        self.group_dims = dec.group_dims()
        self.latent_groups = m.num_latent_groups()
        if self.latent_groups > self.num_groups:
            raise ValueError(f"model.latent_groups = {m.latent_groups} is more than the {self.num_groups} "
                             f"latent groups")
        self.latent_dim = sum(self.group_dims[:self.latent_groups])
        self.skipped_updates = 0   # updates skipped by the gradient-norm check since this process started
        self.init_ema()

    def _noise(self, n: int, generator: torch.Generator | None, device) -> list[torch.Tensor]:
        dec = self.networks["decoder"]
        return [torch.randn((n, *dec.group_shape(g)), generator=generator, device=device)
                for g in range(self.num_groups)]

    # ---- training --------------------------------------------------------------------------------
    def neg_elbo_terms(self, x: torch.Tensor, labels, generator: torch.Generator | None,
                       nets=None, autocast=None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(-log p(x|z) (B,) nats, [KL of group g (B,) nats]) with z drawn from the posterior."""
        nets = nets if nets is not None else self.networks
        ctx = autocast if autocast is not None else torch.autocast(device_type=x.device.type, enabled=False)
        n = x.shape[0]
        noise = self._noise(n, generator, x.device)
        with ctx:
            acts = nets["encoder"](x)
            out, stats = nets["decoder"](n, labels, acts=acts, noise=noise, stats="kl")
        recon = -self.pixels.log_prob(x, out.float())
        return recon, [s.kl.float() for s in stats]

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        x = batch.images
        labels = batch.labels if self.num_classes else None
        recon, kls = self.neg_elbo_terms(x, labels, ctx.generator, autocast=ctx.autocast())
        kl_groups = torch.stack([k.mean() for k in kls])            # (G,) nats per image
        recon_mean = recon.mean()
        nelbo = recon_mean + kl_groups.sum()                         # nats per image
        loss = nelbo / dims(x)                                       # nats per sub-pixel (as VDVAE)
        skipped = self.optimize_or_skip(ctx, loss)
        logs = {"loss/bpd": bpd_discrete(nelbo.detach(), dims(x)), "loss/recon": recon_mean, "loss/kl": kl_groups.sum(),
                "train/skipped_updates": torch.tensor(float(self.skipped_updates), device=x.device),
                "train/skipped": torch.tensor(float(skipped), device=x.device)}
        logs.update({f"kl/group_{g}": v for g, v in enumerate(kl_groups)})
        return logs

    def optimize_or_skip(self, ctx: StepContext, loss: torch.Tensor) -> bool:
        """ctx.optimize with VDVAE's update skipping: the total gradient norm (before clipping;
        logged as grad/hvae) above model.grad_skip_threshold (0 = off) or not finite drops the
        update. True when skipped (counted in skipped_updates)."""
        skip = ctx.optimize("hvae", loss, skip_above=float(self.cfg.model.grad_skip_threshold))
        self.skipped_updates += int(skip)
        return skip

    # ---- the likelihood bound ----------------------------------------------------------------------
    @torch.no_grad()
    def importance_log_weights(self, images: torch.Tensor, labels=None, k: int = 1, *,
                               generator: torch.Generator | None = None, use_ema: bool = True) -> torch.Tensor:
        """log p(x|z) + sum_g [log p(z_g|z_<g) - log q(z_g|x, z_<g)] for k draws z ~ q per image: (K, N)
        nats. The noise is drawn on the CPU from `generator` (a seed gives the same values anywhere)."""
        nets = self.nets(use_ema)
        x = images.to(self.device).float()
        n = x.shape[0]
        lab = self.labels_on_device(labels, n)
        acts = nets["encoder"](x)
        out_w = torch.empty(k * n, device=self.device)
        flat_x = x.repeat(k, 1, 1, 1)                                     # sample-major
        flat_lab = lab.repeat(k) if lab is not None else None
        flat_acts = {s: a.repeat(k, 1, 1, 1) for s, a in acts.items()}
        noise = [t.to(self.device) for t in self._noise(k * n, generator, "cpu")]
        for i in range(0, k * n, BOUND_BATCH):
            sl = slice(i, i + BOUND_BATCH)
            m = flat_x[sl].shape[0]
            out, stats = nets["decoder"](m, flat_lab[sl] if flat_lab is not None else None,
                                         acts={s: a[sl] for s, a in flat_acts.items()},
                                         noise=[e[sl] for e in noise], stats="log_ratio")
            out_w[sl] = self.pixels.log_prob(flat_x[sl], out.float()) + sum(s.log_ratio for s in stats)
        return out_w.view(k, n)

    @torch.no_grad()
    def log_likelihood_bound(self, images: torch.Tensor, labels=None, k: int = 1, *,
                             generator: torch.Generator | None = None, use_ema: bool = True) -> torch.Tensor:
        """A lower bound on log p(x[|y]) per image, (N,) nats: k = 1 the ELBO with every group's KL in
        closed form; k > 1 the IWAE bound logmeanexp_k of the importance log weights."""
        if k == 1:
            nets = self.nets(use_ema)
            x = images.to(self.device).float()
            lab = self.labels_on_device(labels, x.shape[0])
            dec = nets["decoder"]
            noise = [t.to(self.device) for t in self._noise(x.shape[0], generator, "cpu")]
            out, stats = dec(x.shape[0], lab, acts=nets["encoder"](x), noise=noise, stats="kl")
            return self.pixels.log_prob(x, out.float()) - sum(s.kl for s in stats)
        return log_mean_exp(self.importance_log_weights(images, labels, k, generator=generator, use_ema=use_ema))

    def bits_per_dim(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """The bound with model.iwae_k samples (1 = the ELBO), in bits per sub-pixel: an upper bound
        on the model's bits/dim (of x given its label, for a conditional model)."""
        g = torch.Generator().manual_seed(0)   # the same evaluation noise every time
        k = self.cfg.model.iwae_k
        chunk = max(1, BOUND_BATCH * 4 // k)
        nll = []
        for i in range(0, images.shape[0], chunk):
            lab = labels[i:i + chunk] if (labels is not None and self.num_classes) else None
            nll.append(-self.log_likelihood_bound(images[i:i + chunk], lab, k, generator=g))
        return float(bpd_discrete(torch.cat(nll), dims(images)).mean())

    # ---- latents and sampling ----------------------------------------------------------------------
    def seed_latents(self, seeds: list[int], labels=None, use_ema: bool = True) -> torch.Tensor:
        """A standard-normal latent per seed: the top groups' noise, a draw from their priors."""
        return seed_noise(seeds, self.latent_dim).to(self.device)

    def _split_latents(self, latents: torch.Tensor) -> list[torch.Tensor]:
        """(N, latent_dim) -> the latent groups' standardised z, each (N, zdim, s, s)."""
        dec = self.networks["decoder"]
        n = latents.shape[0]
        parts = latents.to(self.device).float().reshape(n, -1).split(self.group_dims[:self.latent_groups], dim=1)
        return [p.reshape(n, *dec.group_shape(g)) for g, p in enumerate(parts)]

    def _seed_noise(self, seeds: list[int], temps: list[float]) -> list[torch.Tensor]:
        """Every group's noise for each seed, scaled by its group's temperature, from one CPU
        generator per seed: the latent groups' first (so they are exactly seed_latents), then the others."""
        dec = self.networks["decoder"]
        lower = range(self.latent_groups, self.num_groups)
        lat, rest = [], []
        for s in seeds:
            g = torch.Generator().manual_seed(int(s))
            lat.append(torch.randn(self.latent_dim, generator=g))
            rest.append([torch.randn(self.group_dims[j], generator=g) for j in lower])
        noise = self._split_latents(torch.stack(lat))
        noise += [torch.stack([r[i] for r in rest]).view(len(seeds), *dec.group_shape(j)).to(self.device)
                  for i, j in enumerate(lower)]
        return [e * t for e, t in zip(noise, temps)]

    def _detail_noise(self, n: int, temps: list[float]) -> list[torch.Tensor]:
        """The lower groups' fixed noise for decoding latents (the same for every image), scaled by
        their temperatures."""
        dec = self.networks["decoder"]
        g = torch.Generator().manual_seed(DETAIL_SEED)
        out = []
        for j in range(self.latent_groups, self.num_groups):
            e = torch.randn(dec.group_shape(j), generator=g)
            out.append(e.to(self.device).expand(n, -1, -1, -1) * temps[j])
        return out

    def _render(self, nets, noise: list[torch.Tensor], lab, differentiable: bool = False) -> torch.Tensor:
        """Images from per-group noise already scaled by the temperatures (prior mode, temperature 1)."""
        n = noise[0].shape[0]
        with torch.set_grad_enabled(differentiable):
            out, _ = nets["decoder"](n, lab, noise=noise)
            img = self.pixels.mean(out.float())
        return img if differentiable else img.clamp(-1, 1).cpu()

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, labels=None) -> torch.Tensor:
        """Every group at its posterior mean (each given the means above it), decoded to the pixel mean."""
        nets = self.nets(True)
        x = images.to(self.device).float()
        out, _ = nets["decoder"](x.shape[0], self.labels_on_device(labels, x.shape[0]), acts=nets["encoder"](x))
        return self.pixels.mean(out.float()).clamp(-1, 1).cpu()

    def decode_latents(self, latents: torch.Tensor, labels=None, *, options=None, use_ema: bool = True,
                       cancel=None, differentiable: bool = False) -> torch.Tensor:
        """The decoder's mean image for each latent (taken as given: no temperature on the latent
        groups), the lower groups drawn from their priors with the fixed detail noise times their
        temperatures (0 = the prior means)."""
        temps = group_temperatures(self.sample_options(options), self.num_groups)
        n = latents.shape[0]
        noise = self._split_latents(latents) + self._detail_noise(n, temps)
        return self._render(self.nets(use_ema), noise, self.labels_on_device(labels, n), differentiable)

    def default_encode_steps(self, options=None) -> int:
        return 1

    @torch.no_grad()
    def encode_images(self, images, labels=None, *, steps: int | None = None, options=None,
                      progress=None, cancel=None) -> torch.Tensor:
        """The posterior means of the latent groups for images (N, C, H, W) in [-1, 1], group by group
        (each given the means above it), standardised by their priors: (mean_q - mean_p) / std_p, so
        decode_latents puts back z = mean_q. `steps` is ignored (one pass)."""
        nets = self.nets(True)
        x = images.to(self.device).float()
        n = x.shape[0]
        _, stats = nets["decoder"](n, self.labels_on_device(labels, n), acts=nets["encoder"](x), stats="standardised",
                                   groups=self.latent_groups)
        if progress is not None:
            progress(1, 1)
        return torch.cat([st.standardised.flatten(1) for st in stats], dim=1)

    @torch.no_grad()
    def generate(self, n, *, seed, labels, use_ema, options, progress, cancel) -> torch.Tensor:
        lab = self.labels_for(n) if labels is None else (list(labels) * n)[:n]
        temps = group_temperatures(options, self.num_groups)
        nets = self.nets(use_ema)
        parts = []
        for i in range(0, n, RENDER_BATCH):
            if cancel is not None and cancel():
                raise Cancelled()
            k = min(RENDER_BATCH, n - i)
            noise = self._seed_noise(list(range(seed + i, seed + i + k)), temps)
            sub = None if lab is None else lab[i:i + k]
            parts.append(self._render(nets, noise, self.labels_on_device(sub, k)))
            if progress is not None:
                progress(i + k, n)
        return torch.cat(parts)
