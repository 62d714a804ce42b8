"""The Model panel as a person meets it: the run name follows the preset or family chosen until they
type their own, the advanced fields stay folded (and unfolded) across families, floats read as
written, and the four tabs fit the left column at 1024×640 without scroll arrows."""
import pytest
from test_canvas_views import FakeClient

from app.main_window import MainWindow
from app.panels.model_panel import ModelPanel, follow_name
from app.worker_session import WorkerSession


@pytest.fixture
def panel(qtbot):
    p = ModelPanel()
    qtbot.addWidget(p)
    p.load_preset("ddpm-digits")
    return p


def test_the_run_name_follows_the_family_and_preset_until_the_person_types_one(panel, qtbot):
    assert panel.run_name.text() == "ddpm-digits"
    panel.family.setCurrentText("stylegan")
    assert panel.run_name.text() == "stylegan-digits"            # not a StyleGAN run named ddpm-digits
    panel.load_preset("vae-digits")
    assert panel.run_name.text() == "vae-digits"
    panel.run_name.clear()
    qtbot.keyClicks(panel.run_name, "my run")                    # typed
    panel.family.setCurrentText("glow")
    assert panel.run_name.text() == "my run"
    panel.load_preset("pixelcnn-digits")
    assert panel.run_name.text() == "my run" and panel.build_config({}).name == "my run"


def test_a_bare_family_name_follows_the_family():
    assert follow_name("ddpm", "ddpm", "vae") == "vae"
    assert follow_name("realnvp-shapes", "glow", "ddpm") == "ddpm-shapes"
    assert follow_name("tiny", "ddpm", "gan") == "gan"


def test_advanced_fields_stay_folded_or_unfolded_across_families(panel):
    form = panel.model_form
    assert not form.advanced_shown() and form.editors["attention_heads"].isHidden()
    assert panel.training_form.advanced_toggle is not None and panel.metrics_form.advanced_toggle is not None
    form.show_advanced(True)
    panel.family.setCurrentText("stylegan")
    assert panel.model_form is not form and panel.model_form.advanced_shown()
    assert not panel.model_form.editors["w_avg_beta"].isHidden()
    panel.model_form.show_advanced(False)
    panel.family.setCurrentText("gan")
    assert not panel.model_form.advanced_shown()


def test_a_long_section_reads_in_groups_under_headings(panel):
    """StyleGAN's 29 fields: the common ones under headings of their group, in the section's
    order, each heading above its fields; the advanced ones' headings fold away with them."""
    panel.family.setCurrentText("stylegan")
    form = panel.model_form
    lay = form.layout()

    def row(w):
        return lay.getWidgetPosition(w)[0]
    shown = [g for g, h in form.headings.items() if not h.isHidden()]
    assert shown[:3] == ["Networks", "Loss and regularisation", "Conditioning"] and "Style" in shown
    assert row(form.headings["Networks"]) < row(form.editors["z_dim"]) < row(form.headings["Loss and regularisation"])
    assert row(form.headings["Loss and regularisation"]) < row(form.editors["loss"]) < row(form.headings["Conditioning"])
    assert row(form.headings["Style"]) < row(form.editors["w_dim"])
    folded = [h for h in form.headings.values() if row(h) > row(form.advanced_toggle)]
    assert folded and all(h.isHidden() for h in folded)
    form.show_advanced(True)
    assert not any(h.isHidden() for h in folded)


def test_floats_read_as_written(panel):
    assert panel.model_form.editors["dropout"].text() == "0.0"             # not "0.000000"
    assert panel.training_form.editors["lr"].text() == "0.002"
    assert panel.sampling_form.editors["guidance_scale"].text() == "2.00"  # its decimals=2


@pytest.mark.parametrize("size", [(1024, 640), (1280, 800)])
def test_the_model_tabs_fit_without_scroll_arrows_or_cut_titles(qtbot, tmp_path, size):
    w = MainWindow(runs_root=tmp_path / "runs", session=WorkerSession(FakeClient()))
    qtbot.addWidget(w)
    w.show()
    w.resize(*size)
    qtbot.wait(50)
    bar = w.model_panel.tabs.tabBar()
    needed = sum(bar.tabSizeHint(i).width() for i in range(bar.count()))
    assert needed <= bar.width(), f"the tabs need {needed} px, the bar has {bar.width()}"
    assert all(bar.tabRect(i).width() >= bar.tabSizeHint(i).width() for i in range(bar.count()))
    w.close()
