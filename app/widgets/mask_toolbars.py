"""The mask editor's two toolbar rows (one row would overflow a canvas-sized editor): the brush
row holds the brush controls, the operations row the mask operations, history, view and files.
They only hold controls; MaskEditor (mask_editor.py) connects them and owns the state."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QActionGroup, QColor, QPixmap
from PySide6.QtWidgets import QLabel, QSlider, QSpinBox, QToolBar, QToolButton

from app.qt_util import signals_blocked

MAX_BRUSH = 1024


class BrushBar(QToolBar):
    """Brush or eraser, brush size, edge hardness, overlay opacity and colour. The editor shows its
    values here with show_*, signals blocked: showing a value is not a change."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setToolButtonStyle(Qt.ToolButtonTextOnly)
        group = QActionGroup(self)
        self.brush_action = self.addAction("Brush")
        self.eraser_action = self.addAction("Eraser")
        for a, tip in ((self.brush_action, "Paint the region to regenerate (B)"),
                       (self.eraser_action, "Erase back to keep (E)")):
            a.setCheckable(True)
            a.setToolTip(tip)
            group.addAction(a)
        self.brush_action.setChecked(True)
        self.size_spin = QSpinBox()
        self.size_spin.setRange(1, MAX_BRUSH)
        self.size_spin.setSuffix(" px")
        self.size_spin.setToolTip("Brush diameter in image pixels ([ and ] resize)")
        self.addWidget(self.size_spin)
        self.hardness_slider = self._slider("hardness", "Edge hardness: below 100 % paints soft grey edges")
        self.opacity_slider = self._slider("overlay", "Overlay opacity (display only)")
        self.color_button = QToolButton()
        self.color_button.setToolTip("Overlay colour")
        self.addWidget(self.color_button)

    def _slider(self, label: str, tip: str) -> QSlider:
        """A labelled 0..100 slider (a percentage)."""
        s = QSlider(Qt.Horizontal)
        s.setRange(0, 100)
        s.setFixedWidth(70)
        s.setToolTip(tip)
        lab = QLabel(label)
        lab.setToolTip(tip)
        self.addWidget(lab)
        self.addWidget(s)
        return s

    def show_eraser(self, on: bool) -> None:
        (self.eraser_action if on else self.brush_action).setChecked(True)

    def show_size(self, px: int) -> None:
        with signals_blocked(self.size_spin):
            self.size_spin.setValue(px)

    def show_hardness(self, hardness: float) -> None:
        with signals_blocked(self.hardness_slider):
            self.hardness_slider.setValue(round(hardness * 100))

    def show_opacity(self, opacity: float) -> None:
        with signals_blocked(self.opacity_slider):
            self.opacity_slider.setValue(round(opacity * 100))

    def show_color(self, color: QColor) -> None:
        pm = QPixmap(16, 16)
        pm.fill(color)
        self.color_button.setIcon(pm)


class MaskOpsBar(QToolBar):
    """Invert, clear, fill; undo and redo; fit; load and save a mask, each calling the editor."""

    def __init__(self, editor, parent=None):
        super().__init__(parent)
        self.setToolButtonStyle(Qt.ToolButtonTextOnly)
        for text, slot, tip in (("Invert", editor.invert, "Swap regenerate and keep"),
                                ("Clear", editor.clear, "Keep everything (all black)"),
                                ("Fill", editor.fill, "Regenerate everything (all white)")):
            self.addAction(text, slot).setToolTip(tip)
        self.addSeparator()
        self.undo_action = self.addAction("Undo", editor.undo)
        self.undo_action.setToolTip("Undo (Ctrl+Z)")
        self.redo_action = self.addAction("Redo", editor.redo)
        self.redo_action.setToolTip("Redo (Ctrl+Shift+Z, Ctrl+Y)")
        self.addAction("Fit", editor.fit_to_window).setToolTip("Fit the image to the view (Ctrl+0); "
                                                               "Ctrl+wheel zooms, space+drag or middle drag pans")
        self.addSeparator()
        self.addAction("Load mask…", editor.load_mask_dialog).setToolTip("Load a mask image (white = regenerate)")
        self.addAction("Save mask…", editor.save_mask_dialog).setToolTip("Save the mask as PNG (white = regenerate)")

    def show_history(self, can_undo: bool, can_redo: bool) -> None:
        self.undo_action.setEnabled(can_undo)
        self.redo_action.setEnabled(can_redo)
