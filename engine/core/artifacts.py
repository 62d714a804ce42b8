"""Training artifacts: the previews a run writes at every grid interval (light: no torch, the GUI
reads these). A family declares which it writes (Family.training_artifacts, engine/family/
artifacts.py draws them); the loop writes each as <folder>/step_NNNNNN.png in the run directory and
records the declared list in artifacts.json when the run starts, and the Train tab and the runs
browser show whatever a run declares. Nothing outside this module and the family that declares
one names an artifact.

Adding an artifact: an ArtifactSpec here (or in the family's folder) and a TrainingArtifact
subclass that draws it (engine/family/artifacts.py)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from engine.core.registry import Registry

ARTIFACTS_FILE = "artifacts.json"


@dataclass(frozen=True)
class ArtifactSpec:
    key: str              # "samples", "recon"
    title: str            # how a picker names it: "samples", "reconstructions"
    folder: str           # where its PNGs go in the run directory (step_000500.png each)
    caption: str          # under the image; {step} is the step
    empty: str = ""       # shown while a run has none yet
    stretch: int = 1      # its share of the height where several are shown one above the other

    def caption_at(self, step: int | None) -> str:
        return self.caption.format(step="?" if step is None else step)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ArtifactSpec | None":
        """From artifacts.json; None when it lacks a key or folder (unknown fields are ignored)."""
        if not isinstance(d, dict) or not isinstance(d.get("key"), str) or not isinstance(d.get("folder"), str):
            return None
        types = {f.name: (int if f.type in (int, "int") else str) for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in types and type(v) is types[k]}
        return cls(**{"title": d["key"], "caption": d["key"] + ", step {step}", **values})


ARTIFACTS: Registry[ArtifactSpec] = Registry("training artifact")


def register_artifact(spec: ArtifactSpec) -> ArtifactSpec:
    return ARTIFACTS.register(spec.key, spec)


SAMPLES = register_artifact(ArtifactSpec(
    "samples", "samples", "samples", "samples at step {step}", stretch=3,
    empty="Sample grids appear here while training (fixed seed, every N steps)."))
RECONSTRUCTIONS = register_artifact(ArtifactSpec(
    "recon", "reconstructions", "samples/recon",
    "held-out images (top) and their reconstructions (bottom), step {step}"))
