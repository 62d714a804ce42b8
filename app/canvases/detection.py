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
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QSpinBox, QSplitter,
                               QTableWidget, QTableWidgetItem, QTextBrowser, QVBoxLayout, QWidget)

from app.canvases.base import Canvas
from app.canvases.detector_dialog import DetectorDialog
from app.canvases.detector_eval_view import short_names
from app.canvases.detection_report import arrow, score_text, write_report
from app.canvases.side_column import SideColumn, status_line, wrapping
from app.qt_util import human_duration
from app.worker_session import WorkerSession
from app.widgets.image_view import ImageView
from engine.core.detect_checks import (CHECKPOINT, CHECKS, DETECTOR, HIGHER, LOWER, NEEDS_FILE, OPTIONAL_REFERENCE,
                                       TREERING_STEPS, default_checks)
from engine.core.detector_file import FOLDER_FILE, read_detector_meta
from engine.core.imageformats import IMAGE_SUFFIXES, is_image_path

KEY = "detection/"
SIDE_MAX, SIDE_SHARE = 320, 0.3
SUSPICIOUS = QColor("#c0392b")
# what a check needs and the request field its picker fills: (field, "folder" | "file" | "checkpoint", what it is)
PICKERS = {"noise": ("noise_reference", "folder", "a folder of images from one source (a camera)"),
           "spectrum-lr": ("spectrum_detector", "file", "a trained spectrum detector (.json or .safetensors)"),
           "zeroshot": ("likelihood_model", "checkpoint", "a pixelcnn checkpoint trained on real images"),
           "aeroblade": ("autoencoder", "checkpoint", "an autoencoder checkpoint (vae, hvae or vqvae)"),
           "dire": ("diffusion_checkpoint", "checkpoint", "a diffusion checkpoint (ddpm, edm, flow_matching or ldm)")}
TREERING = "treering"
WATERMARK_METHODS = ("dwtDct", "dwtDctSvd", TREERING)
METHOD_TIPS = {"dwtDct": "invisible-watermark's DWT-DCT (bit-compatible both ways): a message in an existing image",
               "dwtDctSvd": "invisible-watermark's DWT-DCT-SVD (bit-compatible both ways): a message in an existing "
                            "image, more robust",
               TREERING: "Tree-Ring (Wen et al. 2023): a key's rings in a diffusion sample's starting noise. It cannot "
                         "mark an existing image: embed samples new ones from the checkpoint; verify inverts the "
                         "selected image by DDIM and gives a p-value"}
TREERING_VERDICTS = {"marked": "marked: the key's rings are in its starting noise",
                     "absent": "not marked with this key (or not sampled by this checkpoint)"}
VERDICTS = {"marked": "the message is there", "absent": "no sign of this message",
            "weakened": "likely there, weakened (re-encoded or resized)"}
MESSAGE_KINDS = (("text", "text"), ("hex", "hex bytes"), ("bits", "0/1 bits"), ("sdxl", "SDXL's 48 bits"))
ARCH_CHECK = {"npr": "npr-cnn", "cnn": "cnn"}     # a trained detector's architecture -> the check it serves


def expand(paths: list[str]) -> list[str]:
    """Files as they are, a folder's image files in its place (sorted, not recursed; an empty
    folder or a missing name stays, for the engine to say why in one line)."""
    out = []
    for p in map(Path, paths):
        files = sorted(str(f) for f in p.iterdir() if f.is_file() and is_image_path(f)) if p.is_dir() else []
        out += files or [str(p)]
    return out


def detector_name(path) -> str:
    """A detector's name as a person knows it: its folder's for one saved as a folder of its own
    (…/20261207-234946-detector-npr/detector.safetensors), else its file's."""
    p = Path(path)
    return p.parent.name if p.stem == Path(FOLDER_FILE).stem else p.name


def two_lines(title: str) -> str:
    """A long column title broken at the space nearest its middle (narrower columns: more in view)."""
    if len(title) < 14 or " " not in title:
        return title
    spaces = [i for i, ch in enumerate(title) if ch == " "]
    cut = min(spaces, key=lambda i: abs(i - len(title) / 2))
    return title[:cut] + "\n" + title[cut + 1:]


def bytes_of(bits: str) -> str:
    """'0100011101100101' -> '01000111 01100101': a bit string that wraps and reads by the byte."""
    return " ".join(bits[i:i + 8] for i in range(0, len(bits), 8))


