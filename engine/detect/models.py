"""GenLab checkpoints the model-based checks look through (a likelihood model for `zeroshot`, an
autoencoder for `aeroblade`): loaded with the family/checkpoint API the sampler uses (safetensors +
JSON, never a pickle), refused in one line when the checkpoint's family lacks what the check needs.
Images reach them by engine/detect/model_input.py's rule, as they reach DIRE's."""
from __future__ import annotations

from pathlib import Path


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
