"""Writing a run's training artifacts (the family's list: Family.training_artifacts): each drawn
and written as <its folder>/step_NNNNNN.png at every grid interval, on "sample now" and at the end,
and step 0's from the weights the run started with, drawn after the first loss point so that a slow
grid never holds the first point back. Rank 0 alone draws."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from engine.core import protocol
from engine.family.artifacts import ArtifactContext
from engine.family.grid import save_png
from engine.runs.rundir import RunDir

Emit = Callable[[dict], None]


class ArtifactWriter:
    def __init__(self, family, rd: RunDir, sampling, data, heldout, emit: Emit):
        self.family, self.rd, self.emit = family, rd, emit
        self.sampling, self.data, self.heldout = sampling, data, heldout
        self.artifacts = family.training_artifacts()
        self._initial_weights: dict | None = None

    def declare(self) -> None:
        """Record the artifacts this run writes (artifacts.json), for the GUI and the runs browser."""
        self.rd.write_artifacts([a.spec for a in self.artifacts])

    def write(self, step: int) -> dict[str, Path]:
        """Draw and write every artifact of this step; one "sample" event names them all (`path`:
        the sample grid, `artifacts`: key -> path)."""
        ctx = ArtifactContext(step, self.sampling, self.data, self.heldout)
        paths = {}
        for artifact in self.artifacts:
            path = self.rd.artifact_path(artifact.spec, step)
            path.parent.mkdir(parents=True, exist_ok=True)
            save_png(artifact.render(self.family, ctx), path)
            paths[artifact.spec.key] = path
        self.emit(protocol.event("sample", step=step, path=str(self.rd.sample_path(step)),
                                 artifacts={k: str(p) for k, p in paths.items()}))
        return paths

    def keep_initial_weights(self) -> None:
        """The weights step 0's artifacts are drawn from, kept until they are (after the first step)."""
        nets = self.family.nets(use_ema=True)
        self._initial_weights = {k: v.detach().clone() for k, v in nets.state_dict().items()}

    def write_initial(self) -> None:
        """Step 0's artifacts from the kept weights, the current ones put back afterwards."""
        nets = self.family.nets(use_ema=True)
        now = {k: v.detach().clone() for k, v in nets.state_dict().items()}
        nets.load_state_dict(self._initial_weights)
        try:
            self.write(0)
        finally:
            nets.load_state_dict(now)
            self._initial_weights = None
