"""The Settings, About and Keyboard-shortcuts dialogs, and the settings helpers the window and
`genlab` call (UI scale before the QApplication exists, the runs folder, config defaults).

Settings keys (QSettings): "paths/runs_root", "paths/inception_weights", "training/device",
"ui/scale" (percent). The GUI never imports torch: About reads torch's version from the package
metadata and asks a separate Python process (engine/core/info.py) which device it finds."""
from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from PySide6.QtCore import QProcess, QSettings, Qt, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QSpinBox,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from app.engine_client import REPO_ROOT, engine_environment
from engine.core.config import DEVICES
from engine.metrics.weight_paths import WEIGHTS_NAME as INCEPTION_WEIGHTS_NAME
from engine.metrics.weight_paths import candidate_paths as inception_candidates

KEY_RUNS_ROOT = "paths/runs_root"
KEY_INCEPTION = "paths/inception_weights"
KEY_DEVICE = "training/device"
KEY_SCALE = "ui/scale"
SCALE_MIN, SCALE_MAX, SCALE_DEFAULT = 100, 200, 100

# ---- settings helpers ----------------------------------------------------------------------------
def _str(settings: QSettings | None, key: str, default: str = "") -> str:
    v = settings.value(key, default) if settings is not None else default
    return default if v is None else str(v)


def _int(settings: QSettings | None, key: str, default: int) -> int:
    try:
        return int(float(_str(settings, key, str(default)) or default))
    except ValueError:
        return default


def ui_scale(settings: QSettings | None) -> int:
    """The stored UI scale in percent, clamped to 100–200."""
    return min(SCALE_MAX, max(SCALE_MIN, _int(settings, KEY_SCALE, SCALE_DEFAULT)))


def apply_ui_scale(settings: QSettings | None) -> float | None:
    """Call before the QApplication is created: sets QT_SCALE_FACTOR from "ui/scale" (a scale the
    user set in the environment wins). Returns the factor set, or None."""
    scale = ui_scale(settings)
    if scale == 100 or os.environ.get("QT_SCALE_FACTOR"):
        return None
    factor = scale / 100
    os.environ["QT_SCALE_FACTOR"] = f"{factor:g}"
    return factor


def runs_root_setting(settings: QSettings | None) -> Path | None:
    """The runs folder chosen in Settings, or None (the built-in default applies)."""
    v = _str(settings, KEY_RUNS_ROOT).strip()
    return Path(v).expanduser() if v else None


def default_device(settings: QSettings | None) -> str:
    v = _str(settings, KEY_DEVICE, "auto")
    return v if v in DEVICES else "auto"


def apply_config_defaults(cfg, settings: QSettings | None):
    """A RunConfig with the Settings' defaults filled in where the config leaves the choice open:
    training.device "auto" becomes the default device, an empty metrics.inception_weights the
    weights path. Returns cfg itself when nothing changes (or cfg is None)."""
    if cfg is None or settings is None:
        return cfg
    changes: dict = {}
    device = default_device(settings)
    if cfg.training.device == "auto" and device != "auto":
        changes["training"] = {"device": device}
    weights = _str(settings, KEY_INCEPTION).strip()
    if not cfg.metrics.inception_weights and weights:
        changes["metrics"] = {"inception_weights": weights}
    return cfg.replace(**changes) if changes else cfg


def human_size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _browse_row(edit: QLineEdit, button: QPushButton) -> QWidget:
    w = QWidget()
    lay = QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(edit, 1)
    lay.addWidget(button)
    return w


