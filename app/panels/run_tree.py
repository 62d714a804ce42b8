"""The runs browser's list: a tree of folders, each holding its runs, one row per run with its
state, family, dataset, step, best quality score and a loss sparkline. Also how a run reads in
words (its best-score cell, its step, the header above its details), since the list and the
header say the same things.

It only shows RunSummary objects (engine/runs/index.py); the browser scans the folders."""
from __future__ import annotations

import html
import math
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeWidget, QTreeWidgetItem

from engine.core import metrics
from engine.core.logkeys import short
from engine.runs.index import RunSummary

COLUMNS = ("run", "state", "family", "dataset", "step", "best", "loss")
C_NAME, C_STATE, C_FAMILY, C_DATASET, C_STEP, C_BEST, C_LOSS = range(len(COLUMNS))
SPARK = QSize(84, 20)
# the run column's width: its longest name within these bounds (a longer one is cut at the left,
# keeping its time and its preset's name readable), until the person drags the column themselves
NAME_MIN, NAME_MAX = 160, 320
PATH_ROLE = Qt.UserRole
KIND_ROLE = Qt.UserRole + 1     # "folder" or "run"

STATE_COLORS = {"running": "#1e8449", "starting": "#1e8449", "paused": "#b9770e", "interrupted": "#ca6f1e",
                "failed": "#c0392b", "stopped": "#7d3c98", "finished": "#2e4053", "no status": "#7f8c8d"}


def metric_label(key: str) -> str:
    """'quality/fd_domain' -> 'FD-domain' (GenLab's own features), 'quality/fid' -> 'FID' (the
    metric registry's titles, engine/core/metrics.py)."""
    return metrics.label(short(key))


def sparkline(values, size: QSize = SPARK, color: str = "#1f4e99") -> QPixmap:
    """A small line of the last loss values, on a log scale when they are all positive."""
    pm = QPixmap(size)
    pm.fill(Qt.transparent)
    vals = [v for v in values if isinstance(v, float) and math.isfinite(v)]
    if len(vals) < 2:
        return pm
    if all(v > 0 for v in vals):
        vals = [math.log10(v) for v in vals]
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    w, h, pad = size.width(), size.height(), 2
    pts = [(pad + i * (w - 2 * pad) / (len(vals) - 1), pad + (hi - v) / span * (h - 2 * pad)) for i, v in enumerate(vals)]
    path = QPainterPath()
    path.moveTo(*pts[0])
    for x, y in pts[1:]:
        path.lineTo(x, y)
    p = QPainter(pm)
    p.setRenderHint(QPainter.Antialiasing)
    p.setPen(QPen(QColor(color), 1.3))
    p.drawPath(path)
    p.setBrush(QColor(color))
    p.drawEllipse(int(pts[-1][0]) - 2, int(pts[-1][1]) - 2, 4, 4)
    p.end()
    return pm


def best_text(s: RunSummary) -> tuple[str, str]:
    """The best-metric cell and its tooltip (every quality score's best, with its step)."""
    head = s.headline_metric()
    if head is None:
        return "–", "No sample-quality pass logged (Metrics → every N steps)"
    key, value, step = head
    tip = "\n".join(f"best {metric_label(k)}: {v:.4g} at step {st}" for k, (v, st) in sorted(s.best.items()))
    return f"{metric_label(key)} {value:.3g}", tip


def step_text(s: RunSummary) -> str:
    return f"{s.step}/{s.total_steps}" if s.total_steps else str(s.step)


def header_html(s: RunSummary) -> str:
    """The lines above a selected run's details: name, state and step; family, dataset and what it
    wrote; its best scores; what to do about an interrupted run."""
    color = STATE_COLORS.get(s.state, "#333")
    if s.kind == "detector":
        return detector_html(s, color)
    total = f" of {s.total_steps}" if s.total_steps else ""
    best = " · ".join(f"{metric_label(k)} {v:.3g} (step {st})".replace("-", "&#8209;")  # wrap between scores
                      for k, (v, st) in sorted(s.best.items()))
    message = f" — {html.escape(s.message)}" if s.message and s.message != f"finished {s.total_steps} steps" else ""
    n_ck, n_grids = len(s.checkpoints), len(s.samples)
    lines = [f"<b>{html.escape(s.name)}</b> &nbsp; <span style='color:{color}'><b>{s.state}</b></span> at step "
             f"{s.step}{total}{message}",
             f"{html.escape(s.family)} · {html.escape(s.dataset)} · {n_ck} checkpoint{'s' if n_ck != 1 else ''}"
             f" · {n_grids} sample grid{'s' if n_grids != 1 else ''}"]
    if best:
        lines.append(f"best: {best}")
    if s.parent:
        lines.append(parent_html(s))
    if s.state == "interrupted":
        lines.append("Its process is gone (killed, or the machine restarted): Resume continues from the last checkpoint.")
    return "<br>".join(lines)


