"""Gated PixelCNN: an autoregressive model with exact bits/dim, and raster-order inpainting."""
from engine.core.capabilities import InpaintMethod
from engine.core.families import BPD_PLOT, LOSS_PLOT, FamilySpec

SPEC = FamilySpec(__name__, "pixelcnn", "Gated PixelCNN (autoregressive)", ".section:PixelCNNConfig",
                  ".section:PixelCNNSampleOptions", ".model:PixelCNNFamily", headline=("loss/bpd",),
                  plots=(LOSS_PLOT, BPD_PLOT), order=50, inpaint_methods=(
                      InpaintMethod("raster completion", "Raster-order completion (PixelCNN)",
                                    "Draws the masked pixels in raster order, each given the pixels before it: "
                                    "known pixels below the hole cannot inform it."),))
