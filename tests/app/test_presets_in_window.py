"""Every preset of every family goes through the window's forms unchanged and starts: picked in the
Model panel's preset combo, the config the panels give back equals the preset's, field for field
(each value as its type: a combo of integer choices gives 3, not "3"); and a tiny version of it,
set through the same forms (8×8 images, the family's TINY sizes, 2 steps, no evaluation), starts a
real training process from the Start button and gets its first metrics point."""
import dataclasses
import json

import pytest
from PySide6.QtCore import Qt
from test_canvas_views import FakeClient

from app.main_window import MainWindow
from app.worker_session import WorkerSession
from engine.core.config import RunConfig, list_presets, load_preset
from engine.core.families import FAMILIES, family_spec
from tests.conftest import tiny_parent_fields

PRESETS = sorted(list_presets())
SECTIONS = ("data", "model", "training", "sampling", "metrics")


def _one_per_family() -> list[str]:
    """The first preset of each family (every family has one: checked below)."""
    first: dict[str, str] = {}
    for name in PRESETS:
        first.setdefault(load_preset(name).model.family, name)
    return [first[f] for f in FAMILIES if f in first]


@pytest.fixture
def window(qtbot, tmp_path):
    """A window whose canvas worker is a stand-in (these tests train; they draw nothing)."""
    w = MainWindow(runs_root=tmp_path / "runs", session=WorkerSession(FakeClient()))
    qtbot.addWidget(w)
    w.training.ask = lambda *a: "Stop and save"   # closing during a run: no dialog in tests
    w.show()
    yield w
    w.close()


def _pick(window: MainWindow, name: str) -> None:
    """The preset chosen in the combo, as a person picks it."""
    combo = window.model_panel.preset
    combo.setCurrentIndex(combo.findData(name))


def _differences(got: RunConfig, want: RunConfig) -> list[str]:
    out = [f"name: {got.name!r} != {want.name!r}"] if got.name != want.name else []
    for section in SECTIONS:
        a, b = dataclasses.asdict(getattr(got, section)), dataclasses.asdict(getattr(want, section))
        out += [f"{section}.{k}: {a[k]!r} ({type(a[k]).__name__}) != {b[k]!r} ({type(b[k]).__name__})"
                for k in b if a.get(k) != b[k] or type(a.get(k)) is not type(b[k])]
    return out


def test_every_family_has_a_preset():
    assert {load_preset(n).model.family for n in PRESETS} == set(FAMILIES)


@pytest.mark.parametrize("name", PRESETS)
def test_a_preset_round_trips_through_the_forms_unchanged(window, name):
    _pick(window, name)
    cfg = window.build_config()
    assert cfg is not None, window.model_panel.error.text()
    differences = _differences(cfg, load_preset(name))
    assert not differences, "\n".join(differences)
    assert window.model_panel.error.isHidden()


def _tiny_through_the_forms(window: MainWindow, family: str) -> None:
    """The preset shrunk to seconds, typed into the forms (so the values come back through them)."""
    tiny = family_spec(family).config.TINY
    panel = window.model_panel
    window.data_panel.form.set_values({"resolution": 8, "count": 64})
    panel.model_form.set_values({**tiny.get("model", {}), **tiny_parent_fields(family)})
    panel.training_form.set_values({"steps": 2, "batch_size": 8, "warmup_steps": 0, "log_every": 1,
                                    "sample_every": 0, "checkpoint_every": 0, "device": "cpu"})
    panel.sampling_form.set_values({"grid_size": 4, **tiny.get("sampling", {})})
    panel.metrics_form.set_values({"every": 0})


@pytest.mark.parametrize("name", _one_per_family())
def test_a_preset_starts_from_the_start_button(window, qtbot, name):
    _pick(window, name)
    family = load_preset(name).model.family
    _tiny_through_the_forms(window, family)
    rows = []
    window.watcher.metrics.connect(rows.extend)
    qtbot.mouseClick(window.training.start_btn, Qt.LeftButton)
    assert window.model_panel.error.isHidden(), window.model_panel.error.text()
    assert window.training.job.is_running()
    qtbot.waitUntil(lambda: not window.training.job.is_running(), timeout=240000)   # a loaded CPU
    window.watcher.poll()
    assert window.training.state == "finished", window.training.error.text()
    assert rows and rows[0]["step"] == 1
    stored = RunConfig.load(window.training.run_dir / "config.toml", stored=True)
    assert stored.model.family == family and stored.data.resolution == 8 and stored.training.steps == 2
    wanted = {k: v for k, v in dataclasses.asdict(load_preset(name).model).items()
              if k not in family_spec(family).config.TINY.get("model", {}) and k not in tiny_parent_fields(family)}
    assert {k: v for k, v in dataclasses.asdict(stored.model).items() if k in wanted} == wanted
    assert json.loads((window.training.run_dir / "status.json").read_text())["state"] == "finished"
