"""The training artifacts a family draws (engine/core/artifacts.py has their light specs): the loop
asks the family for its list (Family.training_artifacts) and writes each at every grid interval,
at step 0 and on "sample now". A family that writes more (a token histogram, a denoising
trajectory) adds a TrainingArtifact subclass to the list it returns."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from PIL import Image

from engine.core.artifacts import RECONSTRUCTIONS, SAMPLES, ArtifactSpec
from engine.family.grid import make_grid, sample_grid_image


@dataclass
class ArtifactContext:
    """What an artifact may draw from: the run's [sampling] section (grid size and seed), the
    training images and the held-out ones (None when the run keeps none out)."""
    step: int
    sampling: Any
    data: Any
    heldout: Any = None

    @property
    def reference_images(self):
        """The images previews compare against: the held-out ones, else the training ones."""
        return self.heldout if self.heldout is not None else self.data


class TrainingArtifact:
    spec: ClassVar[ArtifactSpec]

    def render(self, family, ctx: ArtifactContext) -> Image.Image:
        raise NotImplementedError


class SampleGrid(TrainingArtifact):
    """The fixed-seed sample grid (EMA weights), one class per column for a conditional model."""
    spec = SAMPLES

    def render(self, family, ctx: ArtifactContext) -> Image.Image:
        s = ctx.sampling
        return sample_grid_image(family, s.grid_size, seed=s.seed, use_ema=True, options=s)


class Reconstructions(TrainingArtifact):
    """The first held-out images (training ones when the run keeps none out) over their
    reconstructions: the same images at every step, so a blurry or collapsed autoencoder shows at
    a glance and the grids compare over training. For a Reconstructor."""
    spec = RECONSTRUCTIONS
    images = 10   # one row of inputs over one row of their reconstructions

    def render(self, family, ctx: ArtifactContext) -> Image.Image:
        on = ctx.reference_images
        idx = torch.arange(min(self.images, len(on)))
        x = on.float_batch(idx)
        labels = on.labels[idx].tolist() if getattr(family, "num_classes", 0) else None
        rec = family.reconstruct(x, labels)
        return make_grid(torch.cat([x.cpu(), rec]), len(idx), scale=1)


def default_artifacts(family) -> list[TrainingArtifact]:
    """The sample grid, and what the family's interfaces add (reconstructions for a Reconstructor)."""
    from engine.family.interfaces import Reconstructor
    return [SampleGrid()] + ([Reconstructions()] if isinstance(family, Reconstructor) else [])
