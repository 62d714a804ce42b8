"""What continuous-time diffusion families share once trained: sampling over their own noise levels
with any registered solver, classifier-free guidance, the latent space of deterministic sampling
(x_T, reached from images by ODE inversion) and inpainting through engine/diffusion/inpaint.py.

A subclass (engine/families/flow_matching, engine/families/edm) builds its network as
`self.networks["unet"]` (fn(x, time, labels)), says which levels it walks (`noise_levels`), how the
network's output reads at a level (`prediction`, or `denoiser_for` for more) and how a level's cond
is scaled for the network (`time_scale`), and writes its own training_step.
"""
from __future__ import annotations

from typing import Callable

import torch

from engine.diffusion.denoise import Denoiser, denoise, invert
from engine.diffusion.inpaint import inpaint_diffusion
from engine.diffusion.levels import NoiseLevels
from engine.diffusion.solvers import Solver, build_solver
from engine.family.base import Family
from engine.family.interfaces import Conditional, Inpainter, IterativeSampler, LatentModel
from engine.family.noise import STEP_NOISE_SEED_OFFSET, RowGenerators, seeded_rows

# the solver of latent walks and inversion: deterministic, and the one solver that runs backwards
LATENT_SOLVER = "ddim"


class DiffusionFamily(Family, Conditional, IterativeSampler, LatentModel, Inpainter):
    prediction = "flow"          # engine/diffusion/denoise.py PREDICTIONS
    time_scale = 1.0             # the network sees cond · time_scale (its sinusoidal embedding's range)
    latent_space, latent_title, encode_method = "noise", "x_T (ODE noise)", "ode-inversion"
    inpaint_options = "engine.inpainting.options:DiffusionInpaintOptions"

    def setup_labels(self, class_conditional: bool) -> None:
        """num_classes (0: unconditional) and whether guidance applies; the label num_classes is
        "no class", the token label dropout trains for classifier-free guidance."""
        self.num_classes = len(self.class_names) if (class_conditional and len(self.class_names) > 1) else 0
        self.guidance = self.num_classes > 0

    # ---- to implement --------------------------------------------------------------------------
    def noise_levels(self) -> NoiseLevels:
        raise NotImplementedError

    # inpainting's "fill" start: fn(image uint8 H×W×C, mask float H×W) -> uint8 H×W×C, e.g.
    # staticmethod(engine.inpainting.classical.classical_fill), set by the family (this layer cannot import it)
    hole_fill: Callable | None = None

    def prefill(self, known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The images ((N, C, H, W) in [-1, 1]) with their holes pre-filled by `hole_fill`, so a
        strength below 1 keeps the fill's rough colours."""
        if self.hole_fill is None:
            raise ValueError(f"a {self.name} model has no fill for inpainting's 'fill' start")
        n = known.shape[0]
        u8 = ((known.permute(0, 2, 3, 1).cpu().numpy() + 1) * 127.5).round().clip(0, 255).astype("uint8")
        hole = mask.expand(n, 1, *mask.shape[2:]).cpu().numpy()[:, 0]
        filled = [self.hole_fill(u8[i], hole[i]) for i in range(n)]
        return torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 127.5 - 1 for f in filled])

    # ---- labels ------------------------------------------------------------------------------------
    def null_label(self) -> int | None:
        return self.num_classes

    def unlabelled(self, n: int) -> None:
        return None  # labels=None samples unconditionally

    def dropped_labels(self, labels: torch.Tensor, generator: torch.Generator, p: float) -> torch.Tensor | None:
        """A training batch's labels with each replaced by the null label with probability p (None
        for an unconditional model)."""
        if not self.num_classes:
            return None
        drop = torch.rand(labels.shape[0], generator=generator, device=labels.device) < p
        return torch.where(drop, torch.full_like(labels, self.num_classes), labels)

    # ---- the network at a level --------------------------------------------------------------------
    def network_fn(self, net, labels: torch.Tensor | None, guidance_scale: float) -> Callable:
        """fn(x, cond) of the network with the level's cond scaled for it and classifier-free
        guidance folded in (one batched pass for the conditional and unconditional outputs)."""
        scale = self.time_scale
        # all "no class": the unconditional output itself (guiding it toward itself changes nothing)
        if labels is None or not self.num_classes or bool((labels == self.num_classes).all()):
            return lambda x, c: net(x, c * scale, None)
        if guidance_scale == 1.0:
            return lambda x, c: net(x, c * scale, labels)
        null = torch.full_like(labels, self.num_classes)

        def fn(x, c):
            out_c, out_u = net(torch.cat([x, x]), torch.cat([c, c]) * scale, torch.cat([labels, null])).chunk(2)
            return out_u + guidance_scale * (out_c - out_u)
        return fn

    def denoiser_for(self, fn: Callable) -> Denoiser:
        """The network fn(x, cond) as a Denoiser (x̂0 and ε̂ at a level)."""
        return Denoiser(fn, prediction=self.prediction)

    def denoiser(self, net, labels, guidance_scale: float) -> Denoiser:
        return self.denoiser_for(self.network_fn(net, labels, float(guidance_scale)))

    def solver(self, options, sampler: str | None = None) -> Solver:
        return build_solver(sampler or options.sampler, self.noise_levels(), lenient=True)

    # ---- sampling ----------------------------------------------------------------------------------
    def _with_net(self, use_ema: bool, work: Callable):
        net = self.nets(use_ema)["unet"]
        was_training = net.training
        net.eval()
        try:
            return work(net)
        finally:
            net.train(was_training)

    @torch.no_grad()
    def _run(self, z: torch.Tensor, labels, options, *, use_ema: bool, sampler: str, generator=None,
             progress=None, cancel=None) -> torch.Tensor:
        """Images from standard-normal z (B, C, H, W), scaled to the first level's prior."""
        solver = self.solver(options, sampler)
        x_T = solver.noise_levels.prior_std * z.to(self.device).float()
        lab = self.label_tensor(labels, z.shape[0])
        out = self._with_net(use_ema, lambda net: denoise(
            self.denoiser(net, lab, options.guidance_scale), solver, x_T, options.steps, generator=generator,
            progress=progress, cancel=cancel))
        return out.float().clamp(-1, 1).cpu()

    def network_evaluations(self, options=None) -> int:
        """The solver's network passes for the options' steps, two each under classifier-free
        guidance (batched into one call, but two images' worth of work)."""
        opts = self.sample_options(options)
        calls = self.solver(opts).network_evaluations(int(opts.steps))
        guided = self.num_classes > 0 and float(opts.guidance_scale) != 1.0
        return calls * (2 if guided else 1)

    def initial_noise(self, seeds: list[int]) -> torch.Tensor:
        """Standard-normal noise, one image per seed, drawn on the CPU (the same on every device)."""
        return seeded_rows(seeds, (self.channels, self.resolution, self.resolution))

    def generate(self, n, *, seed, labels, use_ema, options, progress, cancel) -> torch.Tensor:
        seeds = list(range(int(seed), int(seed) + n))
        step_noise = RowGenerators([s + STEP_NOISE_SEED_OFFSET for s in seeds], self.device)
        return self._run(self.initial_noise(seeds), labels, options, use_ema=use_ema, sampler=options.sampler,
                         generator=step_noise, progress=progress, cancel=cancel)

    # ---- the latent space: the noise of deterministic sampling -------------------------------------
    def seed_latents(self, seeds: list[int], labels=None, use_ema: bool = True) -> torch.Tensor:
        return self.initial_noise(seeds)

    def decode_latents(self, latents, labels=None, *, options=None, use_ema: bool = True, cancel=None,
                       differentiable: bool = False) -> torch.Tensor:
        """Deterministic Euler/DDIM sampling from each latent: the same noise, the same image."""
        opts = self.sample_options(options)
        return self._run(latents, labels, opts, use_ema=use_ema, sampler=LATENT_SOLVER, cancel=cancel)

    def default_encode_steps(self, options=None) -> int:
        return int(self.sample_options(options).steps)

    def encoding_key(self, options=None) -> tuple:
        opts = self.sample_options(options)
        return int(opts.steps), float(opts.guidance_scale)

    @torch.no_grad()
    def encode_images(self, images, labels=None, *, steps: int | None = None, options=None,
                      progress: Callable[[int, int], None] | None = None, cancel=None) -> torch.Tensor:
        """The ODE run backwards from images ((N, C, H, W) in [-1, 1]) to their standard-normal latents."""
        opts = self.sample_options(options)
        lab = self.label_tensor(labels, images.shape[0])
        solver = build_solver(LATENT_SOLVER, self.noise_levels())
        x_T = self._with_net(True, lambda net: invert(
            self.denoiser(net, lab, opts.guidance_scale), solver, images.to(self.device).float(),
            steps or self.default_encode_steps(opts), progress=progress, cancel=cancel))
        return (x_T / solver.noise_levels.prior_std).cpu()

    # ---- inpainting --------------------------------------------------------------------------------
    @torch.no_grad()
    def inpaint(self, images, mask, *, seeds, labels=None, options=None, inpaint_options=None, method=None,
                progress=None, cancel=None) -> torch.Tensor:
        """RePaint or per-step blending with the run's solver; image i starts from the noise of
        seeds[i] (plain sampling's), and the solver's and the re-noising's noise follow it too."""
        method = self.check_inpaint_method(method)
        opts = self.sample_options(options)
        ino = self.inpaint_options_for(inpaint_options)
        n = images.shape[0]
        if len(seeds) != n:
            raise ValueError(f"inpaint: {len(seeds)} seeds for {n} images")
        known = images.float().clamp(-1, 1)
        z = self.initial_noise([int(s) for s in seeds])
        x_init = self.prefill(known, mask) if ino.start == "fill" else known
        lab = self.label_tensor(labels, n)
        solver = self.solver(opts)
        dev = self.device
        out = self._with_net(True, lambda net: inpaint_diffusion(
            self.denoiser(net, lab, opts.guidance_scale), solver, known.to(dev), mask.to(dev), x_init.to(dev),
            opts.steps, method=method, jump=ino.jump, resample=ino.resample, strength=ino.strength,
            noise_init=z, noise_start=z if ino.start == "noise" else None,
            generator=RowGenerators([int(s) + STEP_NOISE_SEED_OFFSET for s in seeds], dev),
            merge_generator=RowGenerators([int(s) + 2 * STEP_NOISE_SEED_OFFSET for s in seeds], dev),
            progress=progress, cancel=cancel))
        return out.float().clamp(-1, 1).cpu()
