from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QFormLayout

from app.widgets.config_form import ConfigForm
from engine.core.config import TrainingConfig
from engine.families.ddpm.section import DDPMConfig


def test_config_form_round_trip_and_tooltips(qtbot):
    form = ConfigForm(DDPMConfig, exclude=("family",))
    qtbot.addWidget(form)
    cfg = DDPMConfig(base_channels=48, channel_mults=[1, 2, 4], schedule="linear", class_conditional=False)
    form.set_values(cfg)
    v = form.values()
    assert v["base_channels"] == 48 and v["channel_mults"] == [1, 2, 4]
    assert v["schedule"] == "linear" and v["class_conditional"] is False
    assert "Noise schedule" in form.editors["schedule"].toolTip()
    assert "family" not in form.editors


def test_config_form_ranges_follow_schema(qtbot):
    form = ConfigForm(TrainingConfig)
    qtbot.addWidget(form)
    assert form.editors["batch_size"].minimum() == 1
    assert form.editors["ema_decay"].maximum() == 1.0
    changes = []
    form.changed.connect(lambda: changes.append(1))
    form.editors["steps"].setValue(123)
    assert changes and form.values()["steps"] == 123


def test_config_form_list_fields_keep_decimals(qtbot):
    from engine.families.hvae.section import HVAESampleOptions
    form = ConfigForm(HVAESampleOptions)
    qtbot.addWidget(form)
    form.editors["group_temperatures"].setText("1, 0.5, 1e-1, 0")
    assert form.values()["group_temperatures"] == [1, 0.5, 0.1, 0]


def test_quality_plot_says_when_the_next_evaluation_comes(qtbot):
    from app.panels.plots_panel import MetricPlot
    plot = MetricPlot()
    qtbot.addWidget(plot)
    assert "off" in plot.title.text()
    plot.set_schedule(600, ["fid", "kid"])
    assert "every 600 steps, next at step 600" in plot.title.text()
    plot.add_rows([{"step": 610, "loss/mse": 0.1}])
    assert "next at step 1200" in plot.title.text()
    plot.add_rows([{"step": 1200, "quality/fd_domain": 7.5}])
    assert "FD-domain" in plot.title.text() and plot.point_count() == 1


def test_quality_plot_stays_still_until_its_first_point(qtbot):
    """Loss lines passing through must not repaint an empty quality plot, nor move it with the loss
    plot's axis: those repaints stalled the GUI thread while training (benchmarks/ui_stall.py)."""
    import pyqtgraph as pg
    from app.panels.plots_panel import MetricPlot
    plot, loss = MetricPlot(), pg.PlotWidget()
    qtbot.addWidget(plot)
    qtbot.addWidget(loss)
    plot.link_x(loss)
    drawn = []
    plot.line.setData = lambda *a, **k: drawn.append(a)
    plot.add_rows([{"step": s, "loss/mse": 0.1} for s in range(1, 50)])
    assert drawn == [] and plot.plot.getViewBox().linkedView(0) is None
    plot.add_rows([{"step": 600, "quality/fid": 40.0}])
    assert len(drawn) == 1 and plot.plot.getViewBox().linkedView(0) is loss.getViewBox()
    plot.clear()
    assert plot.plot.getViewBox().linkedView(0) is None


def test_kl_bars_show_the_newest_value_of_each_dimension_in_natural_order(qtbot):
    from app.panels.plots_panel import BarPlot
    plot = BarPlot(("kl/",), "KL per latent dimension or group (nats): a bar at 0 = unused")
    qtbot.addWidget(plot)
    plot.add_rows([{"step": 10, **{f"kl/z{j}": 1.0 for j in range(12)}, "loss/kl": 12.0}])
    plot.add_rows([{"step": 20, **{f"kl/z{j}": (0.0 if j in (3, 11) else 2.0 + j) for j in range(12)}}])
    assert plot.bar_values()["kl/z10"] == 12.0 and "loss/kl" not in plot.bar_values()
    # drawn at its next redraw tick (every REDRAW_MS; the wait is long because an event loop
    # busy with the windows earlier tests left can hold a tick back)
    qtbot.waitUntil(lambda: "step 20" in plot.readout.text(), timeout=5000)
    xs, hs = plot.bars.opts["x"], plot.bars.opts["height"]
    assert list(xs) == list(range(12)) and hs[2] == 4.0 and hs[10] == 12.0     # z2 before z10
    assert "step 20" in plot.readout.text() and "2 near 0" in plot.readout.text() and plot.point_count() == 2


