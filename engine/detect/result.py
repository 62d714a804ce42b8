"""What a check returns: a score, the evidence (a map over the image or a plot) and one sentence."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Plot:
    """Curves over one x axis (the canvas draws them; --json carries them)."""
    x: list[float]
    series: dict[str, list[float]]
    x_label: str = ""
    y_label: str = ""

    def to_json(self) -> dict:
        return {"x": self.x, "series": self.series, "x_label": self.x_label, "y_label": self.y_label}


@dataclass
class CheckResult:
    check: str
    score: float
    explanation: str                      # one sentence a person can read
    map: np.ndarray | None = None         # H x W float, the evidence over the image
    map_title: str = ""
    plot: Plot | None = None
    details: dict = field(default_factory=dict)   # JSON-able extras: top shift, bits, p-value

    def to_json(self) -> dict:
        """The JSON line's fields (the map is large: its shape and range only)."""
        from engine.core.detect_checks import CHECKS
        spec = CHECKS.get(self.check)
        out = {"check": self.check, "score": _num(self.score), "score_is": spec.score,
               "direction": spec.direction, "explanation": self.explanation, "details": self.details}
        if self.map is not None:
            out["map"] = {"title": self.map_title, "shape": list(self.map.shape),
                          "min": _num(np.min(self.map)), "max": _num(np.max(self.map))}
        if self.plot is not None:
            out["plot"] = self.plot.to_json()
        return out


def _num(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
