"""The Detection table's cells: a score that sorts by number, and the Watermark column's reading."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableWidgetItem

from app.canvases.detection_report import score_text
from app.canvases.detection_watermark import SUSPICIOUS


class ScoreItem(QTableWidgetItem):
    """A score cell that sorts by number (missing scores last)."""

    def __init__(self, score):
        super().__init__(score_text(score))
        self.score = score

    def __lt__(self, other):
        a = self.score if self.score is not None else float("inf")
        b = getattr(other, "score", None)
        return a < (b if b is not None else float("inf"))


def verified_item(ev: dict | None) -> ScoreItem:
    """The Watermark column's cell: the verify's p-value and verdict ("—": not verified)."""
    item = ScoreItem(ev.get("p_value") if ev else None)
    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    if ev is None:
        item.setToolTip("not verified (Verify all, or select it and Verify)")
        return item
    verdict = ev.get("verdict", "")
    item.setText(f"{item.text()} {verdict}".strip())   # a reading without an expected message has no verdict
    if verdict in ("marked", "weakened"):
        item.setForeground(SUSPICIOUS)
    ring = ev.get("ring") or {}
    item.setToolTip(f"{ev.get('method', '')}: p = {score_text(ev.get('p_value'))}, {verdict}" +
                    (f" (key “{ring.get('key', '')}”, distance {ev['distance']:.3f})"
                     if ev.get("distance") is not None else ""))
    return item
