"""Start on a stopped run asks whether to continue it, and when the panels now hold another model
(another family, or other settings) it says what differs and offers a new run first (Return picks
it): continuing would train the run's settings, not the ones on screen."""
import json

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app.config_diff import describe_differences
from app.panels.training_panel import TrainingPanel
from tests.conftest import tiny_family_config


@pytest.fixture
def stopped_ddpm(tmp_path):
    """A DDPM run folder, stopped at step 3 of 6 (its files only: nothing trains)."""
    run = tmp_path / "runs" / "20260101-120000-conf-ddpm"
    run.mkdir(parents=True)
    tiny_family_config("ddpm", steps=6).save(run / "config.toml")
    (run / "status.json").write_text(json.dumps({"state": "stopped", "step": 3, "total_steps": 6}))
    return run


def _panel(qtbot, tmp_path, run, cfg):
    panel = TrainingPanel(tmp_path / "runs", lambda: cfg)
    qtbot.addWidget(panel)
    panel.show_run(run)
    panel.show_status(json.loads((run / "status.json").read_text()), run)
    assert panel.can_continue()
    asked = []
    panel.ask = lambda title, text, choices: asked.append((text, choices)) and None or "Cancel"
    return panel, asked


def test_another_family_in_the_panels_is_named_and_a_new_run_is_the_default(qtbot, tmp_path, stopped_ddpm):
    panel, asked = _panel(qtbot, tmp_path, stopped_ddpm, tiny_family_config("stylegan", steps=6))
    assert panel.start() is False and not panel.job.is_running()      # Cancel: nothing starts
    [(text, choices)] = asked
    assert "family stylegan vs ddpm" in text and "other settings" in text
    assert choices == ["New run", "Continue", "Cancel"]


def test_the_same_settings_offer_continue_first_and_other_values_are_counted(qtbot, tmp_path, stopped_ddpm):
    same = tiny_family_config("ddpm", steps=6).replace(name="renamed", training={"steps": 20})
    panel, asked = _panel(qtbot, tmp_path, stopped_ddpm, same)   # a new name and length: the same model
    panel.start()
    assert asked[-1][1] == ["Continue", "New run", "Cancel"] and "differ" not in asked[-1][0]

    other = tiny_family_config("ddpm", steps=6).replace(training={"lr": 0.05}, model={"dropout": 0.25})
    panel.config_provider = lambda: other
    panel.start()
    text, choices = asked[-1]
    assert choices[0] == "New run"
    assert "2 settings differ: " in text and "training.lr 0.05 vs " in text and "model.dropout 0.25 vs 0" in text


def test_the_dialog_puts_the_default_on_the_first_choice(qtbot, tmp_path, stopped_ddpm):
    panel = TrainingPanel(tmp_path / "runs", lambda: None)
    qtbot.addWidget(panel)
    seen = {}

    def answer():
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        seen["default"] = box.defaultButton().text()
        seen["text"] = box.text()
        next(b for b in box.buttons() if b.text() == "Cancel").click()

    QTimer.singleShot(50, answer)
    assert panel._ask_dialog("Start", "settings differ", ["New run", "Continue", "Cancel"]) == "Cancel"
    assert seen == {"default": "New run", "text": "settings differ"}


def test_describe_differences_names_few_and_counts_the_rest():
    base = tiny_family_config("ddpm")
    assert describe_differences(base, base) == ""
    many = base.replace(training={"lr": 0.5, "batch_size": 4, "ema_decay": 0.9, "warmup_steps": 3})
    text = describe_differences(many, base)
    assert text.startswith("4 settings differ: ") and text.endswith(", and 1 more")
    assert describe_differences(tiny_family_config("vae"), base) == "family vae vs ddpm"
