"""The Train tab's images: one view per training artifact the watched run declares (its sample
grids, reconstructions, ...: engine/core/artifacts.py), each with its caption, stacked by their
stretch. It knows no artifact by name: the run's artifacts.json (through RunWatcher) says what to show."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.widgets.image_view import ImageView
from engine.core.artifacts import SAMPLES, ArtifactSpec


def step_of(path: str) -> int | None:
    """step_000500.png -> 500."""
    digits = Path(path).stem.replace("step_", "")
    return int(digits) if digits.isdigit() else None


class ArtifactView(QWidget):
    """One artifact: its newest image and caption. Hidden until it has an image, unless its spec
    has a placeholder to show meanwhile."""

    def __init__(self, spec: ArtifactSpec, parent=None):
        super().__init__(parent)
        self.spec = spec
        self.image = ImageView(spec.empty)
        self.caption = QLabel("")
        self.caption.setAlignment(Qt.AlignCenter)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.image, 1)
        lay.addWidget(self.caption)
        self.setVisible(bool(spec.empty))

    def show_image(self, path: str) -> None:
        if self.image.set_path(path):
            self.caption.setText(self.spec.caption_at(step_of(path)))
            self.show()

    def clear(self) -> None:
        self.image.clear()
        self.caption.setText("")
        self.setVisible(bool(self.spec.empty))


class ArtifactsPane(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.views: dict[str, ArtifactView] = {}
        self.set_specs([SAMPLES])   # before any run is watched: where sample grids will appear

    def set_specs(self, specs: list[ArtifactSpec]) -> None:
        """Show these artifacts (in order); views of artifacts already shown keep their image."""
        if [v.spec for v in self.views.values()] == list(specs):
            return
        old = self.views
        self.views = {}
        for view in old.values():
            self.layout_.removeWidget(view)
        for spec in specs:
            view = old.pop(spec.key, None)
            if view is None or view.spec != spec:
                if view is not None:
                    view.deleteLater()
                view = ArtifactView(spec, self)
            self.views[spec.key] = view
            self.layout_.addWidget(view, spec.stretch)
        for view in old.values():
            view.deleteLater()

    def show_image(self, key: str, path: str) -> None:
        view = self.views.get(key)
        if view is not None:
            view.show_image(path)

    def clear(self) -> None:
        for view in self.views.values():
            view.clear()
