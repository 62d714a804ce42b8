"""The menu bar (File, Run, View, Help), its shortcuts, recent runs and checkpoints, Export config,
and the Settings, About and Keyboard-shortcuts dialogs. The window is the real MainWindow with a
fake worker client (no engine process), or a small stand-in with the same public face."""
import json
import os
import sys
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QAbstractButton, QApplication, QMainWindow, QWidget

from app.canvases import TAB_KEYS
from app.dialogs import (AboutDialog, SettingsDialog, apply_config_defaults, apply_ui_scale, describe_device,
                         inception_candidates)
from app.menus import MAX_RECENT, build_menus
from engine.core.config import RunConfig
from tests.app.test_canvas_views import DDPM, FakeClient


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    import app.worker_session as ws
    monkeypatch.setattr(ws, "WorkerClient", FakeClient)
    from app.main_window import MainWindow
    w = MainWindow(runs_root=tmp_path / "runs")
    qtbot.addWidget(w)
    w.menus_ = getattr(w, "menus", None) or build_menus(w)   # the window builds its own once wired
    yield w
    w.close()


class FakeWindow(QMainWindow):
    """The public face build_menus needs, recording what the menus ask of it."""

    def __init__(self, settings=None, with_continue=True):
        super().__init__()
        self.settings = settings
        self.calls: list[tuple] = []
        rec = lambda name: (lambda *a: self.calls.append((name, *a)))  # noqa: E731
        self.training = SimpleNamespace(start=rec("start"), toggle_pause=rec("pause"), stop=rec("stop"),
                                        job=SimpleNamespace(command=rec("command")))
        if with_continue:
            self.training.continue_run = rec("continue")
        self.data_panel = SimpleNamespace(set_folder=rec("set_folder"))
        self.open_run, self.set_checkpoint, self.show_tab = rec("open_run"), rec("set_checkpoint"), rec("show_tab")

    def build_config(self):
        return RunConfig(name="fake")


def _ini(tmp_path, name="settings.ini") -> QSettings:
    return QSettings(str(tmp_path / name), QSettings.IniFormat)


def _keys(action) -> str:
    return action.shortcut().toString(QKeySequence.PortableText)


# ---- the menu bar -------------------------------------------------------------------------------
def test_the_menu_bar_has_file_run_view_help_with_their_actions_and_shortcuts(window):
    m = window.menus_
    bar = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert bar == ["File", "Run", "View", "Help"]
    texts = {title: [a.text().replace("&", "") for a in m.menus[title].actions() if not a.isSeparator()]
             for title in ("File", "Run", "View", "Help")}
    assert texts["File"] == ["Open run…", "Open checkpoint…", "Open dataset folder…", "Recent runs",
                             "Recent checkpoints", "Export config…", "Settings…", "Quit"]
    assert texts["Run"] == ["Start", "Pause", "Stop", "Sample now", "Save now", "Continue", "Add to queue",
                            "Compare families on this data…"]
    assert texts["View"] == ["Train", "Runs", "Sample", "Style mixing", "Interpolate", "Inpainting", "Detection"]
    assert texts["Help"] == ["Keyboard shortcuts", "About GenLab"]
    a = m.actions
    assert [_keys(a[k]) for k in ("start", "pause", "stop", "quit", "shortcuts")] == \
        ["Ctrl+Return", "Ctrl+P", "Ctrl+.", "Ctrl+Q", "F1"]
    assert [_keys(m.view_actions[k]) for k in TAB_KEYS] == [f"Ctrl+{i}" for i in range(1, len(TAB_KEYS) + 1)]
    # a fresh window is idle: Start on, the controls of a live run off, nothing to continue
    assert a["start"].isEnabled()
    assert not any(a[k].isEnabled() for k in ("pause", "stop", "sample_now", "save_now", "continue"))


def _keys_in_view(window) -> dict[str, list[str]]:
    """Each key sequence that would do something now, with its owners: the menu bar's enabled
    actions and the visible, enabled buttons and window-wide actions and shortcuts of the window."""
    menus = set(window.menus_.menus.values())
    owners: dict[str, list[str]] = {}

    def add(seqs, who):
        for seq in seqs:
            if not seq.isEmpty():
                owners.setdefault(seq.toString(QKeySequence.PortableText), []).append(who)

    for a in window.findChildren(QAction):
        if not a.isEnabled() or a.shortcutContext() not in (Qt.WindowShortcut, Qt.ApplicationShortcut):
            continue
        where = [o for o in a.associatedObjects() if isinstance(o, QWidget)]
        if any(o in menus or o.isVisible() for o in where):
            add(a.shortcuts(), a.text())
    for b in window.findChildren(QAbstractButton):
        if b.isVisible() and b.isEnabled():
            add([b.shortcut()], b.text())
    for sc in window.findChildren(QShortcut):
        if sc.isEnabled() and sc.parentWidget() is not None and sc.parentWidget().isVisible():
            add(sc.keys(), "QShortcut")
    return owners


