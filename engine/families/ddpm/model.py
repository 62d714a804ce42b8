"""DDPM (Ho et al. 2020) over a small UNet that predicts eps, x0 or v (Salimans & Ho 2022), with a
uniform or min-SNR-gamma (Hang et al. 2023) loss weighting; optional class conditioning with label
dropout for classifier-free guidance (Ho & Salimans 2022), optionally only in a noise interval
(Kynkäänniemi et al. 2024). Sampling runs any registered solver (engine/core/solvers.py) through the
one denoising loop; its latent space for interpolation is the initial noise x_T of deterministic
DDIM, which images enter by DDIM inversion."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from engine.family.base import Batch, Family, StepContext
from engine.family.interfaces import Conditional, Inpainter, IterativeSampler, LatentModel
from engine.nn.backbones import build_backbone
from engine.diffusion.denoise import Denoiser, denoise, invert
from engine.diffusion.guidance import GuidanceInterval, guided_evaluations
from engine.diffusion.inpaint import inpaint_diffusion
from engine.diffusion.levels import DiscreteVP
from engine.diffusion.schedules import make_schedule
from engine.diffusion.solvers import Solver, build_solver
from engine.family.noise import STEP_NOISE_SEED_OFFSET, RowGenerators, seeded_rows
from engine.families.ddpm import SPEC
from engine.families.ddpm.section import check_guidance_interval


def min_snr_weights(alphas_cumprod: torch.Tensor, gamma: float, prediction: str) -> torch.Tensor:
    """Min-SNR-gamma loss weights (T,) float32 (Hang et al. 2023, sec. 3.4; diffusers' training
    scripts): the x0 error weighted by min(SNR, gamma), SNR = alpha-bar / (1 - alpha-bar), which for
    an eps target is min(SNR, gamma)/SNR = min(1, gamma/SNR) and for a v target
    min(SNR, gamma)/(SNR + 1)."""
    ab = alphas_cumprod.double()
    snr = ab / (1 - ab)
    if prediction == "eps":
        w = torch.clamp(gamma / snr, max=1.0)   # min(SNR, gamma)/SNR, finite at SNR 0
    elif prediction == "v":
        w = snr.clamp(max=gamma) / (snr + 1)
    else:
        w = snr.clamp(max=gamma)
    return w.float()


class DDPMFamily(Family, Conditional, IterativeSampler, LatentModel, Inpainter):
    name = SPEC.name
    latent_space, latent_title, encode_method = "noise", "x_T (DDIM noise)", "ddim-inversion"
    inpaint_methods = SPEC.inpaint_methods
    inpaint_options = "engine.inpainting.options:DiffusionInpaintOptions"

    def __init__(self, cfg, channels, resolution, class_names):
        super().__init__(cfg, channels, resolution, class_names)
        m = cfg.model
        self.num_classes = len(class_names) if (m.class_conditional and len(class_names) > 1) else 0
        self.guidance = self.num_classes > 0
        # kept under the name "unet" whatever the backbone: checkpoints and the optimizer's name stay the same
        self.networks["unet"] = build_backbone(m, channels=channels, resolution=resolution,
                                               num_classes=self.num_classes, time_range=(0, m.timesteps - 1))
        self.init_ema()
        self.T = m.timesteps
        self.prediction = m.prediction   # the training target, and what the Denoiser converts from
        self.alphas_cumprod = make_schedule(m.schedule, m.timesteps,
                                            zero_terminal_snr=m.zero_terminal_snr)["alphas_cumprod"]
        # per-timestep loss weights, looked up on the device (no host sync per step); None: uniform
        self.loss_weights = (min_snr_weights(self.alphas_cumprod, m.min_snr_gamma, m.prediction)
                             if m.loss_weighting == "min_snr" else None)

    def to(self, device):
        super().to(device)
        self.alphas_cumprod = self.alphas_cumprod.to(self.device)
        if self.loss_weights is not None:
            self.loss_weights = self.loss_weights.to(self.device)
        return self

    # ---- labels: the label-dropout token is "no class" ----------------------------------------
    def null_label(self) -> int | None:
        return self.num_classes

    def unlabelled(self, n: int) -> None:
        return None  # labels=None samples unconditionally

    # ---- training --------------------------------------------------------------------------------
    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        x0 = batch.images
        b, dev, g = x0.shape[0], x0.device, ctx.generator
        t = torch.randint(0, self.T, (b,), generator=g, device=dev)
        noise = torch.randn(x0.shape, generator=g, device=dev)
        ab = self.alphas_cumprod[t].view(b, 1, 1, 1)
        alpha, sigma = ab.sqrt(), (1 - ab).sqrt()
        x_t = alpha * x0 + sigma * noise
        labels = None
        if self.num_classes:
            drop = torch.rand(b, generator=g, device=dev) < self.cfg.model.label_dropout
            labels = torch.where(drop, torch.full_like(batch.labels, self.num_classes), batch.labels)
        with ctx.autocast():
            pred = self.networks["unet"](x_t, t, labels)
        loss = self.loss(pred.float(), x0, noise, alpha, sigma, t)
        ctx.optimize("unet", loss)
        return {"loss/mse": loss}

    def loss(self, pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor,
             sigma: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The weighted MSE between the UNet's output pred (B, C, H, W) and its target at x_t =
        alpha·x0 + sigma·noise (alpha, sigma: (B, 1, 1, 1); t: (B,) the timesteps)."""
        target = self.target(x0, noise, alpha, sigma)
        if self.loss_weights is None:
            return F.mse_loss(pred, target)
        per_image = (pred - target).square().mean(dim=tuple(range(1, pred.dim())))
        return (per_image * self.loss_weights[t]).mean()

    def target(self, x0: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """What the UNet is trained to output: the noise, the clean image, or v = alpha·noise - sigma·x0."""
        if self.prediction == "eps":
            return noise
        if self.prediction == "x0":
            return x0
        return alpha * noise - sigma * x0

    # ---- sampling --------------------------------------------------------------------------------
    def denoiser(self, net, labels: torch.Tensor | None, guidance_scale: float,
                 interval: tuple[float, float] | None = None) -> Denoiser | GuidanceInterval:
        """The network as a denoiser of its prediction target, with classifier-free guidance folded
        in; with `interval` (low, high), guidance only at levels whose sigma/alpha lies in it."""
        if labels is None or not self.num_classes:
            return Denoiser(lambda x, t: net(x, t, None), prediction=self.prediction)
        conditional = Denoiser(lambda x, t: net(x, t, labels), prediction=self.prediction)
        if guidance_scale == 1.0:
            return conditional
        null = torch.full_like(labels, self.num_classes)

        def fn(x, t):
            # one batched forward for the conditional and unconditional predictions; guidance is
            # linear, so it acts on the raw output of any target (eps, x0, v) alike
            e_c, e_u = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null])).chunk(2)
            return e_u + guidance_scale * (e_c - e_u)
        guided = Denoiser(fn, prediction=self.prediction)
        return guided if interval is None else GuidanceInterval(guided, conditional, *interval)

    def _guidance(self, net, labels, options) -> Denoiser | GuidanceInterval:
        """denoiser() with the options' guidance scale and interval."""
        interval = check_guidance_interval(options.guidance_interval, "sampling.guidance_interval")
        return self.denoiser(net, labels, float(options.guidance_scale), interval)

    def solver(self, options, sampler: str | None = None, eta: float | None = None) -> Solver:
        """The solver `sampler` (default: the options') over the training schedule at the options'
        spacing; eta reaches the solvers that take it (DDIM) and churn those that take S_churn (Euler,
        Heun), the others ignore them."""
        levels = DiscreteVP(self.alphas_cumprod, options.spacing)
        return build_solver(sampler or options.sampler, levels, lenient=True,
                            eta=options.eta if eta is None else eta, S_churn=float(options.churn))

    @torch.no_grad()
    def _run(self, x_T: torch.Tensor, labels, options, *, use_ema: bool, sampler: str, eta: float,
             generator=None, progress=None, cancel=None) -> torch.Tensor:
        net = self.nets(use_ema)["unet"]
        was_training = net.training
        net.eval()
        try:
            lab = self.label_tensor(labels, x_T.shape[0])
            solver = self.solver(options, sampler, eta)
            out = denoise(self._guidance(net, lab, options), solver, x_T.to(self.device),
                          options.steps, generator=generator, progress=progress, cancel=cancel)
        finally:
            net.train(was_training)
        return out.float().clamp(-1, 1).cpu()

    def network_evaluations(self, options=None) -> int:
        """The solver's UNet passes (one per timestep it visits for DDIM and DDPM, fewer than
        `steps` when steps > T; Heun's two per step but the last), two for each under
        classifier-free guidance (the conditional and the unconditional prediction, batched into
        one call), only at the levels inside the guidance interval when there is one."""
        opts = self.sample_options(options)
        solver = self.solver(opts)
        calls = solver.network_evaluations(int(opts.steps))
        if not (self.num_classes > 0 and float(opts.guidance_scale) != 1.0):
            return calls
        interval = check_guidance_interval(opts.guidance_interval, "sampling.guidance_interval")
        if interval is None:
            return 2 * calls
        inside, outside = guided_evaluations(solver, int(opts.steps), *interval)
        return 2 * inside + outside

    def initial_noise(self, seeds: list[int]) -> torch.Tensor:
        """x_T, one image per seed, drawn on the CPU so that a seed gives the same image on every
        device and in every batch."""
        return seeded_rows(seeds, (self.channels, self.resolution, self.resolution))

    def generate(self, n, *, seed, labels, use_ema, options, progress, cancel) -> torch.Tensor:
        seeds = list(range(int(seed), int(seed) + n))
        # a stochastic solver's per-step noise also follows each image's own seed
        step_noise = RowGenerators([s + STEP_NOISE_SEED_OFFSET for s in seeds], self.device)
        return self._run(self.initial_noise(seeds), labels, options, use_ema=use_ema, sampler=options.sampler,
                         eta=options.eta, generator=step_noise, progress=progress, cancel=cancel)

    # ---- the latent space: x_T of deterministic DDIM ---------------------------------------------
    def seed_latents(self, seeds: list[int], labels=None, use_ema: bool = True) -> torch.Tensor:
        return self.initial_noise(seeds)   # the x_T plain sampling with that seed starts from

    def decode_latents(self, latents, labels=None, *, options=None, use_ema: bool = True, cancel=None,
                       differentiable: bool = False) -> torch.Tensor:
        """DDIM with eta 0 from each x_T: the same noise always gives the same image."""
        opts = self.sample_options(options)
        return self._run(latents, labels, opts, use_ema=use_ema, sampler="ddim", eta=0.0, cancel=cancel)

    def default_encode_steps(self, options=None) -> int:
        return int(self.sample_options(options).steps)  # inversion retraces the sampler's own steps

    def encoding_key(self, options=None) -> tuple:
        # an inverted x_T decodes back to its image only with the same steps, spacing and guidance
        opts = self.sample_options(options)
        return int(opts.steps), opts.spacing, float(opts.guidance_scale), tuple(opts.guidance_interval)

    @torch.no_grad()
    def encode_images(self, images, labels=None, *, steps: int | None = None, options=None,
                      progress: Callable[[int, int], None] | None = None, cancel=None) -> torch.Tensor:
        """DDIM inversion of images ((N, C, H, W) in [-1, 1]) to their x_T: DDIM run backwards,
        with the spacing and guidance that decode_latents will use with the same options."""
        opts = self.sample_options(options)
        net = self.nets(True)["unet"]
        was = net.training
        net.eval()
        try:
            lab = self.label_tensor(labels, images.shape[0])
            solver = build_solver("ddim", DiscreteVP(self.alphas_cumprod, opts.spacing))
            return invert(self._guidance(net, lab, opts), solver, images.to(self.device).float(),
                          steps or self.default_encode_steps(opts), progress=progress, cancel=cancel).cpu()
        finally:
            net.train(was)

    # ---- inpainting: the known region imposed on the sampling chain ------------------------------
    @torch.no_grad()
    def inpaint(self, images, mask, *, seeds, labels=None, options=None, inpaint_options=None, method=None,
                progress=None, cancel=None) -> torch.Tensor:
        """RePaint or per-step blending (engine/diffusion/inpaint.py) with the run's solver. Image i
        starts from x_T of seeds[i] (the noise plain sampling with that seed starts from), so with an
        all-regenerate mask, a "noise" start and a deterministic solver, seed k fills exactly as it
        samples; the solver's and the re-noising's own noise follow seeds[i] too."""
        method = self.check_inpaint_method(method)
        opts = self.sample_options(options)
        ino = self.inpaint_options_for(inpaint_options)
        n = images.shape[0]
        if len(seeds) != n:
            raise ValueError(f"inpaint: {len(seeds)} seeds for {n} images")
        known = images.float().clamp(-1, 1)
        x_T = self.initial_noise(seeds)
        x_init = known
        if ino.start == "fill":   # the hole pre-filled by OpenCV, so strength < 1 keeps its rough colours
            from engine.inpainting.classical import classical_fill
            u8 = ((known.permute(0, 2, 3, 1).cpu().numpy() + 1) * 127.5).round().clip(0, 255).astype("uint8")
            hole = mask.expand(n, 1, *mask.shape[2:]).cpu().numpy()[:, 0]
            filled = [classical_fill(u8[i], hole[i]) for i in range(n)]
            x_init = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 127.5 - 1 for f in filled])
        net = self.nets(True)["unet"]
        was_training = net.training
        net.eval()
        try:
            lab = self.label_tensor(labels, n)
            solver = self.solver(opts)
            dev = self.device
            out = inpaint_diffusion(
                self._guidance(net, lab, opts), solver, known.to(dev), mask.to(dev),
                x_init.to(dev), opts.steps, method=method, jump=ino.jump, resample=ino.resample,
                strength=ino.strength, noise_init=x_T, noise_start=x_T if ino.start == "noise" else None,
                generator=RowGenerators([int(s) + STEP_NOISE_SEED_OFFSET for s in seeds], dev),
                merge_generator=RowGenerators([int(s) + 2 * STEP_NOISE_SEED_OFFSET for s in seeds], dev),
                progress=progress, cancel=cancel)
        finally:
            net.train(was_training)
        return out.float().clamp(-1, 1).cpu()
