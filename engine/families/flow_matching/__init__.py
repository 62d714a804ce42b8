"""Flow matching / rectified flow: a UNet trained to predict the velocity eps - x0 along the straight
path x_t = (1 - t)·x0 + t·eps, sampled by integrating the ODE from t = 1 (noise) to t = 0 with any
registered solver; classifier-free guidance, ODE inversion for latent walks, diffusion inpainting.
Reflow (model.reflow): a child of a flow_matching run trained on its parent's (noise, sample) pairs."""
from engine.core.capabilities import InpaintMethod
from engine.core.families import LOSS_PLOT, FamilySpec, PlotGroup

# reflow runs: Liu et al.'s straightness of the child (live) and of its parent (at the start); 0 = straight paths
STRAIGHTNESS_PLOT = PlotGroup("straightness", "straightness (0 = straight paths: one Euler step is exact)",
                              ("reflow/straightness", "reflow/straightness_parent"))

SPEC = FamilySpec(__name__, "flow_matching", "Flow matching (rectified flow)", ".section:FlowMatchingConfig",
                  ".section:FlowMatchingSampleOptions", ".model:FlowMatchingFamily", headline=("loss/flow",),
                  plots=(LOSS_PLOT, STRAIGHTNESS_PLOT), order=12, inpaint_methods=(
                      # engine/diffusion/inpaint.py's two ways of imposing the known part on the chain
                      InpaintMethod("repaint", "RePaint (resampling)",
                                    "RePaint (Lugmayr et al. 2022): re-noises and denoises again so the fill fits "
                                    "its surroundings; slower by the resampling count."),
                      InpaintMethod("blend", "Per-step blending",
                                    "Imposes the noised original on the known part after every step: fast; the "
                                    "fill may fit its surroundings less well.")))
