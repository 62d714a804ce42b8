"""The VAE: β-VAE, conditional VAE and the IWAE bound, with Gaussian, logistic or Bernoulli pixels."""
from engine.core.families import BPD_PLOT, KL_PLOT, LOSS_PLOT, FamilySpec

SPEC = FamilySpec(__name__, "vae", "VAE (β-VAE, conditional, IWAE bound)", ".section:VAEConfig",
                  ".section:VAESampleOptions", ".model:VAEFamily", headline=("loss/recon", "loss/kl"),
                  plots=(LOSS_PLOT, KL_PLOT, BPD_PLOT), order=30)
