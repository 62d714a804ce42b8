"""DDIM inversion of a trained diffusion model, whatever its noise levels: images x0 -> the x_T that
deterministic sampling turns back into them, and that sampling, x_T -> x0, at a chosen number of
steps and without guidance (the unconditional prediction, or the conditional one for given labels).

It adds no sampler. Both directions are the family's own latent pair (LatentModel.encode_images and
decode_latents), which walk the "ddim" solver at eta 0 (the Euler step of the probability-flow ODE)
over the family's levels, forwards through engine.diffusion.denoise.denoise and backwards through
engine.diffusion.denoise.invert: DDPM's discrete schedule, EDM's sigma, flow matching's t, latent
diffusion's latents behind its VAE. What this module adds is the settings both directions must share
(the same steps, guidance scale 1, the run's spacing) and one clear refusal for models without such
a latent (a GAN's z cannot be reached by running an ODE backwards)."""
from __future__ import annotations

import torch

from engine.family.interfaces import LatentModel
from engine.family.progress import Cancel, Progress

NOISE_LATENT = "noise"     # LatentModel.latent_space of the diffusion families: the x_T of deterministic sampling


def is_invertible(family) -> bool:
    """Whether `family` has a deterministic sampler from noise that runs backwards (a diffusion or
    flow-matching model)."""
    return isinstance(family, LatentModel) and family.latent_space == NOISE_LATENT


def require_invertible(family, where: str = "the checkpoint") -> None:
    """A ValueError naming `where` unless `family` is invertible."""
    if not is_invertible(family):
        raise ValueError(f"{where}: a {family.name} model has no deterministic sampler to invert; "
                         f"DDIM inversion needs a diffusion checkpoint (ddpm, edm, flow_matching, ldm)")


def inversion_options(family, steps: int):
    """The sample options both directions use: the run's, with `steps` steps and guidance scale 1
    (inversion under classifier-free guidance drifts: Mokady et al. 2023)."""
    if int(steps) < 1:
        raise ValueError(f"DDIM inversion: steps must be >= 1, got {steps}")
    return family.sample_options(steps=int(steps), guidance_scale=1.0)


@torch.no_grad()
def invert_images(family, images: torch.Tensor, steps: int, *, labels=None, progress: Progress | None = None,
                  cancel: Cancel | None = None) -> torch.Tensor:
    """x_T (N, *latent shape) of images (N, C, H, W) in [-1, 1] at the model's resolution: deterministic
    DDIM run backwards over `steps` steps (standard-normal scale: what seed_latents draws)."""
    require_invertible(family)
    return family.encode_images(images.float(), labels, steps=int(steps), options=inversion_options(family, steps),
                                progress=progress, cancel=cancel)


@torch.no_grad()
def reconstruct(family, x_T: torch.Tensor, steps: int, *, labels=None, cancel: Cancel | None = None) -> torch.Tensor:
    """Images (N, C, H, W) in [-1, 1] (CPU) from x_T by deterministic DDIM over `steps` steps: the
    forward direction of invert_images."""
    require_invertible(family)
    return family.decode_latents(x_T, labels, options=inversion_options(family, steps), use_ema=True, cancel=cancel)


def round_trip(family, images: torch.Tensor, steps: int, *, labels=None, progress: Progress | None = None,
               cancel: Cancel | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_T, recon(x_T)) of images: what DIRE compares an image with."""
    x_T = invert_images(family, images, steps, labels=labels, progress=progress, cancel=cancel)
    return x_T, reconstruct(family, x_T, steps, labels=labels, cancel=cancel)
