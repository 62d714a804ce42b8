"""GANs: a DCGAN generator and StyleGAN-lite (mapping network, modulated convolutions, style mixing)
against one residual discriminator, with R1 / gradient penalties, path-length regularisation,
ADA and DiffAugment, and projection of images into the latent space."""
from engine.core.families import LOSS_PLOT, FamilySpec, PlotGroup

_PLOTS = (LOSS_PLOT, PlotGroup("gan", "D(real) / D(fake) / ADA p", ("gan/d_real", "gan/d_fake", "gan/ada_p"), log=False))

GAN_SPEC = FamilySpec(__name__, "gan", "GAN (DCGAN generator)", ".section:GANConfig", ".section:GANSampleOptions",
                      ".model:GANFamily", headline=("loss/D", "loss/G"), plots=_PLOTS, order=20)
STYLEGAN_SPEC = FamilySpec(__name__, "stylegan", "StyleGAN-lite", ".section:StyleGANConfig",
                           ".section:StyleGANSampleOptions", ".model:StyleGANFamily", headline=("loss/D", "loss/G"),
                           plots=_PLOTS, order=21)
SPECS = (GAN_SPEC, STYLEGAN_SPEC)