def test_file_actions_have_the_standard_keys_and_no_key_has_two_owners_on_any_tab(window, qtbot):
    m = window.menus_
    # Qt's standard keys where the platform has them (Ctrl+O, Save As, Quit, Help), else GenLab's own
    assert _keys(m.actions["open_run"]) == QKeySequence(QKeySequence.Open).toString(QKeySequence.PortableText) \
        == "Ctrl+O"
    assert _keys(m.actions["open_checkpoint"]) == "Ctrl+Shift+O"
    assert _keys(m.actions["export_config"]) == "Ctrl+Shift+S"
    listed = {what: keys for _where, what, keys in m.shortcut_entries()}
    assert listed["Open run"] == "Ctrl+O" and listed["Open checkpoint"] == "Ctrl+Shift+O"
    asked = []
    m.ask_dir = lambda title, start: asked.append(title) or ""
    m.ask_open = lambda title, start, filt: asked.append(title) or ""
    m.ask_save = lambda title, start, filt: asked.append(title) or ""
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    for key, mods in ((Qt.Key_O, Qt.ControlModifier), (Qt.Key_O, Qt.ControlModifier | Qt.ShiftModifier),
                      (Qt.Key_S, Qt.ControlModifier | Qt.ShiftModifier)):
        qtbot.keyClick(window, key, mods)
    assert asked == ["Open run", "Open checkpoint", "Export config"]
    # a key with two owners in view does nothing at all (Qt calls it ambiguous): none on any tab
    for i in range(window.tabs.count()):
        window.tabs.setCurrentIndex(i)
        QApplication.processEvents()
        shared = {k: v for k, v in _keys_in_view(window).items() if len(v) > 1}
        assert not shared, (TAB_KEYS[i], shared)


def test_view_actions_and_their_shortcuts_switch_tabs_and_ctrl_return_belongs_to_the_tab(window, qtbot):
    m = window.menus_
    m.view_actions["interpolate"].trigger()
    assert window.tabs.currentIndex() == TAB_KEYS.index("interpolate")
    assert m.view_actions["interpolate"].isChecked() and not m.view_actions["train"].isChecked()
    # on a canvas Ctrl+Return is the canvas's (render, fill); Start keeps it on the Train tab only
    assert m.actions["start"].shortcut().isEmpty()
    m.view_actions["train"].trigger()
    assert window.tabs.currentIndex() == 0 and _keys(m.actions["start"]) == "Ctrl+Return"

    # the keys themselves, in the shown window
    window.show()
    window.activateWindow()
    qtbot.waitExposed(window)
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    qtbot.keyClick(window, Qt.Key_4, Qt.ControlModifier)
    assert window.tabs.currentIndex() == 3
    qtbot.keyClick(window, Qt.Key_1, Qt.ControlModifier)
    assert window.tabs.currentIndex() == 0
    # Ctrl+Return: Start on the Train tab; the Inpainting canvas's own button on its tab (never both:
    # two owners of one key would leave it silent)
    started, filled = [], []
    m.actions["start"].triggered.connect(lambda: started.append(1))
    window.training.config_provider = lambda: None           # Start does nothing more here
    qtbot.keyClick(window, Qt.Key_Return, Qt.ControlModifier)
    assert started == [1]
    inpaint = window.canvases["inpaint"]
    inpaint.inpaint_btn.clicked.connect(lambda: filled.append(1))
    qtbot.keyClick(window, Qt.Key_6, Qt.ControlModifier)
    assert window.current_tab() == "inpaint"
    qtbot.keyClick(window, Qt.Key_Return, Qt.ControlModifier)
    qtbot.waitUntil(lambda: filled == [1], timeout=3000)   # a button's shortcut animates its click
    assert started == [1]
    qtbot.keyClick(window, Qt.Key_1, Qt.ControlModifier)

    # a tab the loaded model cannot use is refused, with the reason in the status bar
    window.set_checkpoint("/runs/a/step_000010.safetensors")
    window.session.client.ready(DDPM, {})
    mix = TAB_KEYS.index("style-mixing")
    assert not window.tabs.isTabEnabled(mix)
    m.view_actions["style-mixing"].trigger()
    assert window.tabs.currentIndex() == 0 and m.view_actions["train"].isChecked()
    assert "per-layer styles" in window.statusBar().currentMessage()
    m.menus["View"].aboutToShow.emit()                   # greyed while the menu is open…
    assert not m.view_actions["style-mixing"].isEnabled() and m.view_actions["sample"].isEnabled()
    m.menus["View"].aboutToHide.emit()                   # …so a stale state never blocks its shortcut
    assert m.view_actions["style-mixing"].isEnabled()


