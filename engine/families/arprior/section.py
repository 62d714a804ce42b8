"""The AR prior's config: the [model] section (the parent tokenizer, the causal transformer, label
dropout) and its sampling options (temperature, top-k, top-p)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.core.flags import Flag
from engine.core.parents import default_parent_field, parent_field
from engine.core.schema import ConfigError, Section, opt
from engine.core.sections import SamplingSection, family_field
from engine.families.arprior import SPEC


@dataclass
class ARPriorConfig(Section):
    family: str = family_field(SPEC)
    parent: str = parent_field()
    default_parent_preset: str = default_parent_field()
    width: int = opt(128, "Width of the transformer.", min=8, max=2048)
    depth: int = opt(4, "Transformer blocks.", min=1, max=48)
    heads: int = opt(4, "Attention heads (width must be divisible by them).", min=1, max=64)
    dropout: float = opt(0.1, "Dropout in attention and the MLPs.", min=0.0, max=0.9)
    class_conditional: bool = opt(True, "The first token is the class (when the dataset has more than one class); "
                                        "otherwise a start token.")
    label_dropout: float = opt(0.1, "Probability of training with the \"no class\" token instead of the label, so "
                                    "the model also samples unconditionally.", min=0.0, max=1.0)

    # the conformance suites give it a tiny vqvae parent (tests/conftest.py: tiny_parent)
    TINY: ClassVar[dict] = {"model": {"width": 16, "depth": 1, "heads": 2, "dropout": 0.0}}

    def check(self, where: str, run) -> None:
        if self.width % self.heads:
            raise ConfigError(f"{where}.width = {self.width} must be divisible by {where}.heads = {self.heads}")


@dataclass
class ARPriorSampleOptions(SamplingSection):
    temperature: float = opt(1.0, "Temperature of the token draws (below 1: more typical tokens).",
                             min=0.05, max=2.0, slider=True, decimals=2,
                             flag=Flag("--temperature", "token sampling temperature (default: the run's)"))
    top_k: int = opt(0, "Draw only among the k most likely codes (0 = all).", min=0, max=65536,
                     flag=Flag("--top-k", "draw among the k most likely tokens, 0 = all (default: the run's)"))
    top_p: float = opt(1.0, "Nucleus sampling: draw only among the most likely codes that together hold this "
                            "probability (1 = all).", min=0.01, max=1.0, decimals=2,
                            flag=Flag("--top-p", "nucleus sampling: the most likely tokens holding this "
                                                 "probability (default: the run's)"))
    guidance_scale: float = opt(1.0, "Classifier-free guidance scale on the logits (1 = off; needs class "
                                     "conditioning trained with label dropout).", min=0.0, max=50.0,
                                requires="conditional.guidance", decimals=2,
                                flag=Flag("--guidance", "classifier-free guidance scale"))