def test_the_watcher_reports_each_declared_artifact_apart(qtbot, tmp_path):
    """A run written before artifacts were declared (no artifacts.json) shows its sample grids and
    the known artifacts whose folders it has; a run's artifacts.json says what it declares."""
    import json
    from PIL import Image
    from app.run_watcher import RunWatcher
    (tmp_path / "samples" / "recon").mkdir(parents=True)
    Image.new("L", (8, 8)).save(tmp_path / "samples" / "step_000010.png")
    Image.new("L", (8, 8)).save(tmp_path / "samples" / "recon" / "step_000010.png")
    w = RunWatcher()
    declared, images = [], []
    w.artifacts.connect(lambda specs: declared.append([s.key for s in specs]))
    w.artifact.connect(lambda key, path: images.append((key, path)))
    w.watch(tmp_path)
    assert declared == [["samples", "recon"]]
    assert images == [("samples", str(tmp_path / "samples" / "step_000010.png")),
                      ("recon", str(tmp_path / "samples" / "recon" / "step_000010.png"))]
    # a run that declares another artifact: the watcher follows what the run says
    (tmp_path / "samples" / "hist").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "samples" / "hist" / "step_000010.png")
    (tmp_path / "artifacts.json").write_text(json.dumps([
        {"key": "samples", "title": "samples", "folder": "samples", "caption": "samples at step {step}"},
        {"key": "hist", "title": "code usage", "folder": "samples/hist", "caption": "code usage, step {step}"}]))
    w.poll()
    w.stop()
    assert declared[-1] == ["samples", "hist"]
    assert images[-1] == ("hist", str(tmp_path / "samples" / "hist" / "step_000010.png"))


def test_the_train_tab_shows_whatever_artifacts_a_run_declares(qtbot):
    from app.panels.artifacts_pane import ArtifactsPane
    from engine.core.artifacts import SAMPLES, ArtifactSpec
    pane = ArtifactsPane()
    qtbot.addWidget(pane)
    assert list(pane.views) == ["samples"] and "Sample grids appear here" in pane.views["samples"].image.placeholder
    hist = ArtifactSpec("hist", "code usage", "samples/hist", "code usage, step {step}")
    pane.set_specs([SAMPLES, hist])
    assert list(pane.views) == ["samples", "hist"] and pane.views["hist"].isHidden()   # no image yet
    pane.show()
    path = str(Path(__file__).resolve().parents[2] / "resources" / "icons" / "genlab-48.png")
    pane.show_image("hist", path)
    assert pane.views["hist"].image.path == path and not pane.views["hist"].isHidden()
    pane.clear()   # another run is watched: nothing of this one stays
    assert pane.views["hist"].image.path == "" and pane.views["hist"].isHidden()


def test_a_missing_qt_system_library_is_named_in_one_line():
    from app.qt_check import qt_platform_hint
    lacking = {"xcb-cursor"}
    find = lambda lib: None if lib in lacking else f"lib{lib}.so"  # noqa: E731
    line = qt_platform_hint("", "linux", find)
    assert "sudo apt install libxcb-cursor0" in line and "\n" not in line
    assert qt_platform_hint("offscreen", "linux", find) == ""     # no xcb: nothing to say
    assert qt_platform_hint("", "darwin", find) == ""
    assert qt_platform_hint("", "linux", lambda lib: "x.so") == ""


def test_a_plot_with_a_long_title_and_many_curves_does_not_widen_its_page(qtbot):
    """A hierarchical VAE's KL plot (long title, a readout of every group) once made the Runs tab
    scroll sideways at 1024 px: the title and readout are cut instead, the full text in tooltips."""
    from app.panels.plots_panel import LossPlot
    title = "KL per latent dimension or group (nats): a bar at 0 = unused"
    plot = LossPlot(("kl/",), title)
    qtbot.addWidget(plot)
    plot.add_rows([{"step": s, **{f"kl/group_{g}": 100.0 + g for g in range(8)}} for s in (1, 2)])
    plot._redraw()
    assert "group_7" in plot.readout.toolTip()
    assert plot.minimumSizeHint().width() < 300


