"""Inpainting's model-free parts, light enough for the GUI to import (numpy and OpenCV, no torch):
which region of a large image the model works on (geometry), the classical fills that need no
model (classical) and the feathered composite back into the full image (composite). The
diffusion methods are in engine/diffusion/inpaint.py; the operation that ties them together is
engine/ops/inpaint.py."""
from __future__ import annotations

CLASSICAL_METHODS = ("telea", "ns")        # OpenCV's fast-marching (Telea 2004) and Navier-Stokes fills
METHOD_TITLES = {"telea": "Telea (OpenCV, no model)", "ns": "Navier-Stokes (OpenCV, no model)",
                 "repaint": "RePaint (resampling)", "blend": "Per-step blending",
                 "raster completion": "Raster-order completion (PixelCNN)"}
MASK_CONVENTION = "white = regenerate, black = keep"