def detector_html(s: RunSummary, color: str) -> str:
    """A trained detector's lines: what it is, what it was trained on and against, how it tests."""
    return "<br>".join([
        f"<b>{html.escape(s.name)}</b> &nbsp; <span style='color:{color}'><b>{s.state}</b></span> · "
        f"{html.escape(s.family)}, {s.step} training steps",
        f"real images: {html.escape(s.dataset)} · {html.escape(s.message)}",
        "Open (or a double click) uses it in the Detection canvas; Evaluate… there shows its ROC and report."])


PARENT_LINK = "parent"   # the href of the parent line's link (the browser selects the parent run)


def parent_html(s: RunSummary) -> str:
    """A two-stage run's parent: a link to its run when it is one (the runs browser selects it),
    else the checkpoint's path."""
    path = Path(s.parent)
    if s.parent_run is None:
        return f"parent: {html.escape(str(path))}"
    ckpt = f" ({html.escape(path.name)})" if path != s.parent_run else ""
    return (f"parent: <a href='{PARENT_LINK}'>{html.escape(s.parent_run.name)}</a>{ckpt}")


class RunTree(QTreeWidget):
    """Folders at the top level, their runs under them (newest first, as the index gives them)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(list(COLUMNS))
        self.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.setIconSize(SPARK)
        self.setUniformRowHeights(True)
        self.setRootIsDecorated(True)
        self.setAlternatingRowColors(True)
        # cut at the left: a run folder is <date>-<time>-<name>, and in a narrow list the time and
        # the name tell the runs apart, not the date they share (the tooltip has the whole path)
        self.setTextElideMode(Qt.ElideLeft)
        head = self.header()
        head.setStretchLastSection(False)
        # not Stretch: in the browser's narrow list the other columns' contents left it ~26 px
        head.setSectionResizeMode(C_NAME, QHeaderView.Interactive)
        head.resizeSection(C_NAME, NAME_MIN)
        self._name_width_set = False            # the person resized the run column: keep their width
        self._fitting = False
        head.sectionResized.connect(self._on_section_resized)
        for c in (C_STATE, C_FAMILY, C_DATASET, C_STEP, C_BEST):
            head.setSectionResizeMode(c, QHeaderView.ResizeToContents)
        head.setSectionResizeMode(C_LOSS, QHeaderView.Fixed)
        head.resizeSection(C_LOSS, SPARK.width() + 12)
        self.headerItem().setToolTip(C_BEST, "The best sample-quality score of the run (hover a cell for all)")
        self.headerItem().setToolTip(C_LOSS, "The last logged values of the run's main loss (log scale)")

    # ---- the run column ----------------------------------------------------------------------------
    def fit_name_column(self) -> None:
        """The run column as wide as its longest name (folder rows span every column), within
        [NAME_MIN, NAME_MAX] px and leaving the state and family in view beside it (a narrow
        list cuts the names at the left instead); a column the person resized keeps their width."""
        if self._name_width_set:
            return
        fm = self.fontMetrics()
        indent = 2 * self.indentation() + 16   # a run row's indent (its folder's and its own), the cell's margins
        names = [top.child(j).text(C_NAME) for top in self.folder_items() for j in range(top.childCount())]
        want = max((fm.horizontalAdvance(n) for n in names), default=0) + indent
        beside = sum(self.header().sectionSize(c) for c in (C_STATE, C_FAMILY))
        room = max(NAME_MIN, self.viewport().width() - beside)
        self._fitting = True
        self.header().resizeSection(C_NAME, min(max(want, NAME_MIN), NAME_MAX, room))
        self._fitting = False

    def resizeEvent(self, e) -> None:
        super().resizeEvent(e)
        self.fit_name_column()   # the list's splitter moved: the state and family stay in view

    def _on_section_resized(self, index: int, _old: int, _new: int) -> None:
        if index == C_NAME and not self._fitting:
            self._name_width_set = True

    # ---- folders -------------------------------------------------------------------------------
    def folder_items(self) -> list[QTreeWidgetItem]:
        return [self.topLevelItem(i) for i in range(self.topLevelItemCount())]

    def folder_item(self, folder: Path, note: str = "") -> QTreeWidgetItem:
        """The folder's row, added (bold, spanning the columns) if it is not listed yet."""
        for it in self.folder_items():
            if Path(it.data(0, PATH_ROLE)) == folder:
                return it
        it = QTreeWidgetItem([str(folder)])
        it.setData(0, PATH_ROLE, str(folder))
        it.setData(0, KIND_ROLE, "folder")
        font = it.font(0)
        font.setBold(True)
        it.setFont(0, font)
        it.setToolTip(0, f"{folder}  {note}".rstrip())
        self.addTopLevelItem(it)
        it.setFirstColumnSpanned(True)
        it.setExpanded(True)
        return it

    def remove_folder_item(self, item: QTreeWidgetItem) -> list[Path]:
        """Take a folder's row away; the runs it listed."""
        runs = [Path(item.child(i).data(0, PATH_ROLE)) for i in range(item.childCount())]
        self.takeTopLevelItem(self.indexOfTopLevelItem(item))
        return runs

    def show_folder(self, folder_item: QTreeWidgetItem, runs: list[RunSummary],
                    shown: dict[Path, RunSummary]) -> list[Path]:
        """Make the folder's rows these runs: new ones are added, gone ones removed, and those that
        differ from what their row shows (shown: the summaries filled in before) filled again. The
        paths of the runs removed."""
        folder = Path(folder_item.data(0, PATH_ROLE))
        have = {Path(folder_item.child(j).data(0, PATH_ROLE)): folder_item.child(j)
                for j in range(folder_item.childCount())}
        wanted = {s.path for s in runs}
        gone = [path for path in have if path not in wanted]
        for path in gone:
            folder_item.removeChild(have[path])
        for pos, s in enumerate(runs):
            item = have.get(s.path)
            if item is None:
                item = QTreeWidgetItem()
                item.setData(0, PATH_ROLE, str(s.path))
                item.setData(0, KIND_ROLE, "run")
                folder_item.insertChild(pos, item)
                fill_run_item(item, s)
            elif shown.get(s.path) != s:
                fill_run_item(item, s)
        n = len(runs)
        folder_item.setText(0, f"{folder}   ({n} run{'s' if n != 1 else ''})" if folder.is_dir()
                            else f"{folder}   (not found)")
        self.fit_name_column()
        return gone

    # ---- runs ----------------------------------------------------------------------------------
    def run_item(self, path: str | Path) -> QTreeWidgetItem | None:
        path = Path(path)
        for top in self.folder_items():
            for j in range(top.childCount()):
                if Path(top.child(j).data(0, PATH_ROLE)) == path:
                    return top.child(j)
        return None

    def select_runs(self, paths) -> None:
        """Select these runs; the first becomes the current item."""
        self.clearSelection()
        items = [self.run_item(p) for p in paths]
        for it in items:
            if it is not None:
                it.setSelected(True)
        if items and items[0] is not None:
            self.setCurrentItem(items[0], 0, QItemSelectionModel.NoUpdate)

    def selected_runs(self) -> list[Path]:
        return [Path(it.data(0, PATH_ROLE)) for it in self.selectedItems() if is_run(it)]

    def current_run(self) -> Path | None:
        """The current item's run, when it is a selected run."""
        item = self.currentItem()
        if item is None or not is_run(item) or not item.isSelected():
            return None
        return Path(item.data(0, PATH_ROLE))

    def current_folder_item(self) -> QTreeWidgetItem | None:
        """The current item's folder row (its own, for a run)."""
        item = self.currentItem()
        return item.parent() if item is not None and is_run(item) else item


