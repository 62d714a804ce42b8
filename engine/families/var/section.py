"""VAR's config: the [model] section (the parent tokenizer, the transformer's size, class
conditioning) and its sampling options (temperature, top-k, top-p, guidance)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.core.flags import Flag
from engine.core.parents import default_parent_field, parent_field
from engine.core.schema import ConfigError, Section, opt
from engine.core.sections import SamplingSection, family_field
from engine.families.var import SPEC


@dataclass
class VARConfig(Section):
    family: str = family_field(SPEC)
    parent: str = parent_field()
    default_parent_preset: str = default_parent_field()
    width: int = opt(128, "Width of the transformer (its token vectors).", min=8, max=4096, group="Networks")
    depth: int = opt(4, "Transformer blocks.", min=1, max=48)
    heads: int = opt(4, "Attention heads (width must be divisible by heads).", min=1, max=64)
    mlp_ratio: float = opt(4.0, "Hidden width of each block's MLP, as a multiple of width.", min=0.5, max=16.0,
                           advanced=True)
    dropout: float = opt(0.0, "Dropout on attention weights and MLP outputs.", min=0.0, max=0.9)
    class_conditional: bool = opt(True, "Condition on class labels (when the dataset has more than one class): the "
                                        "start token is the class's embedding.")
    label_dropout: float = opt(0.1, "Probability of dropping the label while training (enables classifier-free "
                                    "guidance).", min=0.0, max=1.0)

    # the conformance suites give it a tiny parent (tests/conftest.py: tiny_parent), with this
    # overlay on the parent family's own TINY: VAR needs the multi-scale residual quantizer
    TINY: ClassVar[dict] = {"model": {"width": 16, "depth": 1, "heads": 2}}
    TINY_PARENT: ClassVar[dict] = {"model": {"quantizer": "msrq"}}

    def check(self, where: str, run) -> None:
        if self.width % self.heads:
            raise ConfigError(f"{where}.width = {self.width} must be divisible by {where}.heads = {self.heads}")


@dataclass
class VARSampleOptions(SamplingSection):
    temperature: float = opt(1.0, "Divides the logits before drawing each token: below 1 sharper, more typical "
                                  "images; above 1 more varied ones.", min=0.05, max=2.0, slider=True, decimals=2,
                             flag=Flag("--temperature", "token sampling temperature (default: the run's)"))
    top_k: int = opt(0, "Draw each token among the k most likely codes only; 0 = all codes.", min=0, max=65536,
                     flag=Flag("--top-k", "draw among the k most likely codes (0 = all)"))
    top_p: float = opt(1.0, "Nucleus sampling: draw among the most likely codes whose probabilities add up to p; "
                            "1 = all codes.", min=0.01, max=1.0, decimals=2,
                       flag=Flag("--top-p", "nucleus sampling mass (1 = all codes)"))
    guidance_scale: float = opt(1.5, "Classifier-free guidance scale on the logits (1 = off; needs class "
                                     "conditioning).", min=0.0, max=50.0, requires="conditional.guidance",
                                decimals=2, flag=Flag("--guidance", "classifier-free guidance scale"))
