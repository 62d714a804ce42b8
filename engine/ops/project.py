"""Encode an image into the model's latent space (projection for GANs, DDIM inversion for
diffusion), remember the latent for later walks and mixes, and render its reconstruction."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.family.interfaces import LatentModel
from engine.family.progress import Cancel, StageProgress, stage
from engine.ops.base import ModelSession, check_encode_steps
from engine.core.flags import request_field


@dataclass
class ProjectRequest:
    image: str
    out: str = request_field(output="file")
    cls: int | None = None
    encode_steps: int = 0            # 0: the family's default (projection 200, inversion = sampling steps)
    options: dict = field(default_factory=dict)


    def check(self) -> None:
        check_encode_steps(self.encode_steps)


@dataclass
class ProjectResult:
    path: str
    image: str


def encode_source(session: ModelSession, spec, labels, options, encode_steps: int, progress: StageProgress,
                  cancel: Cancel):
    """The latent of a seed or an image file (cached per session)."""
    fam = session.family
    steps = encode_steps or fam.default_encode_steps(options)
    return session.endpoints.latent(fam, spec, labels, encode_steps=steps, options=options,
                                    progress=stage(progress, f"encoding {Path(str(spec)).name}"), cancel=cancel)


def run(session: ModelSession, req: ProjectRequest, progress: StageProgress, cancel: Cancel) -> ProjectResult:
    from engine.family.grid import make_grid, save_png
    session.require(LatentModel, "has no latent space to project images into")
    fam = session.family
    options = fam.sample_options(req.options)
    labels = session.labels(req.cls)
    lat = encode_source(session, req.image, labels, options, req.encode_steps, progress, cancel)
    img = fam.decode_latents(lat, labels, options=options, cancel=cancel)
    save_png(make_grid(img, 1), Path(req.out))
    return ProjectResult(req.out, req.image)