def test_run_actions_follow_the_training_panels_buttons_and_press_them(window):
    m, t = window.menus_, window.training
    sent = []
    t.job.command = sent.append
    t.job.event.emit({"event": "status", "state": "running", "step": 3})
    # no menu opened: the buttons' enabled changes already reached the actions (and their shortcuts)
    assert not m.actions["start"].isEnabled()
    assert all(m.actions[k].isEnabled() for k in ("pause", "stop", "sample_now", "save_now"))
    m.actions["sample_now"].trigger()
    m.actions["save_now"].trigger()
    assert sent == ["sample-now", "save-now"]
    m.actions["pause"].trigger()
    assert sent[-1] == "pause" and not m.actions["pause"].isEnabled()   # until the engine confirms
    t.job.event.emit({"event": "status", "state": "paused", "step": 4})
    m.menus["Run"].aboutToShow.emit()
    assert m.actions["pause"].isEnabled() and m.actions["pause"].text().replace("&", "") == "Resume"
    m.actions["start"].trigger()                         # disabled: nothing happens
    assert sent[-1] == "pause"


def test_a_stand_in_window_gets_the_run_actions_and_continue_only_when_the_panel_has_it(qtbot):
    w = FakeWindow()
    qtbot.addWidget(w)
    m = build_menus(w)
    for key in ("start", "pause", "stop", "sample_now", "save_now", "continue"):
        assert m.actions[key].isEnabled()
        m.actions[key].trigger()
    assert w.calls == [("start",), ("pause",), ("stop",), ("command", "sample-now"), ("command", "save-now"),
                       ("continue",)]
    bare = FakeWindow(with_continue=False)
    qtbot.addWidget(bare)
    assert not build_menus(bare).actions["continue"].isEnabled()


# ---- recent runs and checkpoints ----------------------------------------------------------------
def test_recent_runs_are_most_recent_first_at_most_ten_and_pruned_when_the_menu_opens(qtbot, tmp_path):
    settings = _ini(tmp_path)
    w = FakeWindow(settings)
    qtbot.addWidget(w)
    m = build_menus(w)
    runs = []
    for i in range(12):
        (tmp_path / f"run{i:02d}").mkdir()
        runs.append(str(tmp_path / f"run{i:02d}"))
        m.remember_run(runs[-1])
    assert m.recent_runs() == runs[::-1][:MAX_RECENT]
    m.remember_run(runs[5] + os.sep)                     # again (another spelling): first, no duplicate
    assert m.recent_runs()[0] == runs[5] and len(m.recent_runs()) == MAX_RECENT
    assert m.recent_runs().count(runs[5]) == 1

    os.rmdir(runs[11])                                   # deleted since: gone from the menu, for good
    menu = m.menus["Recent runs"]
    menu.aboutToShow.emit()
    entries = [a for a in menu.actions() if a.data()]
    assert [a.data() for a in entries] == [runs[5], runs[10], runs[9], runs[8], runs[7], runs[6], runs[4],
                                           runs[3], runs[2]]
    assert runs[11] not in json.loads(_ini(tmp_path).value("recent/runs"))   # stored, in the file
    entries[1].trigger()
    assert w.calls[-1] == ("open_run", runs[10]) and m.recent_runs()[0] == runs[10]

    # checkpoints: opened from the menu's dialog, they go to the Sample tab and into their own list
    ck = tmp_path / "run00" / "step_000010.safetensors"
    ck.write_bytes(b"x")
    m.ask_open = lambda title, start, filt: str(ck)
    m.actions["open_checkpoint"].trigger()
    assert w.calls[-2:] == [("show_tab", "sample"), ("set_checkpoint", str(ck))]
    assert m.recent_checkpoints() == [str(ck)]
    m.menus["Recent checkpoints"].aboutToShow.emit()
    [entry] = [a for a in m.menus["Recent checkpoints"].actions() if a.data()]
    assert entry.text().endswith("run00/step_000010.safetensors")
    # the dialogs start where the last one of their kind was opened
    assert settings.value("folders/checkpoint") == str(tmp_path / "run00")


