"""The window's menu bar: File (open a run, a checkpoint, a dataset folder; recent runs and
checkpoints; export config; settings; quit), Run (start, pause, stop, sample now, save now,
continue; add to the training queue and compare families on this data, where the window has them), View (one action per tab) and Help (keyboard shortcuts, about).

build_menus(window) uses only the window's public face, so a small stand-in works in tests:
menuBar(), settings (QSettings or None), open_run(dir), set_checkpoint(path), show_tab(key),
build_config(), data_panel.set_folder(path), training (start(), toggle_pause(), stop(),
job.command(...), continue_run() and their buttons when present; run_started, optional), tabs
(optional), runs_root (optional), statusBar() (optional), session (optional: a WorkerSession, whose
loads fill Recent checkpoints)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QDialog, QFileDialog, QMenu, QMessageBox

from app.canvases import TAB_KEYS, TAB_TITLES
from app.dialogs import AboutDialog, SettingsDialog, ShortcutsDialog, runs_root_setting
from engine.core.config import ConfigError

MAX_RECENT = 10
KEY_RECENT_RUNS = "recent/runs"
KEY_RECENT_CHECKPOINTS = "recent/checkpoints"
# the folder each file dialog opened last ("the window remembers its last folders")
KEY_FOLDER = {"run": "folders/run", "checkpoint": "folders/checkpoint", "dataset": "folders/dataset",
              "export": "folders/export"}

# Shortcuts the canvases and the mask editor handle themselves (listed in Help ▸ Keyboard shortcuts).
CANVAS_SHORTCUTS: list[tuple[str, str, str]] = [
    ("Canvases", "Render, sample or fill (the canvas's main button)", "Ctrl+Return"),
    ("Canvases", "Cancel what is rendering", "Esc"),
    ("Mask editor", "Smaller / larger brush", "[  /  ]"),
    ("Mask editor", "Brush / eraser", "B  /  E"),
    ("Mask editor", "Undo", "Ctrl+Z"),
    ("Mask editor", "Redo", "Ctrl+Shift+Z  /  Ctrl+Y"),
    ("Mask editor", "Paste an image", "Ctrl+V"),
    ("Mask editor", "Fit the image to the view", "Ctrl+0"),
    ("Mask editor", "Zoom", "Ctrl+wheel"),
    ("Mask editor", "Pan", "Space+drag  /  middle drag  /  wheel"),
    ("Window", "Open a run, a checkpoint or an image folder", "drop it on the window"),
]

# Run menu: (key, text, shortcut, the training panel's button, its method)
RUN_ITEMS = [
    ("start", "&Start", "Ctrl+Return", "start_btn", "start"),
    ("pause", "&Pause", "Ctrl+P", "pause_btn", "toggle_pause"),
    ("stop", "S&top", "Ctrl+.", "stop_btn", "stop"),
    ("sample_now", "Sample &now", "", "sample_btn", "sample_now"),
    ("save_now", "Save n&ow", "", "save_btn", "save_now"),
    ("continue", "&Continue", "", "continue_btn", "continue_run"),
]
ENGINE_COMMANDS = {"sample_now": "sample-now", "save_now": "save-now"}  # for a panel without the methods


def _clean(text: str) -> str:
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…").strip()


def _norm(path: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(str(path))))


class MenuActions(QObject):
    """The menus and their actions: `actions` by key (open_run, open_checkpoint, open_dataset,
    export_config, settings, quit, start, pause, stop, sample_now, save_now, continue, shortcuts,
    about), `view_actions` by tab key, `menus` by title ("File", "Run", "View", "Help",
    "Recent runs", "Recent checkpoints"). Dialog helpers (ask_dir, ask_open, ask_save, inform) are
    attributes so tests can replace them."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.actions: dict[str, QAction] = {}
        self.view_actions: dict[str, QAction] = {}
        self.menus: dict[str, QMenu] = {}
        self.declared: dict[QAction, QKeySequence] = {}   # each action's shortcut (Start's comes and goes)
        self._memory: dict[str, str] = {}                  # settings when the window has none
        self._scratch = None
        self._follows_loads = False
        self._shortcuts_dialog: ShortcutsDialog | None = None
        self.ask_dir = self._ask_dir
        self.ask_open = self._ask_open
        self.ask_save = self._ask_save
        self.inform = self._inform

    # ---- building ------------------------------------------------------------------------------
    def _action(self, menu: QMenu, key: str | None, text: str, slot, shortcut: str = "", tip: str = "",
                standard: QKeySequence.StandardKey | None = None) -> QAction:
        """A menu action; its keys are the platform's `standard` ones where Qt has them (Ctrl+O,
        Ctrl+Q, ...; Cmd on macOS), else `shortcut`."""
        a = QAction(text, self.window)
        keys = QKeySequence.keyBindings(standard) if standard is not None else []
        if not keys and shortcut:
            keys = [QKeySequence(shortcut)]
        if keys:
            a.setShortcuts(keys)
            self.declared[a] = keys[0]
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(tip)
        a.triggered.connect(lambda _checked=False: slot())
        menu.addAction(a)
        if key:
            self.actions[key] = a
        return a

    def build(self) -> "MenuActions":
        bar = self.window.menuBar()
        w = self.window

        file = self.menus["File"] = bar.addMenu("&File")
        self._action(file, "open_run", "Open &run…", self.open_run_dialog, standard=QKeySequence.Open,
                     tip="Follow a run folder: its plots, samples and config")
        self._action(file, "open_checkpoint", "Open &checkpoint…", self.open_checkpoint_dialog, "Ctrl+Shift+O",
                     tip="Load a .safetensors checkpoint into the canvases")
        self._action(file, "open_dataset", "Open &dataset folder…", self.open_dataset_dialog,
                     tip="Train on a folder of images (subfolders become classes)")
        recent_runs = self.menus["Recent runs"] = file.addMenu("Recent r&uns")
        recent_cks = self.menus["Recent checkpoints"] = file.addMenu("Recent c&heckpoints")
        recent_runs.aboutToShow.connect(lambda: self._fill_recent("run"))
        recent_cks.aboutToShow.connect(lambda: self._fill_recent("checkpoint"))
        file.addSeparator()
        # the settings written to a file of one's choosing: Save As's keys
        self._action(file, "export_config", "&Export config…", self.export_config, standard=QKeySequence.SaveAs,
                     tip="Write the Data and Model settings as a TOML config (for genlab-engine train --config)")
        file.addSeparator()
        s = self._action(file, "settings", "Se&ttings…", self.open_settings, standard=QKeySequence.Preferences)
        s.setMenuRole(QAction.PreferencesRole)
        file.addSeparator()
        q = self._action(file, "quit", "&Quit", w.close, "Ctrl+Q", standard=QKeySequence.Quit)
        q.setMenuRole(QAction.QuitRole)

        run = self.menus["Run"] = bar.addMenu("&Run")
        for key, text, shortcut, _btn, _method in RUN_ITEMS:
            self._action(run, key, text, lambda k=key: self.run_action(k), shortcut)
            if key == "stop":
                run.addSeparator()
        # the training queue (app/panels/run_queue.py), where the window and its panel offer it
        queue_items = [(key, text, fn, tip) for key, text, fn, tip in (
            ("add_to_queue", "Add to &queue", getattr(w.training, "add_to_queue", None),
             "Queue a run of the current settings (Runs ▸ Queue trains the queue)"),
            ("compare_families", "Compare &families on this data…", self.compare_families_on_data
             if callable(getattr(getattr(w, "runs", None), "compare_families_on_data", None)) else None,
             "Train presets of several families on the current dataset in the queue, then compare them"))
            if callable(fn)]
        if queue_items:
            run.addSeparator()
        for key, text, fn, tip in queue_items:
            self._action(run, key, text, fn, tip=tip)
        self.actions["start"].setStatusTip("Start training (Ctrl+Return on the Train tab)")
        self.actions["continue"].setStatusTip("Continue the run from its last checkpoint")
        run.aboutToShow.connect(self.sync_run_actions)
        for _key, _text, _shortcut, btn_name, _method in RUN_ITEMS:
            btn = getattr(w.training, btn_name, None)
            if btn is not None:
                btn.installEventFilter(self)   # enabled changes keep the actions (and their shortcuts) in step

        view = self.menus["View"] = bar.addMenu("&View")
        group = QActionGroup(self)
        group.setExclusive(True)
        for i, key in enumerate(TAB_KEYS):
            shortcut = f"Ctrl+{i + 1}" if i < 9 else ""
            a = self._action(view, None, TAB_TITLES[key], lambda k=key, j=i: self.show_tab(k, j), shortcut)
            a.setCheckable(True)
            group.addAction(a)
            self.view_actions[key] = a
        self.view_actions[TAB_KEYS[0]].setChecked(True)
        view.aboutToShow.connect(self._sync_view)
        view.aboutToHide.connect(lambda: [a.setEnabled(True) for a in self.view_actions.values()])

        help_ = self.menus["Help"] = bar.addMenu("&Help")
        self._action(help_, "shortcuts", "&Keyboard shortcuts", self.show_shortcuts, "F1",
                     standard=QKeySequence.HelpContents)
        a = self._action(help_, "about", "&About GenLab", self.show_about)
        a.setMenuRole(QAction.AboutRole)

        # the recent lists follow every run trained here and every checkpoint the worker loads,
        # however it was opened (a load the worker refuses is not added)
        started = getattr(w.training, "run_started", None)
        if started is not None:
            started.connect(self.remember_run)
        session = getattr(w, "session", None)
        self._follows_loads = getattr(session, "loaded", None) is not None
        if self._follows_loads:
            session.loaded.connect(lambda _caps: self.remember_checkpoint(session.loaded_checkpoint))

        tabs = getattr(w, "tabs", None)
        if tabs is not None:
            tabs.currentChanged.connect(self._on_tab)
            self._on_tab(tabs.currentIndex())
        self.sync_run_actions()
        return self

    # ---- settings storage ----------------------------------------------------------------------
    @property
    def settings(self):
        return getattr(self.window, "settings", None)

    def _get(self, key: str, default: str = "") -> str:
        s = self.settings
        v = s.value(key, default) if s is not None else self._memory.get(key, default)
        return default if v is None else str(v)

    def _set(self, key: str, value: str) -> None:
        s = self.settings
        if s is not None:
            s.setValue(key, value)
        else:
            self._memory[key] = value

    def _list(self, key: str) -> list[str]:
        try:
            v = json.loads(self._get(key, "[]") or "[]")
        except ValueError:
            v = []
        return [str(p) for p in v if p] if isinstance(v, list) else []

    # ---- recent runs and checkpoints -----------------------------------------------------------
    def _remember(self, key: str, path: str) -> None:
        p = _norm(path)
        items = [p] + [q for q in self._list(key) if _norm(q) != p]
        self._set(key, json.dumps(items[:MAX_RECENT]))

    def remember_run(self, path: str) -> None:
        """Put a run folder first in File ▸ Recent runs (at most 10 are kept)."""
        self._remember(KEY_RECENT_RUNS, path)

    def remember_checkpoint(self, path: str) -> None:
        """Put a checkpoint first in File ▸ Recent checkpoints (at most 10 are kept)."""
        self._remember(KEY_RECENT_CHECKPOINTS, path)

    def _recent(self, key: str) -> list[str]:
        """The list, most recent first, without the paths that no longer exist (pruned for good)."""
        items = self._list(key)
        kept = [p for p in items if Path(p).exists()]
        if kept != items:
            self._set(key, json.dumps(kept))
        return kept

    def recent_runs(self) -> list[str]:
        return self._recent(KEY_RECENT_RUNS)

    def recent_checkpoints(self) -> list[str]:
        return self._recent(KEY_RECENT_CHECKPOINTS)

    def _fill_recent(self, kind: str) -> None:
        menu = self.menus["Recent runs" if kind == "run" else "Recent checkpoints"]
        key = KEY_RECENT_RUNS if kind == "run" else KEY_RECENT_CHECKPOINTS
        menu.clear()
        items = self._recent(key)
        for n, p in enumerate(items, start=1):
            path = Path(p)
            label = path.name if kind == "run" else "/".join(path.parts[-3:])
            a = menu.addAction(f"&{n % 10}  " + label.replace("&", "&&"))
            a.setToolTip(p)
            a.setStatusTip(p)
            a.setData(p)
            if kind == "run":
                a.triggered.connect(lambda _c=False, p=p: self.open_run(p))
            else:
                a.triggered.connect(lambda _c=False, p=p: self.open_checkpoint(p))
        if not items:
            menu.addAction("(none)").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear list", lambda: self._set(key, "[]"))

    # ---- File ----------------------------------------------------------------------------------
    def _start_dir(self, kind: str) -> str:
        last = self._get(KEY_FOLDER[kind])
        if last and Path(last).is_dir():
            return last
        root = getattr(self.window, "runs_root", None)
        if kind in ("run", "checkpoint") and root is not None and Path(root).is_dir():
            return str(root)
        return str(Path.home())

    def _note_dir(self, kind: str, folder) -> None:
        self._set(KEY_FOLDER[kind], str(folder))

    def open_run(self, path: str) -> None:
        self.window.open_run(str(path))
        self.remember_run(str(path))

    def open_checkpoint(self, path: str) -> None:
        self.window.show_tab("sample")
        self.window.set_checkpoint(str(path))
        if not self._follows_loads:   # a window without a worker session: no load will say it opened
            self.remember_checkpoint(str(path))

    def open_run_dialog(self) -> None:
        path = self.ask_dir("Open run", self._start_dir("run"))
        if path:
            self._note_dir("run", Path(path).parent)
            self.open_run(path)

    def open_checkpoint_dialog(self) -> None:
        path = self.ask_open("Open checkpoint", self._start_dir("checkpoint"), "Checkpoints (*.safetensors)")
        if path:
            self._note_dir("checkpoint", Path(path).parent)
            self.open_checkpoint(path)

    def open_dataset_dialog(self) -> None:
        path = self.ask_dir("Open dataset folder", self._start_dir("dataset"))
        if path:
            self._note_dir("dataset", Path(path).parent)
            self.window.data_panel.set_folder(str(path))

    def export_config(self, path: str | None = None) -> str | None:
        """Write the panels' config as TOML (asking where unless `path` is given); returns the path."""
        cfg = self.window.build_config()
        if cfg is None:
            self.inform("Export config", "The current settings are not a valid config yet: "
                                         "fix the fields the Data and Model panels mark first.")
            return None
        if not path:
            start = str(Path(self._start_dir("export")) / f"{cfg.name}.toml")
            path = self.ask_save("Export config", start, "GenLab config (*.toml)")
            if not path:
                return None
        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(".toml")
        try:
            cfg.save(path)
        except (OSError, ConfigError) as e:
            self.inform("Export config", f"Could not write {path}: {e}")
            return None
        self._note_dir("export", path.parent)
        self._status(f"config written to {path}")
        return str(path)

    def settings_store(self):
        """The window's settings, or settings for this session only (a window built without)."""
        if self.settings is not None:
            return self.settings
        if self._scratch is None:
            from app.qt_util import scratch_settings
            self._scratch = scratch_settings()
        return self._scratch

    def open_settings(self) -> None:
        dlg = SettingsDialog(self.settings_store(), parent=self.window)
        if dlg.exec() == QDialog.Accepted:
            self.apply_settings()

    def apply_settings(self) -> None:
        """What Settings changes at once: the runs folder of new runs (the rest applies to new
        runs through their config, or at the next start)."""
        root = runs_root_setting(self.settings_store())
        if root is not None and hasattr(self.window, "runs_root"):
            self.window.runs_root = root
            if hasattr(self.window.training, "runs_root"):
                self.window.training.runs_root = root
            self._status(f"new runs go to {root}")

    # ---- Run -----------------------------------------------------------------------------------
    def compare_families_on_data(self) -> None:
        """The runs browser's dialog; once queued, the Runs tab shows the Families view waiting for it."""
        if self.window.runs.compare_families_on_data():
            self.show_tab("runs")

    def _item(self, key: str):
        return next(it for it in RUN_ITEMS if it[0] == key)

    def run_action(self, key: str) -> None:
        """Do what the panel's button does (nothing while the button is disabled)."""
        _key, _text, _sc, btn_name, method = self._item(key)
        t = self.window.training
        btn = getattr(t, btn_name, None)
        if btn is not None:
            if btn.isEnabled():
                btn.click()
            self.sync_run_actions()
            return
        fn = getattr(t, method, None)
        if callable(fn):
            fn()
        elif key in ENGINE_COMMANDS:
            t.job.command(ENGINE_COMMANDS[key])

    def sync_run_actions(self) -> None:
        t = self.window.training
        for key, text, _sc, btn_name, method in RUN_ITEMS:
            a = self.actions[key]
            btn = getattr(t, btn_name, None)
            if btn is not None:
                a.setEnabled(btn.isEnabled())
            elif key == "continue":
                can = getattr(t, "can_continue", None)
                a.setEnabled(callable(getattr(t, method, None)) and (can() if callable(can) else True))
            if key == "pause" and btn is not None:
                a.setText("&Resume" if btn.text().strip().lower().startswith("resume") else "&Pause")

    def eventFilter(self, obj, ev) -> bool:
        if ev.type() == QEvent.EnabledChange:
            self.sync_run_actions()
        return False

    # ---- View ----------------------------------------------------------------------------------
    def show_tab(self, key: str, index: int | None = None) -> None:
        tabs = getattr(self.window, "tabs", None)
        i = TAB_KEYS.index(key) if index is None else index
        if tabs is not None and not tabs.isTabEnabled(i):
            self._status(tabs.tabToolTip(i) or f"{tabs.tabText(i)} is not available for this model")
            self.view_actions[TAB_KEYS[tabs.currentIndex()]].setChecked(True)
            return
        self.window.show_tab(key)

    def _on_tab(self, index: int) -> None:
        if 0 <= index < len(TAB_KEYS):
            self.view_actions[TAB_KEYS[index]].setChecked(True)
        # Ctrl+Return starts a run on the Train tab only: on a canvas it is the canvas's own
        # (render, fill), and two actions on one key would both stay silent
        start = self.actions["start"]
        start.setShortcut(self.declared[start] if index == TAB_KEYS.index("train") else QKeySequence())

    def _sync_view(self) -> None:
        tabs = getattr(self.window, "tabs", None)
        if tabs is None:
            return
        for i, key in enumerate(TAB_KEYS):
            a = self.view_actions[key]
            a.setEnabled(tabs.isTabEnabled(i))   # greyed while the menu is open; aboutToHide re-enables
            a.setToolTip(tabs.tabToolTip(i))

    # ---- Help ----------------------------------------------------------------------------------
    def shortcut_entries(self) -> list[tuple[str, str, str]]:
        """(where, action, keys) for every menu action with a shortcut, then the canvases' own."""
        out = []
        for title in ("File", "Run", "View", "Help"):
            for a in self.menus[title].actions():
                seq = self.declared.get(a)
                if seq is None or seq.isEmpty():
                    continue
                what = _clean(a.text())
                if a is self.actions["start"]:
                    what = "Start a run (on the Train tab)"
                elif title == "View":
                    what = f"Show the {what} tab"
                out.append((f"{title} menu", what, seq.toString(QKeySequence.PortableText)))
        return out + CANVAS_SHORTCUTS

    def show_shortcuts(self) -> ShortcutsDialog:
        if self._shortcuts_dialog is None:
            self._shortcuts_dialog = ShortcutsDialog(self.shortcut_entries(), parent=self.window)
        self._shortcuts_dialog.show()
        self._shortcuts_dialog.raise_()
        self._shortcuts_dialog.activateWindow()
        return self._shortcuts_dialog

    def show_about(self) -> AboutDialog:
        dlg = AboutDialog(parent=self.window)
        dlg.setAttribute(Qt.WA_DeleteOnClose)
        dlg.open()
        return dlg

    # ---- small helpers -------------------------------------------------------------------------
    def _status(self, text: str) -> None:
        bar = getattr(self.window, "statusBar", None)
        if callable(bar):
            bar().showMessage(text, 10000)

    def _ask_dir(self, title: str, start: str) -> str:
        return QFileDialog.getExistingDirectory(self.window, title, start)

    def _ask_open(self, title: str, start: str, filt: str) -> str:
        return QFileDialog.getOpenFileName(self.window, title, start, filt)[0]

    def _ask_save(self, title: str, start: str, filt: str) -> str:
        return QFileDialog.getSaveFileName(self.window, title, start, filt)[0]

    def _inform(self, title: str, text: str) -> None:
        QMessageBox.warning(self.window, title, text)


def build_menus(window) -> MenuActions:
    """Add File, Run, View and Help to window.menuBar(); returns the actions (keep a reference:
    the window calls remember_run / remember_checkpoint on it)."""
    return MenuActions(window).build()