# ---- every editor gives back its field's type; floats show as written; advanced fields fold ----
from dataclasses import dataclass  # noqa: E402

from engine.core.schema import opt  # noqa: E402


@dataclass
class Choices:
    kernel: int = opt(3, "an int with choices", choices=(3, 5, 7))
    scale: float = opt(0.5, "a float with choices", choices=(0.5, 1.0, 2.0))
    mode: str = opt("a", "a str with choices", choices=("a", "b"))
    flag: bool = opt(False, "a bool with choices", choices=(False, True))
    rate: float = opt(0.0, "a plain float")
    shown: float = opt(2.0, "a float shown with two decimals", decimals=2)
    psi: float = opt(1.0, "a slider", min=0.0, max=2.0, slider=True)
    depth: int = opt(4, "an advanced int", min=1, advanced=True)
    beta: float = opt(0.9, "an advanced float", min=0.0, max=1.0, advanced=True)


def test_every_editor_with_choices_gives_back_its_fields_type(qtbot):
    form = ConfigForm(Choices)
    qtbot.addWidget(form)
    form.set_values(Choices(kernel=5, scale=2.0, mode="b", flag=True))
    v = form.values()
    assert (v["kernel"], v["scale"], v["mode"], v["flag"]) == (5, 2.0, "b", True)
    assert [type(v[k]) for k in ("kernel", "scale", "mode", "flag")] == [int, float, str, bool]
    form.editors["kernel"].setCurrentIndex(2)           # a person's pick
    form.editors["flag"].setCurrentIndex(0)
    assert form.values()["kernel"] == 7 and type(form.values()["kernel"]) is int
    assert form.values()["flag"] is False
    assert form.editors["kernel"].currentText() == "7"


def test_floats_keep_their_value_and_show_as_written(qtbot):
    form = ConfigForm(Choices)
    qtbot.addWidget(form)
    form.set_values(Choices())
    rate, shown = form.editors["rate"], form.editors["shown"]
    assert rate.text() == "0.0" and shown.text() == "2.00"    # not "0.000000"
    for value, text in ((0.0002, "0.0002"), (1e-05, "1e-05"), (0.123456789, "0.123456789"), (3.0, "3.0")):
        form.set_values({"rate": value})
        assert rate.text() == text and form.values()["rate"] == value
    rate.lineEdit().setText("0.25")                      # typed
    rate.interpretText()
    assert form.values()["rate"] == 0.25
    assert rate.validate("abc", 0)[0] == QValidator.Invalid and rate.validate("1e", 2)[0] == QValidator.Intermediate
    form.set_values({"psi": 0.7})                        # a slider keeps 0.7 though it moves in steps of 0.01
    assert form.values()["psi"] == 0.7
    form.editors["psi"].slider.setValue(150)             # dragged
    assert form.values()["psi"] == 1.5 and form.editors["psi"].label.text() == "1.50"


def test_advanced_fields_fold_under_one_row_that_counts_the_changed_ones(qtbot):
    form = ConfigForm(Choices, fold_advanced=True)
    qtbot.addWidget(form)
    form.set_values(Choices())
    form.show()
    toggle = form.advanced_toggle
    assert toggle.text() == "Advanced (2)" and "depth" in toggle.toolTip()
    assert form.editors["depth"].isHidden() and form.editors["beta"].isHidden()
    assert not form.editors["kernel"].isHidden()
    rows = [form.layout().itemAt(i, QFormLayout.FieldRole) for i in range(form.layout().rowCount())]
    assert [r.widget() for r in rows[-2:]] == [form.editors["depth"], form.editors["beta"]]   # last
    form.set_values({"depth": 6})
    assert toggle.text() == "Advanced (2, 1 changed)" and form.values()["depth"] == 6   # hidden, still there
    qtbot.mouseClick(toggle, Qt.LeftButton)
    assert form.advanced_shown() and not form.editors["depth"].isHidden()
    assert ConfigForm(Choices).advanced_toggle is None                      # folding is asked for
