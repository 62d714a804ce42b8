"""Inpainting options, drawn by the Inpainting canvas like the sample options: the settings every
method shares (how the image meets the model's resolution, the feathered edge) and the options of
the diffusion methods. A field's `methods` metadata lists the methods it applies to (none: all);
the canvas disables the others."""
from __future__ import annotations

from dataclasses import dataclass

from engine.inpainting.geometry import FITS
from engine.core.schema import Section, opt

STARTS = ("original", "noise", "fill")


@dataclass
class InpaintSettings(Section):
    fit: str = opt("resize", "How the image meets the model's resolution: the whole image resized, its central "
                             "square, or only the masked area (a square around the mask plus padding, worked at "
                             "the model's resolution and pasted back).", choices=FITS)
    padding: int = opt(8, "Only the masked area: pixels of context kept around the mask.", min=0, max=4096)
    feather: float = opt(1.0, "Mask blur, in the model's pixels: the mask's edge is softened this far each way, "
                              "both while generating and when pasting back, so no seam shows (0 = a hard edge).",
                         min=0.0, max=16.0, decimals=1)
    radius: float = opt(3.0, "Classical fills: how far around each pixel OpenCV looks (pixels of the image).",
                        min=1.0, max=64.0, decimals=1, methods=("telea", "ns"))


@dataclass
class DiffusionInpaintOptions(Section):
    jump: int = opt(0, "RePaint: after every `jump` steps, go this many steps back up (re-noise) and denoise "
                       "again. 0 = the paper's 10 steps in 250, scaled to the chain's steps (2 for 50 steps).",
                    min=0, max=1000, methods=("repaint",))
    resample: int = opt(10, "RePaint: how often each stretch is denoised in all (1 = no resampling; the time is "
                            "about this many times the steps). More harmonises the fill with its surroundings.",
                        min=1, max=100, methods=("repaint",))
    strength: float = opt(1.0, "How much of the masked part changes: 1 starts from pure noise; 0.5 starts halfway "
                               "down the chain from the noised start content, keeping its rough shapes.",
                          min=0.01, max=1.0, slider=True, decimals=2)
    start: str = opt("original", "What the masked part starts from before noising (matters for strength < 1): the "
                                 "original pixels, pure noise, or a classical fill of the hole.", choices=STARTS)
