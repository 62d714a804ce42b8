"""The discrete tokenizer: a conv encoder/decoder around a VQ (EMA codebook), FSQ or multi-scale
residual quantizer; its token grids are what the priors of the next stage (AR, MaskGIT, VAR) model."""
from engine.core.families import LOSS_PLOT, FamilySpec, PlotGroup

# codebook health, logged every training step (engine/families/vqvae/quantizers.py): the fraction
# of codes chosen in the recent window and the batch's code perplexity (effective codes in use)
USAGE_PLOT = PlotGroup("codebook_usage", "codebook usage (fraction of codes used recently)", ("codebook/usage",),
                       log=False)
PERPLEXITY_PLOT = PlotGroup("codebook_perplexity", "code perplexity (effective number of codes)",
                            ("codebook/perplexity",))
# VQGAN-lite (model.gan): the adaptive weight on the GAN loss (0 in the warm-up) and D's mean patch
# scores on real images and reconstructions
GAN_PLOT = PlotGroup("vqgan", "VQGAN: adaptive weight, discriminator scores", ("gan/",), log=False)

SPEC = FamilySpec(__name__, "vqvae", "VQ-VAE / FSQ tokenizer (discrete codes)", ".section:VQVAEConfig",
                  ".section:VQVAESampleOptions", ".model:VQVAEFamily", headline=("loss/recon", "codebook/usage"),
                  plots=(LOSS_PLOT, USAGE_PLOT, PERPLEXITY_PLOT, GAN_PLOT), order=35)