def test_recent_lists_live_in_memory_for_a_window_without_settings_and_dataset_folders_open(qtbot, tmp_path):
    w = FakeWindow(None)
    qtbot.addWidget(w)
    m = build_menus(w)
    m.remember_run(str(tmp_path))
    assert m.recent_runs() == [str(tmp_path)]
    m.menus["Recent runs"].aboutToShow.emit()
    assert any(a.data() == str(tmp_path) for a in m.menus["Recent runs"].actions())
    m.ask_dir = lambda title, start: str(tmp_path)
    m.actions["open_dataset"].trigger()
    m.actions["open_run"].trigger()
    assert w.calls == [("set_folder", str(tmp_path)), ("open_run", str(tmp_path))]


# ---- export config ------------------------------------------------------------------------------
def test_export_config_writes_a_toml_that_run_config_reads_back(window, tmp_path):
    m = window.menus_
    asked = []
    m.ask_save = lambda title, start, filt: asked.append(start) or str(tmp_path / "exported")
    m.actions["export_config"].trigger()
    out = tmp_path / "exported.toml"
    assert out.is_file() and asked[0].endswith(".toml")
    assert RunConfig.load(out).to_dict() == window.build_config().to_dict()
    assert str(out) in window.statusBar().currentMessage()
    # an invalid config is not written; the user is told why
    told = []
    m.inform = lambda title, text: told.append(text)
    window.build_config = lambda: None
    assert m.export_config(str(tmp_path / "other.toml")) is None
    assert not (tmp_path / "other.toml").exists() and "not a valid config" in told[0]


# ---- settings -----------------------------------------------------------------------------------
def test_settings_dialog_round_trips_its_values_through_an_ini_file(qtbot, tmp_path):
    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"\0" * 3000)
    dlg = SettingsDialog(_ini(tmp_path))
    qtbot.addWidget(dlg)
    assert dlg.values() == {"paths/runs_root": "", "paths/inception_weights": "", "training/device": "auto",
                            "ui/scale": 100}
    assert "FD-domain" in dlg.inception_status.text()       # nothing set, nothing in the (test's) hub cache
    assert "never downloads" in dlg.inception_help.text()
    dlg.runs_root.setText(str(tmp_path / "my-runs"))
    dlg.inception.setText(str(tmp_path / "missing.pth"))
    assert "no such file" in dlg.inception_status.text()
    dlg.inception.setText(str(weights))
    assert "found" in dlg.inception_status.text() and "2.9 KB" in dlg.inception_status.text()
    dlg.device.setCurrentText("cpu")
    dlg.scale.setValue(150)
    dlg.accept()

    again = _ini(tmp_path)                                  # a fresh reader of the file
    assert again.value("paths/runs_root") == str(tmp_path / "my-runs")
    assert again.value("paths/inception_weights") == str(weights)
    assert again.value("training/device") == "cpu" and int(again.value("ui/scale")) == 150
    dlg2 = SettingsDialog(again)
    qtbot.addWidget(dlg2)
    assert dlg2.values() == {"paths/runs_root": str(tmp_path / "my-runs"), "paths/inception_weights": str(weights),
                             "training/device": "cpu", "ui/scale": 150}
    dlg2.restore_defaults()
    dlg2.reject()                                           # Cancel writes nothing
    assert _ini(tmp_path).value("training/device") == "cpu"

    # their effects: new configs get the defaults where they leave the choice open; the scale is
    # an environment variable for the next QApplication (one set by the user wins)
    cfg = apply_config_defaults(RunConfig(name="x"), again)
    assert cfg.training.device == "cpu" and cfg.metrics.inception_weights == str(weights)
    explicit = RunConfig(name="x").replace(training={"device": "cuda"})
    assert apply_config_defaults(explicit, again).training.device == "cuda"
    saved = os.environ.pop("QT_SCALE_FACTOR", None)
    try:
        assert apply_ui_scale(again) == 1.5 and os.environ["QT_SCALE_FACTOR"] == "1.5"
        os.environ["QT_SCALE_FACTOR"] = "2"
        assert apply_ui_scale(again) is None and os.environ["QT_SCALE_FACTOR"] == "2"
    finally:
        os.environ.pop("QT_SCALE_FACTOR", None)
        if saved is not None:
            os.environ["QT_SCALE_FACTOR"] = saved