# ---- Settings ------------------------------------------------------------------------------------
class SettingsDialog(QDialog):
    """Runs folder, FID Inception weights, default device, UI scale. OK writes them to `settings`."""

    def __init__(self, settings: QSettings, parent=None):
        super().__init__(parent)
        self.setWindowTitle("GenLab settings")
        self.settings = settings

        self.runs_root = QLineEdit()
        self.runs_root.setPlaceholderText("empty: ~/GenLab/runs (or $GENLAB_HOME/runs)")
        self.runs_root.setToolTip("New runs are written here (a folder per run). genlab --runs-root overrides it.")
        runs_browse = QPushButton("Browse…")
        runs_browse.clicked.connect(self._browse_runs)

        self.inception = QLineEdit()
        self.inception.setPlaceholderText(f"path of {INCEPTION_WEIGHTS_NAME}")
        weights_browse = QPushButton("Browse…")
        weights_browse.clicked.connect(self._browse_weights)
        self.inception_status = QLabel()
        self.inception_status.setObjectName("inception_status")
        self.inception_status.setWordWrap(True)
        self.inception_status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        hub = inception_candidates(None)[-1]
        self.inception_help = QLabel(
            "FID, KID, precision/recall and IS use the standard FID Inception-v3 when its weight file is on "
            "disk. <b>GenLab never downloads it.</b> The engine looks, in order, at the run's "
            "<i>metrics.inception_weights</i> (this path fills it in for new runs that leave it empty), "
            f"<i>$GENLAB_INCEPTION</i>, and torch hub's cache: <tt>{hub}</tt>. Without it, GenLab's own "
            "domain features are used and the scores are labelled FD-domain, KID-domain, … .")
        self.inception_help.setWordWrap(True)
        self.inception_help.setTextFormat(Qt.RichText)
        self.inception_help.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.device.setToolTip("Used by new runs whose config says device = auto. "
                               "auto picks CUDA, then Apple MPS, then the CPU.")

        self.scale = QSpinBox(minimum=SCALE_MIN, maximum=SCALE_MAX, singleStep=25)
        self.scale.setSuffix(" %")
        self.scale.setToolTip("The size of the whole interface (QT_SCALE_FACTOR); applied at the next start.")
        scale_note = QLabel("applied the next time GenLab starts")
        scale_note.setEnabled(False)
        scale_row = QWidget()
        sl = QHBoxLayout(scale_row)
        sl.setContentsMargins(0, 0, 0, 0)
        sl.addWidget(self.scale)
        sl.addWidget(scale_note, 1)

        top = QFormLayout()
        top.addRow("Runs folder", _browse_row(self.runs_root, runs_browse))
        weights_box = QGroupBox("FID Inception weights")
        wl = QVBoxLayout(weights_box)
        wl.addWidget(_browse_row(self.inception, weights_browse))
        wl.addWidget(self.inception_status)
        wl.addWidget(self.inception_help)
        bottom = QFormLayout()
        bottom.addRow("Default device", self.device)
        bottom.addRow("UI scale", scale_row)

        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel
                                        | QDialogButtonBox.RestoreDefaults)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.RestoreDefaults).clicked.connect(self.restore_defaults)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(weights_box)
        lay.addLayout(bottom)
        lay.addStretch(1)
        lay.addWidget(self.buttons)

        self.inception.textChanged.connect(self._update_inception_status)
        self.load()
        self.setMinimumWidth(620)

    # ---- values --------------------------------------------------------------------------------
    def load(self) -> None:
        s = self.settings
        self.runs_root.setText(_str(s, KEY_RUNS_ROOT))
        self.inception.setText(_str(s, KEY_INCEPTION))
        self.device.setCurrentText(default_device(s))
        self.scale.setValue(ui_scale(s))
        self._update_inception_status()

    def values(self) -> dict:
        return {KEY_RUNS_ROOT: self.runs_root.text().strip(), KEY_INCEPTION: self.inception.text().strip(),
                KEY_DEVICE: self.device.currentText(), KEY_SCALE: self.scale.value()}

    def save(self) -> None:
        for key, value in self.values().items():
            self.settings.setValue(key, value)
        self.settings.sync()

    def restore_defaults(self) -> None:
        self.runs_root.clear()
        self.inception.clear()
        self.device.setCurrentText("auto")
        self.scale.setValue(SCALE_DEFAULT)

    def accept(self) -> None:
        self.save()
        super().accept()

    # ---- browsing ------------------------------------------------------------------------------
    def _browse_runs(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Runs folder", self.runs_root.text() or str(Path.home()))
        if path:
            self.runs_root.setText(path)

    def _browse_weights(self) -> None:
        start = self.inception.text() or str(inception_candidates(None)[-1].parent)
        path, _ = QFileDialog.getOpenFileName(self, "FID Inception weights", start,
                                              "Inception weights (*.pth *.safetensors);;All files (*)")
        if path:
            self.inception.setText(path)

    def _update_inception_status(self) -> None:
        text = self.inception.text().strip()
        if text:
            p = Path(text).expanduser()
            if p.is_file():
                msg = f"✔ found: {human_size(p.stat().st_size)}"
                if p.name != INCEPTION_WEIGHTS_NAME and p.suffix != ".safetensors":
                    msg += f" (expected a file named {INCEPTION_WEIGHTS_NAME})"
            elif p.exists():
                msg = "✖ this is a folder: choose the weight file itself"
            else:
                msg = "✖ no such file: runs would fall back to the lookup below, then to FD-domain"
        else:
            found = next((p for p in inception_candidates(None) if p.is_file()), None)
            msg = (f"empty: the engine will use {found} ({human_size(found.stat().st_size)})" if found
                   else "empty, and not found in $GENLAB_INCEPTION or torch hub's cache: "
                        "quality scores are FD-domain")
        self.inception_status.setText(msg)


# ---- About ---------------------------------------------------------------------------------------
def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def genlab_version() -> str:
    v = package_version("genlab")
    if v:
        return v
    try:  # a plain checkout that was never installed
        import engine
        return f"{engine.__version__} (source checkout)"
    except (ImportError, AttributeError):
        return "unknown"


def info_command() -> tuple[str, list[str]]:
    return sys.executable, ["-c", "from engine.core.info import main; main()"]


def describe_device(info: dict) -> str:
    """One line from engine/core/info.py's JSON."""
    if not info.get("torch"):
        return f"PyTorch could not be imported: {info.get('error', 'unknown error')}"
    if info.get("cuda"):
        n = int(info.get("cuda_devices") or 1)
        more = f" (+{n - 1} more)" if n > 1 else ""
        return f"CUDA: {info.get('device_name', 'GPU')}{more} · CUDA {info.get('cuda_version') or '?'}"
    if info.get("mps"):
        return "Apple MPS (Metal GPU)"
    build = "a CPU-only PyTorch build" if not info.get("cuda_version") else \
        f"this PyTorch is built for CUDA {info['cuda_version']} but finds no GPU"
    threads = f", {info['threads']} threads" if info.get("threads") else ""
    return f"CPU only ({info.get('device_name') or 'CPU'}{threads}): {build}"


class AboutDialog(QDialog):
    """Versions and the device PyTorch finds. The device check runs engine/core/info.py in a process
    of its own (the GUI never imports torch): "checking…" until it answers."""

    checked = Signal(dict)   # engine/core/info.py's JSON (or {"error": ...})

    def __init__(self, parent=None, command: tuple[str, list[str]] | None = None):
        super().__init__(parent)
        self.setWindowTitle("About GenLab")
        self.info: dict | None = None
        from PySide6 import QtCore
        import PySide6
        torch_v = package_version("torch")
        self.rows: dict[str, QLabel] = {}
        form = QFormLayout()
        for key, label, value in (
                ("genlab", "GenLab", genlab_version()),
                ("python", "Python", f"{platform.python_version()} ({platform.python_implementation()}, "
                                     f"{platform.system()} {platform.machine()})"),
                ("qt", "Qt", f"PySide6 {PySide6.__version__} · Qt {QtCore.qVersion()}"),
                ("torch", "PyTorch", torch_v or "not installed (the engine needs it)"),
                ("device", "Device found", "checking…")):
            lab = QLabel(value)
            lab.setTextInteractionFlags(Qt.TextSelectableByMouse)
            lab.setWordWrap(True)
            self.rows[key] = lab
            form.addRow(label, lab)
        self.version_label, self.torch_label, self.device_label = \
            self.rows["genlab"], self.rows["torch"], self.rows["device"]
        title = QLabel("<b>GenLab</b> — train and explore image generative models, offline.")
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        copy = buttons.addButton("Copy", QDialogButtonBox.ActionRole)
        copy.setToolTip("Copy these lines (for a bug report)")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.as_text()))
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(title)
        lay.addLayout(form)
        lay.addWidget(buttons)
        self.setMinimumWidth(520)

        self._out = b""
        self.proc = QProcess(self)
        self.proc.setProcessEnvironment(engine_environment())
        self.proc.setWorkingDirectory(str(REPO_ROOT))
        self.proc.setProcessChannelMode(QProcess.SeparateChannels)
        self.proc.readyReadStandardOutput.connect(self._read)
        self.proc.finished.connect(self._finished)
        self.proc.errorOccurred.connect(self._error)
        program, args = command or info_command()
        self.proc.start(program, args)

    def is_checking(self) -> bool:
        return self.info is None

    def as_text(self) -> str:
        form_labels = {"genlab": "GenLab", "python": "Python", "qt": "Qt", "torch": "PyTorch",
                       "device": "Device found"}
        return "\n".join(f"{form_labels[k]}: {lab.text()}" for k, lab in self.rows.items())

    def _read(self) -> None:
        self._out += bytes(self.proc.readAllStandardOutput())

    def _finished(self, code: int, status) -> None:
        self._read()
        lines = [ln for ln in self._out.decode("utf-8", "replace").splitlines() if ln.strip()]
        info = None
        if lines:
            try:
                info = json.loads(lines[-1])
            except ValueError:
                info = None
        if not isinstance(info, dict):
            err = bytes(self.proc.readAllStandardError()).decode("utf-8", "replace").strip().splitlines()
            info = {"torch": None, "error": err[-1] if err else f"the check exited with code {code}"}
        self._show(info)

    def _error(self, err) -> None:
        if err == QProcess.FailedToStart:
            self._show({"torch": None, "error": f"could not start {self.proc.program()}"})

    def _show(self, info: dict) -> None:
        if self.info is not None:
            return
        self.info = info
        self.device_label.setText(describe_device(info))
        if info.get("torch") and not package_version("torch"):
            self.torch_label.setText(str(info["torch"]))
        self.adjustSize()
        self.checked.emit(info)

    def done(self, r: int) -> None:
        if self.proc.state() != QProcess.NotRunning:
            self.proc.kill()
            self.proc.waitForFinished(2000)
        super().done(r)


