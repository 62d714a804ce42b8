"""Detection canvas: were these images generated or edited? Useful before anything is trained.

Drop images or a folder (or Open…): the chosen checks of the detection lab (engine/core/detect_checks.py)
run in the engine worker (the `detect` op: progress per image and check, an ETA, Cancel), and a
sortable table shows images × checks with their scores, suspicious ones in red with the direction
that makes them so in each header. Selecting a row shows the image, the chosen check's map (2D
spectrum, NPR residual, noise residual, copy-move overlay), the spectrum profile against the real
photos' mean, the watermark read and every check's sentence. A check that needs something (a noise
reference folder, a spectrum detector file, a model checkpoint) says which and offers a picker. The watermark panel
embeds a message into the selected image (a PNG, through the `watermark` op) and verifies one; with
Tree-Ring it samples new marked images from a diffusion checkpoint (a mark in the starting noise
cannot go into an existing image), adds them to the table, and verifies the selected image by DDIM
inversion (a p-value).
The trained-detector group trains an NPR or CNN detector against checkpoints (app/canvases/
detector_dialog.py: progress, ETA, Cancel, then its evaluation view), opens a saved one or
evaluates it; the loaded detector runs as its check (npr-cnn or cnn). Export writes a
self-contained HTML report."""
from __future__ import annotations

import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QFileDialog, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QPushButton, QSplitter, QTableWidget, QTableWidgetItem,
                               QTextBrowser, QVBoxLayout, QWidget)

from app.canvases.base import Canvas
from app.canvases.detector_dialog import DetectorDialog
from app.canvases.detection_report import arrow, score_text, write_report
from app.canvases.detection_detector import ARCH_CHECK, DetectorGroup, detector_name
from app.canvases.detection_items import ScoreItem, verified_item
from app.canvases.detection_watermark import KEY, SUSPICIOUS, WatermarkPanel, bytes_of   # KEY: the settings' prefix
from app.canvases.side_column import SideColumn, status_line, wrapping
from app.qt_util import human_duration
from app.worker_session import WorkerSession
from app.widgets.image_view import ImageView
from engine.core.detect_checks import (CHECKPOINT, CHECKS, DETECTOR, HIGHER, LOWER, NEEDS_FILE, OPTIONAL_REFERENCE,
                                       default_checks)
from engine.core.imageformats import IMAGE_SUFFIXES, is_image_path

SIDE_MAX, SIDE_SHARE = 320, 0.3
# what a check needs and the request field its picker fills: (field, "folder" | "file" | "checkpoint", what it is)
PICKERS = {"noise": ("noise_reference", "folder", "a folder of images from one source (a camera)"),
           "spectrum-lr": ("spectrum_detector", "file", "a trained spectrum detector (.json or .safetensors)"),
           "zeroshot": ("likelihood_model", "checkpoint", "a pixelcnn checkpoint trained on real images"),
           "aeroblade": ("autoencoder", "checkpoint", "an autoencoder checkpoint (vae, hvae or vqvae)"),
           "dire": ("diffusion_checkpoint", "checkpoint", "a diffusion checkpoint (ddpm, edm, flow_matching or ldm)")}


def expand(paths: list[str]) -> list[str]:
    """Files as they are, a folder's image files in its place (sorted, not recursed; an empty
    folder or a missing name stays, for the engine to say why in one line)."""
    out = []
    for p in map(Path, paths):
        files = sorted(str(f) for f in p.iterdir() if f.is_file() and is_image_path(f)) if p.is_dir() else []
        out += files or [str(p)]
    return out


def two_lines(title: str) -> str:
    """A long column title broken at the space nearest its middle (narrower columns: more in view)."""
    if len(title) < 14 or " " not in title:
        return title
    spaces = [i for i, ch in enumerate(title) if ch == " "]
    cut = min(spaces, key=lambda i: abs(i - len(title) / 2))
    return title[:cut] + "\n" + title[cut + 1:]


