"""The hierarchical VAE (VDVAE-lite): latent groups at several resolutions, KL per group."""
from engine.core.families import BPD_PLOT, KL_PLOT, LOSS_PLOT, FamilySpec

SPEC = FamilySpec(__name__, "hvae", "Hierarchical VAE (VDVAE-lite)", ".section:HVAEConfig",
                  ".section:HVAESampleOptions", ".model:HVAEFamily", headline=("loss/bpd", "loss/kl"),
                  plots=(LOSS_PLOT, KL_PLOT, BPD_PLOT), order=60)
