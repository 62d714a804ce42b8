"""Gated PixelCNN's config: the [model] section (stacks, gated layers, output distribution) and its
sampling options (temperature)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.core.schema import ConfigError, Section, opt
from engine.core.sections import SamplingSection, family_field
from engine.families.pixelcnn import SPEC

PIXELCNN_OUTPUTS = ("softmax", "logistic_mixture")


@dataclass
class PixelCNNConfig(Section):
    family: str = family_field(SPEC)
    hidden_channels: int = opt(
        64, "Feature channels of each stack; more gives a better likelihood but slower training and sampling "
            "(for colour images it must be divisible by 3).", min=3, max=1024)
    layers: int = opt(
        8, "Gated layers (the first one included); each layer widens the region above and to the left that "
           "a pixel is predicted from.", min=1, max=64)
    kernel_size: int = opt(
        3, "Width of the gated layers' filters; bigger sees further per layer but costs more.",
        choices=(3, 5, 7))
    first_kernel_size: int = opt(
        7, "Width of the first layer's filter, which reads the image itself (the paper uses 7).",
        choices=(3, 5, 7), advanced=True)
    output: str = opt(
        "softmax", "softmax: a free 256-way distribution per sub-pixel; logistic_mixture: a few binned "
                   "logistics (PixelCNN++), smoother and with fewer outputs.", choices=PIXELCNN_OUTPUTS)
    mixture_components: int = opt(
        5, "Logistics in the mixture (only for output = logistic_mixture); more fit multi-peaked pixels better.",
        min=1, max=32)
    class_conditional: bool = opt(
        True, "Condition on class labels (when the dataset has more than one class), so you can ask for a digit.")

    # the smallest sensible model, for the conformance suite: a few steps on 8x8 images in a second
    TINY: ClassVar[dict] = {"model": {"hidden_channels": 8, "layers": 2, "first_kernel_size": 3,
                                      "output": "logistic_mixture", "mixture_components": 2}}

    def check(self, where: str, run) -> None:
        if run is not None and run.data.color == "rgb" and self.hidden_channels % 3:
            raise ConfigError(f"{where}.hidden_channels = {self.hidden_channels} must be divisible by 3 for "
                              f"colour images (each colour channel gets its own share of the features)")


@dataclass
class PixelCNNSampleOptions(SamplingSection):
    temperature: float = opt(
        1.0, "1 samples the model as trained; lower gives cleaner, more typical images, higher more varied "
             "and noisier ones.", min=0.05, max=2.0, slider=True, decimals=2)
