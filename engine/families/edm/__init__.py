"""EDM (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models"): a
preconditioned UNet denoiser trained at log-normal noise levels with EDM's loss weighting, sampled
over rho-spaced sigmas with Heun's method by default; classifier-free guidance, ODE inversion for
latent walks, diffusion inpainting."""
from engine.core.capabilities import InpaintMethod
from engine.core.families import FamilySpec

SPEC = FamilySpec(__name__, "edm", "EDM (Karras et al. diffusion)", ".section:EDMConfig", ".section:EDMSampleOptions",
                  ".model:EDMFamily", headline=("loss/edm",), order=14, inpaint_methods=(
                      # engine/diffusion/inpaint.py's two ways of imposing the known part on the chain
                      InpaintMethod("repaint", "RePaint (resampling)",
                                    "RePaint (Lugmayr et al. 2022): re-noises and denoises again so the fill fits "
                                    "its surroundings; slower by the resampling count."),
                      InpaintMethod("blend", "Per-step blending",
                                    "Imposes the noised original on the known part after every step: fast; the "
                                    "fill may fit its surroundings less well.")))
