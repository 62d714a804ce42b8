"""Latent diffusion: DDPM-style diffusion on the latents of a trained VAE named as the parent
checkpoint (Rombach et al. 2022), class-conditional with classifier-free guidance; samples decode
through the parent."""
from engine.core.families import FamilySpec

SPEC = FamilySpec(__name__, "ldm", "Latent diffusion (on a VAE parent)", ".section:LDMConfig",
                  ".section:LDMSampleOptions", ".model:LDMFamily", headline=("loss/mse",), order=15)
