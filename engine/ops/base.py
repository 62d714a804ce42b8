"""What every operation shares: typed requests parsed strictly from JSON (an unknown or mistyped
field is an error naming it), the progress and cancel callables, and the model session that
outlives one request (the loaded family and the latents of images encoded so far).

An operation is a module with a Request dataclass, a Result dataclass and
`run(session, request, progress, cancel) -> Result`; engine/ops/__init__.py lists them. The worker
and the CLI are thin adapters over the same functions."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.schema import coerce


def no_progress(stage: str, done: int, total: int) -> None:
    pass


def never() -> bool:
    return False


def check_scale(scale: int) -> None:
    """Upscaling of written images (nearest)."""
    if not 1 <= scale <= 16:
        raise ValueError(f"scale = {scale} must be between 1 and 16")


def check_encode_steps(steps: int) -> None:
    if steps < 0:
        raise ValueError(f"encode_steps = {steps} must be 0 (the model's default) or more")


def parse_request(cls: type, d: dict, op: str):
    """A request dataclass from a JSON object; unknown fields and wrong types are errors naming them."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ValueError(f"{op}: unknown field {unknown[0]!r}; its fields are: {', '.join(names)}")
    values = {k: coerce(v, hints[k], f"{op}.{k}") for k, v in d.items()}
    missing = [f.name for f in dataclasses.fields(cls)
               if f.name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{op}: the request is missing {missing[0]!r}")
    req = cls(**values)
    check = getattr(req, "check", None)
    if check is not None:
        check()
    return req


def result_fields(result) -> dict:
    """A result as event fields (paths as strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(result).items()}


@dataclass
class ModelSession:
    """A loaded checkpoint: the family (on its device), where it came from, and the latents of the
    images encoded for it so far (projection or inversion takes seconds; a later request reuses them)."""
    family: Any
    checkpoint: Path
    step: int
    config: Any
    endpoints: Any = field(default=None)

    def __post_init__(self):
        if self.endpoints is None:
            from engine.ops.latent_walk import EndpointCache
            self.endpoints = EndpointCache()

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "auto") -> "ModelSession":
        from engine.training.checkpoint import family_from_checkpoint
        family, ckpt = family_from_checkpoint(checkpoint, device)
        return cls(family, Path(checkpoint), ckpt.step, ckpt.config)

    def labels(self, cls: int | None):
        """Labels of latent work: class `cls`, or the family's default (None: unconditional)."""
        fam = self.family
        if cls is not None:
            return fam.labels_for(1, cls)
        return fam.latent_labels() if hasattr(fam, "latent_labels") else None

    def require(self, interface: type, what: str) -> None:
        if not isinstance(self.family, interface):
            raise ValueError(f"a {self.family.name} model {what}")
