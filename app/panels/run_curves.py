"""The selected run's curves in the runs browser: one plot per plot group of the run's family (the
family registry's), then its sample-quality scores. A plot shows once it has points, so a run
that logs no quality passes shows no quality plot; another run clears them all."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter

from app.panels.plots_panel import LossPlot, MetricPlot
from engine.core.families import FAMILIES, LOSS_PLOT


class RunCurves(QSplitter):
    def __init__(self, parent=None):
        super().__init__(Qt.Vertical, parent)
        self.setChildrenCollapsible(False)
        self.plots: dict[str, LossPlot] = {}
        self.family: str | None = None
        self.quality_plot = MetricPlot()
        self.set_family("")

    def set_family(self, family: str) -> None:
        """One plot per plot group of this family (a family this GenLab does not know: its losses)."""
        if family == self.family:
            return
        self.family = family
        for plot in self.plots.values():
            plot.timer.stop()
            plot.hide()
            plot.setParent(None)
            plot.deleteLater()
        groups = FAMILIES.get(family).plots if family in FAMILIES else (LOSS_PLOT,)
        self.plots = {g.key: LossPlot(keys=g.keys, title=g.title, log=g.log) for g in groups}
        for i, plot in enumerate(self.plots.values()):
            self.insertWidget(i, plot)
            plot.setVisible(i == 0)
        self.addWidget(self.quality_plot)  # (moved to the end)
        self.quality_plot.hide()
        self._balance()

    def add_rows(self, rows: list[dict]) -> None:
        shown = self._shown()
        for plot in self.plots.values():
            plot.add_rows(rows)
            if plot.point_count():
                plot.show()
        self.quality_plot.add_rows(rows)
        self.quality_plot.setVisible(self.quality_plot.point_count() > 0)
        if shown != self._shown():
            self._balance()

    def clear(self) -> None:
        """Another run (or none): no curve of the one before stays, and only the first plot shows
        until the new run's rows come."""
        shown = self._shown()
        for i, plot in enumerate(self.plots.values()):
            plot.clear()
            plot.setVisible(i == 0)
        self.quality_plot.clear()
        self.quality_plot.hide()
        if shown != self._shown():
            self._balance()

    def _shown(self) -> list[bool]:
        return [self.widget(i).isVisibleTo(self) for i in range(self.count())]

    def _balance(self) -> None:
        """The first plot (the loss) gets 1.5 times the height of each other plot shown."""
        weights = [0 if not shown else 3 if i == 0 else 2 for i, shown in enumerate(self._shown())]
        total = max(self.height(), 400)
        self.setSizes([total * k // max(1, sum(weights)) for k in weights])
