"""The canvases, as one list: each is a module (a Canvas subclass) and one CanvasSpec line. The
list drives the window's tabs, `genlab --tab`, which tabs a checkpoint enables (by the capability
record a canvas needs) and who hears about a new checkpoint."""
from __future__ import annotations

from dataclasses import dataclass

from engine.core.registry import load_object


@dataclass(frozen=True)
class CanvasSpec:
    key: str          # for --tab and settings
    title: str        # the tab's title
    impl: str         # "app.canvases.sampling:SamplingCanvas", imported when the window is built
    needs: str = ""   # the Capabilities record it needs ("latent", "style_mix", …); "" = any model
    why: str = ""     # the tooltip of its tab when the loaded model lacks it

    def canvas_class(self) -> type:
        return load_object(self.impl)


CANVASES: list[CanvasSpec] = [
    CanvasSpec("sample", "Sample", "app.canvases.sampling:SamplingCanvas"),
    CanvasSpec("style-mixing", "Style mixing", "app.canvases.style_mixing:StyleMixCanvas", needs="style_mix",
               why="needs a model with per-layer styles (a style-based generator)"),
    CanvasSpec("interpolate", "Interpolate", "app.canvases.interpolation:InterpolationCanvas", needs="latent",
               why="needs a model with a latent space to walk through"),
    # always on: OpenCV's classical fills need no model; a checkpoint adds its own methods
    CanvasSpec("inpaint", "Inpainting", "app.canvases.inpainting:InpaintingCanvas"),
    # always on: the forensic checks and watermarks need no model
    CanvasSpec("detection", "Detection", "app.canvases.detection:DetectionCanvas"),
]

# the window's tabs in order: the Train tab, the runs browser, then one per canvas
PANEL_TABS = {"train": "Train", "runs": "Runs"}
TAB_KEYS = (*PANEL_TABS, *(c.key for c in CANVASES))
TAB_TITLES = {**PANEL_TABS, **{c.key: c.title for c in CANVASES}}
