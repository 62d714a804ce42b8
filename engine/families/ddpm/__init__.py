"""DDPM: epsilon-prediction diffusion on a UNet, any registered solver, classifier-free guidance,
DDIM inversion for latent walks, RePaint and blended inpainting."""
from engine.core.families import FamilySpec

SPEC = FamilySpec(__name__, "ddpm", "DDPM (diffusion)", ".section:DDPMConfig", ".section:DDPMSampleOptions",
                  ".model:DDPMFamily", headline=("loss/mse",), order=10)
