from app.widgets.config_form import ConfigForm
from engine.config import TrainingConfig
from engine.sections.ddpm import DDPMConfig


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
    from engine.sections.hvae import HVAESampleOptions
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
