"""DDPM: eps / x0 / v-prediction diffusion on a UNet, any registered solver, classifier-free guidance,
DDIM inversion for latent walks, RePaint and blended inpainting."""
from engine.core.capabilities import InpaintMethod
from engine.core.families import FamilySpec

SPEC = FamilySpec(__name__, "ddpm", "DDPM (diffusion)", ".section:DDPMConfig", ".section:DDPMSampleOptions",
                  ".model:DDPMFamily", headline=("loss/mse",), order=10, inpaint_methods=(
                      # engine/diffusion/inpaint.py's two ways of imposing the known part on the chain
                      InpaintMethod("repaint", "RePaint (resampling)",
                                    "RePaint (Lugmayr et al. 2022): re-noises and denoises again so the fill fits "
                                    "its surroundings; slower by the resampling count."),
                      InpaintMethod("blend", "Per-step blending",
                                    "Imposes the noised original on the known part after every step: fast; the "
                                    "fill may fit its surroundings less well.")))