class ScoreItem(QTableWidgetItem):
    """A score cell that sorts by number (missing scores last)."""

    def __init__(self, score):
        super().__init__(score_text(score))
        self.score = score

    def __lt__(self, other):
        a = self.score if self.score is not None else float("inf")
        b = getattr(other, "score", None)
        return a < (b if b is not None else float("inf"))


class DetectionCanvas(Canvas):

    def __init__(self, session, parent=None, settings: QSettings | None = None):
        super().__init__(session, parent, settings)
        self.rows: dict[str, dict] = {}        # image path -> the detect op's row, in the order checked
        self.failures: list[str] = []
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

    def _detector_group(self) -> QGroupBox:
        g = QGroupBox("Trained detector")
        lay = QVBoxLayout(g)
        self.detector_label = wrapping(QLabel(""))
        lay.addWidget(self.detector_label)
        self.train_btn = QPushButton("Train…")
        self.train_btn.setToolTip("Train an NPR or CNN detector on real images against checkpoints of any family, "
                                  "test it on held-out ones")
        self.train_btn.clicked.connect(lambda: self.open_detector_dialog("train"))
        self.open_detector_btn = QPushButton("Open…")
        self.open_detector_btn.setToolTip("Use a saved detector (DET.safetensors or DET.json)")
        self.open_detector_btn.clicked.connect(self._pick_detector)
        self.evaluate_btn = QPushButton("Evaluate…")
        self.evaluate_btn.setToolTip("The loaded detector's report (per generator: accuracy, AP, AUC, ROC), and its "
                                     "evaluation on new images")
        self.evaluate_btn.clicked.connect(lambda: self.open_detector_dialog("eval"))
        row = QHBoxLayout()
        for b in (self.train_btn, self.open_detector_btn, self.evaluate_btn):
            row.addWidget(b)
        lay.addLayout(row)
        self._show_detector()
        return g

    def _show_detector(self) -> None:
        if not self.detector:
            self.detector_label.setText("<small><i>None yet: train one against your checkpoints, or open one. "
                                        "It runs as the NPR detector or CNN detector check.</i></small>")
            self.detector_label.setToolTip("")
        else:
            self.detector_label.setText(f"<small><b>{self.detector_arch.upper()}</b> · {detector_name(self.detector)} · "
                                        f"trained against {short_names(self._detector_trained_on)}</small>")
            self.detector_label.setToolTip(self.detector)
        self.evaluate_btn.setEnabled(bool(self.detector))

    def load_detector(self, path: str, quiet: bool = False) -> bool:
        """Use a trained NPR or CNN detector (DET, DET.json or DET.safetensors) for its check, which
        is switched on. False (and one line in the status) when it is not one."""
        try:
            meta = read_detector_meta(path)
        except ValueError as e:
            if not quiet:
                self.show_error(str(e))
            return False
        arch = str(meta.get("arch", ""))
        if arch not in ARCH_CHECK:
            self.show_error(f"{path}: a detector of an unknown architecture {arch!r}")
            return False
        weights = Path(path).with_suffix(".safetensors") if Path(path).suffix in (".json", ".safetensors") \
            else Path(str(path) + ".safetensors")
        self.detector, self.detector_arch = str(weights), arch
        self._detector_trained_on = sorted((meta.get("training") or {}).get("trained_on", {}))
        self.settings.setValue(KEY + "detector", self.detector)
        for key in ARCH_CHECK.values():
            self._show_need(key)
        self.check_boxes[ARCH_CHECK[arch]].setChecked(True)
        self._show_detector()
        if not quiet:
            self.status.setText(f"{arch.upper()} detector {detector_name(weights)} loaded: its check runs on the images")
        return True

    def _pick_detector(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a trained detector", str(self.detectors_folder),
                                              "Detector (*.json *.safetensors)")
        if path:
            self.load_detector(path)

    def open_detector_dialog(self, mode: str) -> DetectorDialog:
        """The train or evaluate dialog (one each, kept: its job goes on while it is closed)."""
        dlg = self.dialogs.get(mode)
        if dlg is None:
            checkpoint = self.session.checkpoint
            if self.job_session is None:
                self.job_session = self.make_job_session()
            dlg = DetectorDialog(self.job_session, mode, self, self.settings, out_folder=self.detectors_folder,
                                 detector=self.detector, checkpoints=[checkpoint] if checkpoint else [])
            dlg.detector_ready.connect(self.load_detector)
            self.dialogs[mode] = dlg
        elif mode == "eval" and self.detector and not dlg.is_running() and dlg.detector_edit.text() != self.detector:
            dlg.detector_edit.setText(self.detector)
            dlg.load_detector_reports(self.detector)
        dlg.show()
        dlg.raise_()
        return dlg

    def _watermark_group(self) -> QGroupBox:
        g = QGroupBox("Watermark")
        form = self.wm_form = QFormLayout(g)
        self.wm_method = QComboBox()
        for i, method in enumerate(WATERMARK_METHODS):
            self.wm_method.addItem(method)
            self.wm_method.setItemData(i, METHOD_TIPS[method], Qt.ToolTipRole)
        self.wm_kind = QComboBox()
        for key, title in MESSAGE_KINDS:
            self.wm_kind.addItem(title, key)
        self.wm_message = QLineEdit(self.settings.value(KEY + "message", "GenLab"))
        self.wm_message.setToolTip("The message to embed, or the one to verify against (empty: read 48 bits)")
        self.embed_btn = QPushButton("Embed && save…")
        self.embed_btn.clicked.connect(self._embed_to)
        self.verify_btn = QPushButton("Verify")
        self.verify_btn.clicked.connect(lambda: self.verify_watermark())
        self.wm_result = wrapping(QLabel(""))
        self.wm_result.setTextInteractionFlags(Qt.TextSelectableByMouse)
        form.addRow("Method", self.wm_method)
        form.addRow("Message", self.wm_message)
        form.addRow("Written as", self.wm_kind)
        self._treering_rows(form)
        buttons = QHBoxLayout()
        buttons.addWidget(self.embed_btn)
        buttons.addWidget(self.verify_btn)
        form.addRow(buttons)
        form.addRow(self.wm_result)
        self.wm_method.currentTextChanged.connect(self._show_method)
        self._show_method()
        return g

    def _treering_rows(self, form: QFormLayout) -> None:
        """Tree-Ring's settings: the diffusion checkpoint (its own pick, else the dire check's), the
        key, how many images to sample and the DDIM steps (verify with the count embed used)."""
        self.tr_checkpoint_label = wrapping(QLabel(""))
        pick = QPushButton("Choose…")
        pick.setToolTip("Choose the diffusion checkpoint (ddpm, edm, flow_matching or ldm) that samples the marked "
                        "images and inverts the ones verified")
        pick.clicked.connect(self._pick_treering_checkpoint)
        clear = QPushButton("✕")
        clear.setToolTip("Forget it (the dire check's checkpoint is used, if it has one)")
        clear.setFixedWidth(28)
        clear.clicked.connect(lambda: self.set_treering_checkpoint(""))
        row = QHBoxLayout()
        row.addWidget(pick)
        row.addWidget(clear)
        row.addStretch(1)
        self.tr_key = QLineEdit(self.settings.value(KEY + "treering_key", "1"))
        self.tr_key.setToolTip("The key (any integer or text) that draws the rings: verify with the key embed used")
        self.tr_count = QSpinBox()
        self.tr_count.setRange(1, 256)
        self.tr_count.setValue(4)
        self.tr_count.setSuffix(" image(s)")
        self.tr_count.setToolTip("How many marked images Sample marked… draws from the checkpoint")
        self.tr_steps = QSpinBox()
        self.tr_steps.setRange(1, 1000)
        self.tr_steps.setValue(TREERING_STEPS)
        self.tr_steps.setToolTip("DDIM steps each way (sampling and inversion): verify with the count embed used")
        self.tr_widgets = {"Checkpoint": row, "": self.tr_checkpoint_label, "Key": self.tr_key,
                           "Sample": self.tr_count, "DDIM steps": self.tr_steps}
        for label, w in self.tr_widgets.items():
            form.addRow(label, w) if label else form.addRow(w)   # the checkpoint's name: the full width
        self._show_treering_checkpoint()

    def _show_method(self) -> None:
        """The rows and buttons of the chosen method: a message for the DWT methods; a checkpoint,
        key, count and steps for Tree-Ring, whose embed samples new images."""
        ring = self.wm_method.currentText() == TREERING
        self.wm_result.setText("")            # another method's reading would be read as this one's
        self.wm_method.setToolTip(METHOD_TIPS[self.wm_method.currentText()])
        for w in (self.wm_message, self.wm_kind):
            self.wm_form.setRowVisible(w, not ring)
        for w in self.tr_widgets.values():
            self.wm_form.setRowVisible(w, ring)
        if ring:
            self.embed_btn.setText("Sample marked…")
            self.embed_btn.setToolTip("Tree-Ring cannot mark an existing image: this samples new images from the "
                                      "diffusion checkpoint with the key's rings in their starting noise, saves them "
                                      "as PNGs in a folder you choose and adds them to the table")
            self.verify_btn.setToolTip("Invert the selected image by DDIM with the checkpoint and test the key's "
                                       "rings: p-value, distance and verdict (marked when p < 0.01)")
        else:
            self.embed_btn.setText("Embed && save…")
            self.embed_btn.setToolTip("Mark the selected image with the message and save it as PNG")
            self.verify_btn.setToolTip("Read the mark of the selected image and compare it with the message")

    def treering_checkpoint(self) -> str:
        """The checkpoint Tree-Ring uses: the one picked here, else the dire check's ("": none)."""
        return self.settings.value(KEY + "treering_checkpoint", "") or self.references.get("dire", "")

    def set_treering_checkpoint(self, path: str) -> None:
        self.settings.setValue(KEY + "treering_checkpoint", path)
        self._show_treering_checkpoint()

    def _show_treering_checkpoint(self) -> None:
        path = self.treering_checkpoint()
        if not path:
            self.tr_checkpoint_label.setText("<small><i>needs a diffusion checkpoint</i></small>")
            self.tr_checkpoint_label.setToolTip("Choose one here, or the dire check's checkpoint is used")
            return
        inherited = not self.settings.value(KEY + "treering_checkpoint", "")
        self.tr_checkpoint_label.setText(f"<small>uses {Path(path).name}{' (the dire check’s)' if inherited else ''}"
                                         f"</small>")
        self.tr_checkpoint_label.setToolTip(path)

    def _pick_treering_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a diffusion checkpoint for Tree-Ring", "",
                                              "Checkpoint (*.safetensors *.json)")
        if path:
            self.set_treering_checkpoint(path)

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
        if self.inflight.get(rid) == "watermark":   # the panel no longer says "sampling…" / "inverting…"
            self.wm_result.setText(f"<i>failed: {message}</i>")
        super().on_failed(rid, message)

    def on_cancelled(self, rid: int) -> None:
        if self.inflight.get(rid) == "watermark":
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
            self._show_watermark(ev)
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
        self.table.setColumnCount(1 + len(keys))
        self.table.setHorizontalHeaderItem(0, QTableWidgetItem("Image"))
        for i, key in enumerate(keys, start=1):
            spec = CHECKS.get(key)
            mark = {HIGHER: " ↑", LOWER: " ↓"}.get(spec.direction, "")
            item = QTableWidgetItem(two_lines(spec.title) + mark)
            item.setToolTip(f"{spec.score}; {arrow(spec.direction)}")
            self.table.setHorizontalHeaderItem(i, item)
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
    def _message_fields(self) -> dict:
        self.settings.setValue(KEY + "message", self.wm_message.text())
        return {"method": self.wm_method.currentText(), "message": self.wm_message.text().strip(),
                "kind": self.wm_kind.currentData()}

    def _treering_fields(self) -> dict | None:
        """Tree-Ring's request fields, or None (and one line in the status) without a checkpoint or key."""
        ckpt, key = self.treering_checkpoint(), self.tr_key.text().strip()
        if not ckpt:
            self.show_error("Tree-Ring needs a diffusion checkpoint: choose one under Watermark (Choose…) or for the "
                            "dire check")
            return None
        if not key:
            self.show_error("Write the Tree-Ring key (any integer or text)")
            return None
        self.settings.setValue(KEY + "treering_key", key)
        return {"method": TREERING, "diffusion_checkpoint": ckpt, "key": key, "steps": self.tr_steps.value()}

    def sample_treering(self, folder: str) -> int:
        """Sample the chosen count of Tree-Ring-marked images into `folder` (they join the table when done)."""
        fields = self._treering_fields()
        if fields is None:
            return 0
        self.wm_result.setText(f"sampling {self.tr_count.value()} marked image(s)…")
        return self.request("watermark", action="embed", samples=folder, count=self.tr_count.value(),
                            checkpoint="", **fields)

    def embed_watermark(self, out: str, image: str = "") -> int:
        """Mark `image` (default: the selected one) with the message and save it as the PNG `out`;
        with Tree-Ring, sample new marked images into the folder `out` instead (sample_treering)."""
        if self.wm_method.currentText() == TREERING:
            return self.sample_treering(out)
        image = image or self.selected_image()
        if not image:
            self.show_error("Select an image in the table to mark")
            return 0
        fields = self._message_fields()
        if not fields["message"] and fields["kind"] != "sdxl":
            self.show_error("Write the message to embed")
            return 0
        if Path(out).suffix.lower() != ".png":
            out = str(Path(out).with_suffix(".png"))
        return self.request("watermark", action="embed", image=image, out=out, checkpoint="", **fields)

    def verify_watermark(self, image: str = "") -> int:
        """Read the mark of `image` (default: the selected one) and compare it with the message."""
        image = image or self.selected_image()
        if not image:
            self.show_error("Select an image in the table to verify")
            return 0
        if self.wm_method.currentText() == TREERING:
            fields = self._treering_fields()
            if fields is None:
                return 0
            self.wm_result.setText(f"inverting {Path(image).name}…")
            return self.request("watermark", action="verify", image=image, checkpoint="", **fields)
        fields = self._message_fields()
        return self.request("watermark", action="verify", image=image, length=48, checkpoint="", **fields)

    def _embed_to(self) -> None:
        if self.wm_method.currentText() == TREERING:
            if self._treering_fields() is None:   # say what is missing before asking for a folder
                return
            folder = QFileDialog.getExistingDirectory(self, "Choose a folder for the Tree-Ring samples",
                                                      self.settings.value(KEY + "treering_folder", ""))
            if folder:
                self.settings.setValue(KEY + "treering_folder", folder)
                self.sample_treering(folder)
            return
        image = self.selected_image()
        if not image:
            self.show_error("Select an image in the table to mark")
            return
        suggested = str(Path(image).with_name(Path(image).stem + "_marked.png"))
        out, _ = QFileDialog.getSaveFileName(self, "Save the marked image", suggested, "PNG (*.png)")
        if out:
            self.embed_watermark(out, image)

    def _show_watermark(self, ev: dict) -> None:
        notes = "".join(f"<br><small>{w}</small>" for w in ev.get("warnings", []))
        if ev.get("method") == TREERING:
            self._show_treering(ev, notes)
            return
        if ev["action"] == "embed":
            self.wm_result.setText(f"Marked {len(ev['bits'])} bits into {Path(ev['out']).name}{notes}")
            self.status.setText(f"saved {ev['out']}")
            return
        text = f"read {bytes_of(ev['bits'])}"
        if ev.get("text"):
            text += f" (“{ev['text']}”)"
        if ev.get("bit_accuracy") is not None:
            said = VERDICTS.get(ev.get("verdict"), "")
            color = SUSPICIOUS.name() if ev.get("verdict") in ("marked", "weakened") else "#555"
            text += (f"<br><b style='color:{color}'>bit accuracy {ev['bit_accuracy']:.3f} "
                     f"({ev['matches']}/{len(ev['expected'])}), p = {ev['p_value']:.3g}</b>: {said}")
        self.wm_result.setText(text + notes)

    def _show_treering(self, ev: dict, notes: str) -> None:
        ring = ev.get("ring") or {}
        if ev["action"] == "embed":
            samples = ev.get("samples", [])
            self.wm_result.setText(f"Sampled {len(samples)} image(s) with key “{ring.get('key', '')}” "
                                   f"({ring.get('steps')} DDIM steps) into {Path(ev['out']).name}; they are added to "
                                   f"the table{notes}")
            self.status.setText(f"saved {len(samples)} Tree-Ring sample(s) in {ev['out']}")
            if samples:
                self.add_paths(samples)
            return
        color = SUSPICIOUS.name() if ev.get("verdict") == "marked" else "#555"
        self.wm_result.setText(f"{Path(ev['image']).name}: <b style='color:{color}'>p = {ev['p_value']:.3g}, distance "
                               f"{ev['distance']:.3f}</b>: {TREERING_VERDICTS.get(ev.get('verdict'), '')} "
                               f"<small>(key “{ring.get('key', '')}”, {ring.get('steps')} DDIM steps, "
                               f"{Path(ring.get('checkpoint', '')).name})</small>{notes}")

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
            write_report(path, list(self.rows.values()), checks, self.failures)
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
