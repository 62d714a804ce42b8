"""GenLab checkpoints the model-based checks look through (a likelihood model for `zeroshot`, an
autoencoder for `aeroblade`): loaded with the family/checkpoint API the sampler uses (safetensors +
JSON, never a pickle), refused in one line when the checkpoint's family lacks what the check needs,
and images brought to the model's size and colour by one rule."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def families_with(interface: type) -> list[str]:
    """The registered families whose class implements `interface` (for the refusal's sentence)."""
    from engine.core.families import FAMILIES
    return [name for name, spec in FAMILIES.items() if issubclass(spec.family_class(), interface)]


def load_family(path: str | Path, interface: type, what: str, check: str):
    """The family a checkpoint was trained as, its weights loaded, on the CPU. Raises ValueError in
    one line: a missing or unreadable checkpoint (CheckpointError), or a family without `interface`
    (`what` it lacks, in words; `check` the check that asked)."""
    from engine.family.base import family_class
    from engine.training.checkpoint import family_from_checkpoint, peek_checkpoint
    meta = peek_checkpoint(path).meta           # cheap: refuses a wrong family before reading the weights
    family = ((meta.get("config") or {}).get("model") or {}).get("family", "ddpm")
    if not issubclass(family_class(family), interface):
        raise ValueError(f"{path}: a {family} checkpoint has no {what}; the {check} check needs a checkpoint of "
                         f"{' or '.join(families_with(interface))}")
    fam, _ = family_from_checkpoint(path, "cpu")
    return fam


def model_input(image: np.ndarray, resolution: int, channels: int):
    """A uint8 H x W x 3 image as the model takes it: (1, channels, R, R) float in [-1, 1] on the
    8-bit grid. The one rule: the detectors' pipeline (engine/detect/pipeline.py), resized to R x R
    with bicubic resampling where it differs (the aspect ratio is not kept), then luminance (ITU-R
    601) for a one-channel model."""
    import torch

    from engine.detect.pipeline import ImagePipeline
    seen = ImagePipeline(int(resolution), "grayscale" if channels == 1 else "rgb").apply_one(image)
    x = torch.from_numpy(np.ascontiguousarray(seen[..., :channels])).permute(2, 0, 1).float() / 127.5 - 1.0
    return x.unsqueeze(0).contiguous()


def resized_words(image: np.ndarray, resolution: int) -> str:
    """'' when the model saw the image at its own size, else a clause saying it was resized."""
    h, w = image.shape[:2]
    return "" if (h, w) == (resolution, resolution) else f" (resized from {w}x{h} to the model's {resolution}x{resolution})"
