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
