"""Where the standard FID Inception weight file may be, in one place for the engine (which loads
it) and the GUI (whose Settings dialog shows whether it is found). Light: no torch. GenLab never
downloads it: the path given (metrics.inception_weights), $GENLAB_INCEPTION, then torch hub's
checkpoint cache."""
from __future__ import annotations

import os
from pathlib import Path

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"


def candidate_paths(user_path: str | None = None) -> list[Path]:
    """Where the weight file may be: the path given, $GENLAB_INCEPTION, torch hub's checkpoint cache."""
    out = []
    for p in (user_path, os.environ.get("GENLAB_INCEPTION")):
        if p:
            out.append(Path(p).expanduser())
    hub = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    out.append(Path(hub) / "hub" / "checkpoints" / WEIGHTS_NAME)
    return out