def is_run(item: QTreeWidgetItem) -> bool:
    return item.data(0, KIND_ROLE) == "run"


def item_path(item: QTreeWidgetItem) -> Path:
    return Path(item.data(0, PATH_ROLE))


def fill_run_item(item: QTreeWidgetItem, s: RunSummary) -> None:
    """One run's row: its texts, the state's colour, the tooltips and the loss sparkline."""
    item.setText(C_NAME, s.name)
    item.setToolTip(C_NAME, f"{s.path}" + (f"\nconfig name: {s.config_name}" if s.config_name else "")
                    + (f"\nparent: {s.parent}" if s.parent else ""))
    item.setText(C_STATE, s.state)
    item.setForeground(C_STATE, QBrush(QColor(STATE_COLORS.get(s.state, "#333333"))))
    tip = s.state + (f": {s.message}" if s.message else "")
    if s.state == "interrupted":
        tip += f"\nits process is gone (status.json still says {s.recorded_state}); Resume continues it"
    elif s.live and s.host:
        tip += f"\npid {s.pid} on {s.host}"
    item.setToolTip(C_STATE, tip)
    item.setText(C_FAMILY, s.family)
    item.setText(C_DATASET, s.dataset)
    item.setText(C_STEP, step_text(s))
    item.setTextAlignment(C_STEP, Qt.AlignRight | Qt.AlignVCenter)
    text, tip = best_text(s)
    item.setText(C_BEST, text)
    item.setToolTip(C_BEST, tip)
    icon = QIcon(sparkline(s.loss_tail))
    icon.addPixmap(sparkline(s.loss_tail, color="#ffffff"), QIcon.Selected)  # readable on the selection
    item.setIcon(C_LOSS, icon)
    if s.loss_tail:
        item.setToolTip(C_LOSS, f"loss {short(s.loss_key or '')}: last {s.loss_tail[-1]:.4g} "
                                f"(the last {len(s.loss_tail)} logged values, log scale)")
