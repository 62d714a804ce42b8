"""Inpainting's model-free parts, light enough for the GUI to import (numpy and OpenCV, no torch):
which region of a large image the model works on (geometry), the classical fills that need no
model (classical) and the feathered composite back into the full image (composite). The
diffusion methods are in engine/diffusion/inpaint.py; the operation that ties them together is
engine/ops/inpaint.py."""
from __future__ import annotations

from engine.core.capabilities import InpaintMethod

# OpenCV's fast-marching (Telea 2004) and Navier-Stokes fills: offered with or without a model (a
# model's own methods come in its capabilities, engine/family/interfaces.Inpainter)
CLASSICAL = (
    InpaintMethod("telea", "Telea (OpenCV, no model)",
                  "OpenCV's fast-marching fill (Telea 2004): smooth and quick, for small holes; needs no model."),
    InpaintMethod("ns", "Navier-Stokes (OpenCV, no model)",
                  "OpenCV's Navier-Stokes fill (Bertalmio et al. 2001): carries edges into the hole; needs no model."),
)
CLASSICAL_METHODS = tuple(m.name for m in CLASSICAL)
MASK_CONVENTION = "white = regenerate, black = keep"


def channels_note(image_channels: int, model_channels: int) -> str:
    """What a model's fill does to an image of another colour mode, or '' when they match (the
    canvas says it before running, the operation in its result's note)."""
    if model_channels == 1 and image_channels > 1:
        return ("the model works in greyscale: inside the mask its fill gives the light and shade and the colour "
                "comes from around the mask; every pixel away from the mask keeps its colour")
    if model_channels > 1 and image_channels == 1:
        return "the model works in colour: its fill is turned to grey, and the image stays greyscale"
    return ""