class DetectionCanvas(DetectorGroup, WatermarkPanel, Canvas):

    def __init__(self, session, parent=None, settings: QSettings | None = None):
        super().__init__(session, parent, settings)
        self.rows: dict[str, dict] = {}        # image path -> the detect op's row, in the order checked
        self.failures: list[str] = []
        self.verified: dict[str, dict] = {}    # image path -> its last watermark reading (Verify, Verify all)
        self._wm_batch: dict = {}              # Verify all's requests in flight and its counts
        self.pending_id = 0
        self._batch: dict = {}                 # the images being checked: counts for the progress and status
        self.references: dict[str, str] = {key: self.settings.value(KEY + key, "") for key in PICKERS}
        self.detector, self.detector_arch = "", ""     # the trained NPR / CNN detector (load_detector)
        self._detector_trained_on: list[str] = []
        self.detectors_folder = Path("runs")           # where a new detector goes (the window: its runs folder)
        self.dialogs: dict[str, DetectorDialog] = {}   # "train" / "eval": kept, so a closed one keeps its job
        # detector jobs run in a worker of their own: minutes of training never hold up the canvases'
        # requests in the shared one (replaceable in tests: make_job_session() -> a WorkerSession)
        self.make_job_session = lambda: WorkerSession(parent=self)
        self.job_session: WorkerSession | None = None

        # ---- the side column: sources, checks, what they need, watermark ---------------------------
        self.side = SideColumn(SIDE_MAX, SIDE_SHARE)
        side = self.side.body
        self.hint = wrapping(QLabel("<i>Drop images or a folder here, or open them. The checks need no "
                                    "trained model.</i>"))
        side.addWidget(self.hint)
        opens = QHBoxLayout()
        self.open_btn = QPushButton("Open images…")
        self.open_btn.clicked.connect(self._open_files)
        self.folder_btn = QPushButton("Open folder…")
        self.folder_btn.clicked.connect(self._open_folder)
        opens.addWidget(self.open_btn)
        opens.addWidget(self.folder_btn)
        side.addLayout(opens)

        checks_box = QGroupBox("Checks")
        cl = QVBoxLayout(checks_box)
        self.check_boxes: dict[str, QCheckBox] = {}
        chosen = self.settings.value(KEY + "checks", None)
        chosen = chosen.split(",") if isinstance(chosen, str) and chosen else default_checks()
        self.need_labels: dict[str, QLabel] = {}
        for key, spec in CHECKS.items():
            box = QCheckBox(spec.title)
            box.setToolTip(f"{spec.help}\nScore: {spec.score}" + (f" ({spec.suspicious_words})"
                                                                 if spec.suspicious_words else ""))
            box.setChecked(key in chosen)
            box.toggled.connect(self._remember_checks)
            self.check_boxes[key] = box
            cl.addWidget(box)
            if spec.needs in (OPTIONAL_REFERENCE, DETECTOR, CHECKPOINT):
                cl.addLayout(self._need_row(key, spec))
        side.addWidget(checks_box)
        side.addWidget(self._detector_group())
        self.run_btn = QPushButton("Check again")
        self.run_btn.setToolTip("Run the chosen checks on every image in the table (after changing the checks)")
        self.run_btn.clicked.connect(self.run_checks)
        self.export_btn = QPushButton("Export HTML report…")
        self.export_btn.setToolTip("One self-contained HTML file: the table, the images and maps, each sentence")
        self.export_btn.clicked.connect(self._export)
        side.addWidget(self._watermark_group())
        side.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_btn)
        buttons.addWidget(self.export_btn)
        self.side.foot.addLayout(buttons)
        self.side.foot.addWidget(status_line(self.status))

        # ---- the table and the selected image's evidence -------------------------------------------
        self.table = QTableWidget(0, 1)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.verticalHeader().setVisible(False)
        row_h = self.table.fontMetrics().height() + 8   # more rows in view
        self.table.verticalHeader().setDefaultSectionSize(row_h)
        # three whole rows under the two-line header and the scroll bar, even on a 1024×640 screen
        # (the splitter's shares left two and a half there)
        self.table.setMinimumHeight(2 * self.table.fontMetrics().lineSpacing() + 12 + 3 * row_h +
                                    self.table.horizontalScrollBar().sizeHint().height() + 4)
        self.table.horizontalHeader().setSortIndicator(0, Qt.AscendingOrder)   # by name until a header is clicked
        self.table.itemSelectionChanged.connect(self._show_selected)
        self.image_view = ImageView("The selected image")
        self.map_view = ImageView("Its map")
        self.map_check = QComboBox()
        self.map_check.setToolTip("Which check's evidence to show")
        self.map_check.currentIndexChanged.connect(self._show_map)
        self.map_title = QLabel("")
        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        self.plot.setMinimumSize(200, 110)
        self.plot.addLegend(offset=(-5, 5), labelTextSize="8pt")
        self.plot.setTitle("spectrum profile", size="9pt")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)   # cycles/pixel read as they are
        self.sentences = QTextBrowser()
        self.sentences.setOpenLinks(False)
        self.sentences.setPlaceholderText("What each check says")   # one line: a placeholder does not wrap

        pictures = QWidget()
        pl = QHBoxLayout(pictures)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.image_view, 1)
        map_col = QVBoxLayout()
        top = QHBoxLayout()
        top.addWidget(QLabel("Map of"))
        top.addWidget(self.map_check, 1)
        map_col.addLayout(top)
        map_col.addWidget(self.map_view, 1)
        map_col.addWidget(self.map_title)
        pl.addLayout(map_col, 1)
        words = QSplitter(Qt.Horizontal)      # the profile beside the sentences
        words.addWidget(self.plot)
        words.addWidget(self.sentences)
        words.setStretchFactor(0, 2)
        words.setStretchFactor(1, 3)
        self.split = QSplitter(Qt.Vertical)
        self.split.setChildrenCollapsible(False)
        self.split.addWidget(self.table)
        self.split.addWidget(pictures)
        self.split.addWidget(words)
        for i, stretch in enumerate((2, 4, 3)):
            self.split.setStretchFactor(i, stretch)
        self.split.setSizes([200, 400, 300])   # proportions: Qt scales them to the space there is
        words.setSizes([400, 600])
        right = QVBoxLayout()
        right.setContentsMargins(0, 0, 0, 0)
        right.addWidget(self.split, 1)
        right.addWidget(self.progress_row)      # full width: the stage, counts and time left fit
        lay = QHBoxLayout(self)
        lay.addWidget(self.side)
        lay.addLayout(right, 1)
        self._set_columns(self.chosen_checks())
        saved = self.settings.value(KEY + "detector", "")
        if saved and Path(saved).with_suffix(".json").is_file():
            self.load_detector(saved, quiet=True)

    # ---- building blocks -----------------------------------------------------------------------
    def _need_row(self, key: str, spec) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setContentsMargins(20, 0, 0, 0)
        label = wrapping(QLabel(""))
        self.need_labels[key] = label
        row.addWidget(label, 1)
        if key in PICKERS:
            pick = QPushButton("Choose…")
            pick.setToolTip(f"Choose {PICKERS[key][2]}")
            pick.clicked.connect(lambda _=False, k=key: self._pick_reference(k))
            row.addWidget(pick)
            clear = QPushButton("✕")
            clear.setToolTip("Forget it")
            clear.setFixedWidth(28)
            clear.clicked.connect(lambda _=False, k=key: self.set_reference(k, ""))
            row.addWidget(clear)
        self._show_need(key)
        return row

    def _show_need(self, key: str) -> None:
        spec, label = CHECKS.get(key), self.need_labels[key]
        ref = self.references.get(key, "")
        box = self.check_boxes[key]
        if ref:
            label.setText(f"<small>uses {Path(ref).name}</small>")
            label.setToolTip(ref)
            box.setEnabled(True)
            return
        if key not in PICKERS:
            arch = next(a for a, k in ARCH_CHECK.items() if k == key)
            if self.detector_arch == arch:
                label.setText(f"<small>uses {detector_name(self.detector)}</small>")
                label.setToolTip(self.detector)
                box.setEnabled(True)
                return
            label.setText(f"<small><i>needs a trained {arch.upper()} detector (below)</i></small>")
            label.setToolTip(f"Train one (Train…) or open one (Open…) under Trained detector; the {self.detector_arch} "
                             f"detector loaded serves the {ARCH_CHECK[self.detector_arch]} check"
                             if self.detector_arch else "Train one (Train…) or open one (Open…) under Trained detector")
        elif spec.needs == DETECTOR:
            label.setText("<small><i>needs a detector file</i></small>")
            label.setToolTip(f"Choose {PICKERS[key][2]}")
        elif spec.needs == CHECKPOINT:
            label.setText("<small><i>needs a checkpoint</i></small>")
            label.setToolTip(f"Choose {PICKERS[key][2]}")
        else:
            label.setText("<small><i>optional: a reference folder</i></small>")
            label.setToolTip(f"Without {PICKERS[key][2]} it shows the residual only; with one it says whether "
                             f"the image comes from that source")
        if spec.needs in NEEDS_FILE:   # cannot run at all without one
            box.setChecked(False)
            box.setEnabled(False)

    def resizeEvent(self, e):
        super().resizeEvent(e)
        self.side.follow(self.width())

    def showEvent(self, e):
        # no model needed: showing this canvas does not load the window's checkpoint
        QWidget.showEvent(self, e)

    # ---- what the model can do: nothing this canvas needs -----------------------------------------
    def apply_capabilities(self, caps) -> None:
        pass

    # ---- choices ---------------------------------------------------------------------------------
    def chosen_checks(self) -> list[str]:
        return [k for k, box in self.check_boxes.items() if box.isChecked() and box.isEnabled()]

    def _remember_checks(self) -> None:
        self.settings.setValue(KEY + "checks", ",".join(self.chosen_checks()))

    def set_reference(self, key: str, path: str) -> None:
        """The noise reference folder, the spectrum detector file or a check's checkpoint (\"\": none)."""
        self.references[key] = path
        self.settings.setValue(KEY + key, path)
        self._show_need(key)
        if key == "dire":
            self._show_treering_checkpoint()
        if path and CHECKS.get(key).needs in NEEDS_FILE:
            self.check_boxes[key].setChecked(True)

    def _pick_reference(self, key: str) -> None:
        _, kind, what = PICKERS[key]
        if kind == "folder":
            path = QFileDialog.getExistingDirectory(self, f"Choose {what}")
        elif kind == "checkpoint":
            path, _ = QFileDialog.getOpenFileName(self, f"Choose {what}", "", "Checkpoint (*.safetensors *.json)")
        else:
            path, _ = QFileDialog.getOpenFileName(self, f"Choose {what}", "", "Detector (*.json *.safetensors)")
        if path:
            self.set_reference(key, path)

    # ---- sources ---------------------------------------------------------------------------------
    def _open_files(self) -> None:
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        paths, _ = QFileDialog.getOpenFileNames(self, "Open images", "", f"Images ({patterns})")
        if paths:
            self.add_paths(paths)

    def _open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a folder of images")
        if path:
            self.add_paths([path])

    def add_paths(self, paths: list[str]) -> int:
        """Check these images or folders (added to the table as their results come)."""
        return self._request_detect([str(p) for p in paths])

    def run_checks(self) -> int:
        """The chosen checks again on every image in the table."""
        if not self.rows:
            self.show_error("Drop images or a folder first (or open them)")
            return 0
        return self._request_detect(list(self.rows))

    def _request_detect(self, paths: list[str]) -> int:
        """One `detect` request per image (a folder's images listed here), queued in the worker: rows
        appear as each image is done, the progress bar and ETA count the whole batch, and Cancel
        drops what is still queued. Returns the first request's id (0: nothing sent)."""
        checks = self.chosen_checks()
        if not checks:
            self.show_error("Choose at least one check")
            return 0
        fields = {PICKERS[k][0]: self.references[k] for k in PICKERS if self.references.get(k) and k in checks}
        if self.detector and ARCH_CHECK.get(self.detector_arch) in checks:
            fields["detector"] = self.detector
        items = expand(paths)
        if self._batch and "detect" in self.inflight.values() and self._batch["per"] == len(checks):
            self._batch["total"] += len(items) * len(checks)   # more images dropped while checking: one batch
        else:
            self._batch = {"total": len(items) * len(checks), "done": 0, "per": len(checks),
                           "start": time.monotonic(), "images": 0, "failures": []}
        self.status.setText(f"checking {len(items)} image(s)…")
        # checkpoint "": these checks need no model, so none is loaded for them
        ids = [self.request("detect", images=[p], checks=checks, checkpoint="", **fields) for p in items]
        self.pending_id = ids[0] if ids else 0
        return self.pending_id

    def on_progress(self, rid: int, stage: str, done: int, total: int) -> None:
        if self.in_wm_batch(rid):
            return self.wm_batch_progress(rid, done, total)
        b = self._batch
        if not b or not b["total"] or self.inflight.get(rid) != "detect":
            return super().on_progress(rid, stage, done, total)
        whole = min(b["done"] + done, b["total"])
        self.progress.setRange(0, b["total"])
        self.progress.setValue(whole)
        text = f"{stage} %v / %m" if stage else "%v / %m"
        if 0 < whole < b["total"]:
            left = (time.monotonic() - b["start"]) * (b["total"] - whole) / whole
            text += f" · {human_duration(left)} left"
        self.progress.setFormat(text)
        self.progress.setToolTip(text.replace("%v", str(whole)).replace("%m", str(b["total"])))

    def on_failed(self, rid: int, message: str) -> None:
        if self.in_wm_batch(rid):   # one image fails: the batch goes on, the status says which
            name = Path(self.wm_batch_image(rid)).name
            self.show_error(message if name in message else f"{name}: {message}")
            self.wm_batch_step(rid, False)
            return
        if self.inflight.get(rid) == "watermark":   # the panel no longer says "sampling…" / "inverting…"
            self.wm_result.setText(f"<i>failed: {message}</i>")
        super().on_failed(rid, message)

    def on_cancelled(self, rid: int) -> None:
        if self.in_wm_batch(rid):
            b = self._wm_batch
            b["ids"].pop(rid, None)
            self.wm_result.setText(f"<i>cancelled: {b['done']} of {b['total']} image(s) verified</i>")
        elif self.inflight.get(rid) == "watermark":
            self.wm_result.setText("<i>cancelled</i>")
        super().on_cancelled(rid)

    def dragEnterEvent(self, e):
        if any(self._usable(u.toLocalFile()) for u in e.mimeData().urls()):
            e.acceptProposedAction()

    def dropEvent(self, e):
        paths = [u.toLocalFile() for u in e.mimeData().urls() if self._usable(u.toLocalFile())]
        if paths:
            e.acceptProposedAction()
            self.add_paths(paths)

    @staticmethod
    def _usable(path: str) -> bool:
        p = Path(path)
        return p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES

    # ---- replies ---------------------------------------------------------------------------------
    def on_result(self, ev: dict) -> None:
        if ev.get("op") == "watermark":
            self._show_watermark(ev, ev.get("id", 0))
            return
        for row in ev.get("rows", []):
            self.rows[row["image"]] = row
        self.failures = list(dict.fromkeys([*self.failures, *ev.get("failures", [])]))
        self._fill_table()
        b = self._batch
        b["done"] += b.get("per", 0)
        b["images"] += len(ev.get("rows", []))
        b["failures"] += ev.get("failures", [])
        text = f"{b['images']} image(s) checked"
        if b["failures"]:
            text += f"; {len(b['failures'])} not: " + "; ".join(b["failures"][:5])
        self.status.setText(text)
        if b["done"] >= b.get("total", 0):
            self.progress.setFormat(f"done · {b['images']} image(s)")

    def _columns(self) -> list[str]:
        """The checks shown: every check some row has a result of, in the registry's order."""
        seen = {r["check"] for row in self.rows.values() for r in row["results"]}
        return [k for k in CHECKS.names() if k in seen]

    def _set_columns(self, keys: list[str]) -> None:
        self.table.setColumnCount(1 + len(keys) + bool(self.verified))
        self.table.setHorizontalHeaderItem(0, QTableWidgetItem("Image"))
        for i, key in enumerate(keys, start=1):
            spec = CHECKS.get(key)
            mark = {HIGHER: " ↑", LOWER: " ↓"}.get(spec.direction, "")
            item = QTableWidgetItem(two_lines(spec.title) + mark)
            item.setToolTip(f"{spec.score}; {arrow(spec.direction)}")
            self.table.setHorizontalHeaderItem(i, item)
        if self.verified:
            item = QTableWidgetItem("Watermark\np-value ↓")
            item.setToolTip("The watermark verify's p-value (Verify, Verify all): low, the mark is there")
            self.table.setHorizontalHeaderItem(1 + len(keys), item)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(True)
        self._keys = keys

    def _fill_table(self) -> None:
        selected = self.selected_image()
        keys = self._columns()
        self.table.setSortingEnabled(False)
        self.table.setRowCount(0)
        self._set_columns(keys)
        for path, row in self.rows.items():
            i = self.table.rowCount()
            self.table.insertRow(i)
            name = QTableWidgetItem(Path(path).name)
            name.setData(Qt.UserRole, path)
            name.setToolTip(path)
            self.table.setItem(i, 0, name)
            by_key = {r["check"]: r for r in row["results"]}
            for j, key in enumerate(keys, start=1):
                r = by_key.get(key)
                item = ScoreItem(r["score"] if r else None)
                if r is None:
                    item.setText("failed")
                elif r.get("suspicious"):
                    item.setForeground(SUSPICIOUS)
                    item.setText(item.text() + " ⚠")
                item.setToolTip(r["explanation"] if r else "this check could not run on it (see the status line)")
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(i, j, item)
            if self.verified:
                self.table.setItem(i, 1 + len(keys), verified_item(self.verified.get(path)))
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        self.select_image(selected if selected in self.rows else next(iter(self.rows), ""))

    # ---- the selected row ------------------------------------------------------------------------
    def selected_image(self) -> str:
        items = self.table.selectedItems()
        row = items[0].row() if items else -1
        item = self.table.item(row, 0) if row >= 0 else None
        return item.data(Qt.UserRole) if item is not None else ""

    def select_image(self, path: str) -> None:
        for i in range(self.table.rowCount()):
            if self.table.item(i, 0).data(Qt.UserRole) == path:
                self.table.selectRow(i)
                return

    def _show_selected(self) -> None:
        path = self.selected_image()
        row = self.rows.get(path)
        if row is None:
            return
        self.image_view.set_path(row["preview"])
        shown = self.map_check.currentData()
        with_maps = [r for r in row["results"] if (r.get("map") or {}).get("png")]
        self.map_check.blockSignals(True)
        self.map_check.clear()
        for r in with_maps:
            self.map_check.addItem(r["title"], r["check"])
        keys = [r["check"] for r in with_maps]
        self.map_check.setCurrentIndex(keys.index(shown) if shown in keys else 0)
        self.map_check.blockSignals(False)
        self._show_map()
        self._show_plot(row)
        self._show_sentences(row)

    def current_result(self, key: str | None = None) -> dict | None:
        row = self.rows.get(self.selected_image())
        key = key or self.map_check.currentData()
        return next((r for r in row["results"] if r["check"] == key), None) if row else None

    def _show_map(self) -> None:
        r = self.current_result()
        m = (r or {}).get("map") or {}
        if not m.get("png"):
            self.map_view.clear()
            self.map_title.setText("")
            return
        self.map_view.set_path(m["png"])
        self.map_title.setText(f"<small>{m.get('title', '')}</small>")

    def _show_plot(self, row: dict) -> None:
        self.plot.clear()
        plotted = next((r for r in row["results"] if r.get("plot")), None)
        if plotted is None:
            self.plot.setTitle("no spectrum profile (run the spectrum check)", size="9pt")
            return
        p = plotted["plot"]
        self.plot.setTitle("spectrum profile", size="9pt")   # short: the plot is 200 px wide on a small screen
        self.plot.setLabel("bottom", p.get("x_label", ""))
        self.plot.setLabel("left", p.get("y_label", ""))
        colors = ("#2a7ab9", "#e67e22", "#27ae60")
        for k, (name, ys) in enumerate(p["series"].items()):
            self.plot.plot(p["x"], [y if y is not None else float("nan") for y in ys], name=name,
                           pen=pg.mkPen(colors[k % len(colors)], width=2))

    def _show_sentences(self, row: dict) -> None:
        lines = []
        for r in row["results"]:
            style = f" style='color:{SUSPICIOUS.name()}'" if r.get("suspicious") else ""
            lines.append(f"<b{style}>{r['title']}</b> ({score_text(r['score'])}): {r['explanation']}")
            if r["check"] == "watermark" and (r.get("details") or {}).get("read"):
                d = r["details"]
                lines.append(f"&nbsp;&nbsp;<small>read {bytes_of(d['read'])} · expected {bytes_of(d['expected'])} · "
                             f"{d['matches']}/{len(d['expected'])} bits, p = {d['p_value']:.3g}</small>")
        self.sentences.setHtml("<br>".join(lines))

    # ---- watermarks --------------------------------------------------------------------------------
    # ---- export -------------------------------------------------------------------------------------
    def _export(self) -> None:
        if not self.rows:
            self.show_error("Nothing to export yet: check some images first")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export the detection report", "detection_report.html",
                                              "HTML (*.html)")
        if path:
            self.export_html(path)

    def export_html(self, path: str) -> bool:
        """The table, the pictures (embedded) and the sentences as one HTML file."""
        checks = [{"key": k, "title": CHECKS.get(k).title, "direction": CHECKS.get(k).direction}
                  for k in self._columns()]
        try:
            write_report(path, list(self.rows.values()), checks, self.failures, self.verified)
        except OSError as e:
            self.show_error(f"{path}: {e.strerror or e}")
            return False
        self.status.setText(f"report written to {path}")
        return True

    def clear_pending(self) -> None:
        self.pending_id = 0

    def shutdown(self) -> None:
        """The window closes: the detector jobs' worker ends with it (a job running there stops)."""
        if self.job_session is not None and self.job_session is not self.session:
            self.job_session.shutdown()