def test_settings_runs_folder_applies_to_new_runs_at_once(window, tmp_path):
    m = window.menus_
    m.settings_store().setValue("paths/runs_root", str(tmp_path / "elsewhere"))
    m.apply_settings()
    assert window.runs_root == tmp_path / "elsewhere" and window.training.runs_root == tmp_path / "elsewhere"


def test_the_guis_inception_lookup_is_the_engines(tmp_path, monkeypatch):
    from engine.metrics.inception import WEIGHTS_NAME, candidate_paths
    assert inception_candidates(None)[-1].name == WEIGHTS_NAME
    monkeypatch.setenv("GENLAB_INCEPTION", str(tmp_path / "env.pth"))
    for user in (None, str(tmp_path / "given.pth")):
        assert inception_candidates(user) == candidate_paths(user)


# ---- about and shortcuts ------------------------------------------------------------------------
def test_about_shows_versions_at_once_and_the_device_when_the_check_process_answers(qtbot):
    dlg = AboutDialog()
    qtbot.addWidget(dlg)
    assert dlg.torch_label.text() == metadata.version("torch")       # from metadata: no torch import
    assert dlg.version_label.text().startswith("0.") and dlg.device_label.text() == "checking…"
    qtbot.waitUntil(lambda: not dlg.is_checking(), timeout=120_000)
    assert dlg.info["torch"] == metadata.version("torch")
    text = dlg.device_label.text()
    assert text != "checking…" and any(w in text for w in ("CPU", "CUDA", "MPS"))
    assert "Device found: " + text in dlg.as_text()

    broken = AboutDialog(command=(sys.executable, ["-c", "import sys; print('noise'); sys.exit(3)"]))
    qtbot.addWidget(broken)
    qtbot.waitUntil(lambda: not broken.is_checking(), timeout=30_000)
    assert "could not be imported" in broken.device_label.text() and "code 3" in broken.device_label.text()


def test_the_menus_and_dialogs_do_not_import_torch():
    import subprocess
    code = "import sys, app.menus, app.dialogs; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2], env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_describe_device_lines():
    assert describe_device({"torch": "2.3", "cuda": True, "device_name": "NVIDIA H100", "cuda_version": "12.1",
                            "cuda_devices": 2}) == "CUDA: NVIDIA H100 (+1 more) · CUDA 12.1"
    assert describe_device({"torch": "2.3", "mps": True}) == "Apple MPS (Metal GPU)"
    assert "CPU-only" in describe_device({"torch": "2.3+cpu", "device_name": "x86_64", "threads": 4})
    assert "finds no GPU" in describe_device({"torch": "2.3", "cuda_version": "12.1"})


def test_engine_info_prints_one_json_line(capsys):
    from engine.core.info import main
    main()
    info = json.loads(capsys.readouterr().out.strip())
    assert set(info) >= {"torch", "cuda", "device_name", "mps"} and isinstance(info["cuda"], bool)


def test_the_shortcuts_dialog_lists_the_menus_and_the_canvases_keys(window, qtbot):
    dlg = window.menus_.show_shortcuts()
    keys = dlg.keys()
    for k in ("Ctrl+Return", "F1", "Ctrl+Q", "Ctrl+P", "Ctrl+.", "Ctrl+1", "Esc", "Ctrl+Z", "Ctrl+wheel"):
        assert k in " | ".join(keys), k
    start = next(e for e in dlg.entries if e[0] == "Run menu" and e[2] == "Ctrl+Return")
    assert "Train tab" in start[1]
    assert dlg.table.rowCount() == len(dlg.entries)
    shown = [dlg.table.item(r, 2).text() for r in range(dlg.table.rowCount())]
    assert "F1" in shown
    # fed from the actions: listed even while a canvas tab has Start's key
    window.show_tab("sample")
    assert ("Run menu", "Start a run (on the Train tab)", "Ctrl+Return") in window.menus_.shortcut_entries()
    assert window.menus_.show_shortcuts() is dlg                  # one dialog, raised again
    dlg.close()