# ---- Keyboard shortcuts --------------------------------------------------------------------------
def native_keys(keys: str) -> str:
    """Portable key text ("Ctrl+Z  /  Ctrl+Y") as this platform writes it (⌘Z on macOS); parts that
    are not key sequences ("Ctrl+wheel", "Space+drag") stay as written."""
    parts = []
    for part in keys.split("  /  "):
        seq = QKeySequence.fromString(part, QKeySequence.PortableText)
        ok = not seq.isEmpty() and seq.toString(QKeySequence.PortableText) == part
        parts.append(seq.toString(QKeySequence.NativeText) if ok else part)
    return "  /  ".join(parts)


class ShortcutsDialog(QDialog):
    """A table of (where, what, keys) rows: the menus' shortcuts and the canvases' own."""

    def __init__(self, entries: list[tuple[str, str, str]], parent=None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.entries = list(entries)
        self.table = QTableWidget(len(self.entries), 3)
        self.table.setHorizontalHeaderLabels(["Where", "Action", "Keys"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setAlternatingRowColors(True)
        for r, (where, what, keys) in enumerate(self.entries):
            for c, text in enumerate((where, what, native_keys(keys))):
                self.table.setItem(r, c, QTableWidgetItem(text))
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.Stretch)
        hh.setSectionResizeMode(2, QHeaderView.ResizeToContents)
        self.table.setWordWrap(True)
        self.table.resizeRowsToContents()
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table)
        lay.addWidget(buttons)
        self.resize(640, 520)

    def keys(self) -> list[str]:
        return [k for _w, _a, k in self.entries]
