"""The family comparison panel (app/panels/family_compare.py): a finished job's rows fill the table
and the plot (every point inside it) and export as CSV and PNG; the ETA counts down between
progress events; failures and Cancel say so; the runs browser's Compare families… button hands it
the selected runs' newest checkpoints and nothing runs until Measure; a comparison saved earlier
(JSON or CSV) and a queued one written later show by themselves; and one real `genlab-engine
compare` run end to end."""
from __future__ import annotations

import csv
import json
import math
import time

import pyqtgraph as pg
import pytest
from PySide6.QtGui import QImage

from app.panels.family_compare import FamilyCompare, plot_ranges
from app.panels.runs import RunsBrowser
from engine.runs.compare_table import columns
from tests.engine.test_runs_index import add_checkpoint, make_run


def row(family: str, run: str, **values) -> dict:
    r = {c: None for c in columns()}
    r.update(family=family, run=run, step=100, dataset="digits", resolution=8, channels=1, fd_kind="FD-domain",
             kid=0.01, kid_std=0.002, n=20, sample_seconds=0.5, sample_batch=20, train_steps=100, batch_size=8,
             images_seen=800, train_time_source="metrics.jsonl", device="cpu", checkpoint=f"/runs/{run}/x.safetensors")
    r.update(values)
    return r


ROWS = [row("ddpm", "run-ddpm", fd=3.5, precision=0.8, recall=0.7, images_per_s=40.0, nfe=100, sample_steps=50,
            params=120_000, train_seconds=95.0),
        row("vae", "run-vae", fd=7.25, precision=0.6, recall=0.75, bits_per_dim=1.25, bpd_split="training",
            bpd_images=20, images_per_s=4000.0, nfe=1, params=30_000, train_seconds=12.0)]


def panel(qtbot) -> FamilyCompare:
    w = FamilyCompare()
    qtbot.addWidget(w)
    w.resize(900, 600)
    return w


def finish(w: FamilyCompare, rows=ROWS) -> None:
    """What a finished `genlab-engine compare` sends: progress events, the result, exit 0."""
    w.set_checkpoints([r["checkpoint"] for r in rows])
    w._t0 = time.monotonic() - 10   # ten seconds in
    w.job._on_event({"event": "progress", "stage": "sampling", "done": 10, "total": 20, "checkpoint": 1,
                     "checkpoints": 2, "fraction": 0.25})
    assert w.progress.value() == 250 and "1/2" in w.progress.format() and "sampling 10/20" in w.progress.format()
    assert w.eta.text() == "ETA 30s"
    w.job._on_event({"event": "result", "rows": rows, "n": 20, "seconds": 41.0})
    w.job._on_ended(0, False, "")


def cell(w: FamilyCompare, r: int, title_start: str) -> str:
    heads = [w.table.horizontalHeaderItem(c).text() for c in range(w.table.columnCount())]
    c = next(i for i, h in enumerate(heads) if h.startswith(title_start))
    return w.table.item(r, c).text()


def test_a_finished_jobs_rows_fill_the_table_and_the_plot_and_export(qtbot, tmp_path):
    w = panel(qtbot)
    assert not w.csv_btn.isEnabled() and not w.png_btn.isEnabled()
    finish(w)
    heads = [w.table.horizontalHeaderItem(c).text() for c in range(w.table.columnCount())]
    assert heads == ["family", "run", "step", "FD-domain ↓", "precision ↑", "recall ↑", "bits/dim ↓", "img/s ↑", "NFE",
                     "training time", "params"]
    assert w.table.rowCount() == 2
    assert [cell(w, i, "family") for i in (0, 1)] == ["ddpm", "vae"]
    assert cell(w, 0, "FD") == "3.5" and cell(w, 1, "bits/dim") == "1.250" and cell(w, 0, "bits/dim") == "–"
    assert cell(w, 0, "NFE") == "100" and cell(w, 1, "img/s") == "4000"
    assert cell(w, 0, "training time") == "1m 35s" and cell(w, 0, "params") == "120k"
    # the best of each column with a direction is bold: ddpm's FD, the VAE's recall and speed
    bold = lambda r, t: w.table.item(r, [w.table.horizontalHeaderItem(c).text() for c in  # noqa: E731
                                         range(w.table.columnCount())].index(t)).font().bold()
    assert bold(0, "FD-domain ↓") and not bold(1, "FD-domain ↓")
    assert bold(1, "recall ↑") and bold(1, "img/s ↑") and not bold(0, "NFE")
    assert "run-ddpm" in w.table.item(0, 0).toolTip() or "/runs/run-ddpm" in w.table.item(0, 0).toolTip()
    # two labelled points at (images/s, FD), both on the speed-quality front
    assert [(i, x, y) for i, x, y in w.plotted] == [(0, 40.0, 3.5), (1, 4000.0, 7.25)]
    labels = [it for it in w.plot.getPlotItem().items if hasattr(it, "textItem")]
    assert sorted(l.textItem.toPlainText() for l in labels) == ["ddpm · run-ddpm", "vae · run-vae"]
    assert "bottom right" in w.plot.getPlotItem().titleLabel.text
    assert "same 20 real images" in w.note.text() and w.progress.format() == "done in 41s"
    assert w.csv_btn.isEnabled() and w.png_btn.isEnabled()

    out = w.export_csv(tmp_path / "cmp.csv")
    with open(out, newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == list(columns()) and [t[0] for t in table[1:]] == ["ddpm", "vae"]
    w.ask_save = lambda title, path, flt: str(tmp_path / "cmp.png")
    w.png_btn.click()
    img = QImage(str(tmp_path / "cmp.png"))
    assert not img.isNull() and img.width() > 100 and img.height() > 100
    w.ask_save = lambda title, path, flt: None   # the dialog cancelled: nothing written
    assert w.export_csv() is None


def test_every_point_falls_inside_the_plot_however_fast(qtbot):
    w = panel(qtbot)
    w.show()
    finish(w, [ROWS[0], row("pixelcnn", "run-pcnn", fd=12.0, images_per_s=0.6, nfe=256),
               row("gan", "run-gan", fd=180.0, images_per_s=52_000.0, nfe=1)])
    (x0, x1), (y0, y1) = w.plot.getViewBox().viewRange()
    assert len(w.plotted) == 3
    for _, x, y in w.plotted:
        assert x0 + 0.2 < math.log10(x) < x1 - 0.2 and y0 < y < y1, (x, y, (x0, x1), (y0, y1))
    # one point, or points of one FD: still a range with room around them
    (a, b), (c, d) = plot_ranges([2.0], [5.0])
    assert a < 2.0 < b and c < 5.0 < d
    (a, b), (c, d) = plot_ranges([1.0, 3.0], [0.0, 0.0])
    assert a < 1.0 and b > 3.0 and c < 0.0 < d


def test_in_a_narrow_pane_the_plot_is_no_wider_than_its_widget(qtbot):
    """The Runs tab gives the Families view ~520 px at 1280x800: a title wider than that widened
    the plot past the pane's edge, and the fastest points fell off the visible part."""
    w = panel(qtbot)
    w.resize(500, 600)
    w.show()
    finish(w, [ROWS[0], row("gan", "run-gan", fd=180.0, images_per_s=52_000.0, nfe=1)])
    qtbot.wait(50)
    item = w.plot.getPlotItem()
    assert item.sceneBoundingRect().width() <= w.plot.viewport().width() + 1
    vb = w.plot.getViewBox()
    for _, x, y in w.plotted:   # every point maps inside the visible viewport
        pt = w.plot.mapFromScene(vb.mapViewToScene(pg.Point(math.log10(x), y)))
        assert 0 <= pt.x() <= w.plot.viewport().width(), (x, pt.x(), w.plot.viewport().width())


def test_the_eta_counts_down_between_progress_events(qtbot):
    w = panel(qtbot)
    w.set_checkpoints(["a.safetensors", "b.safetensors"])
    w._t0 = time.monotonic() - 20
    w.job._on_event({"event": "progress", "stage": "warm-up", "done": 16, "total": 16, "checkpoint": 1,
                     "checkpoints": 2, "fraction": 0.5})
    assert w.eta.text() == "ETA 20s"
    w._t0, w._t_fraction = w._t0 - 8, w._t_fraction - 8   # 8 s later, no new event (a long batch)
    w._tick()
    assert w.eta.text() == "ETA 12s"
    w._t0, w._t_fraction = w._t0 - 30, w._t_fraction - 30
    w._tick()
    assert w.eta.text() == "ETA any moment now"


def test_a_point_without_speed_or_fd_is_left_out_of_the_plot(qtbot):
    w = panel(qtbot)
    finish(w, [ROWS[0], row("gan", "run-gan", fd=None, images_per_s=900.0, nfe=1)])
    assert w.table.rowCount() == 2 and cell(w, 1, "FD") == "–"
    assert [i for i, _, _ in w.plotted] == [0]


def test_an_engine_error_is_shown_and_cancel_says_cancelled(qtbot):
    w = panel(qtbot)
    w.set_checkpoints(["a.safetensors", "b.safetensors"])
    w.job._on_ended(2, False, "loading\ngenlab-engine: error: cannot compare a and b: the first was trained on "
                              "digits at 8x8, 1 channel, the second on shapes at 8x8, 1 channel; ...")
    assert w.note.isVisible() or not w.isVisible()
    assert w.note.text().startswith("✖ cannot compare a and b") and w.progress.format() == "failed"
    w.job._cancelled = True
    w.job._on_ended(-1, True, "")
    assert w.progress.format() == "cancelled"
    assert w.start([]) is False and "two or more" in w.note.text()


def test_the_runs_browsers_button_compares_the_selected_runs_newest_checkpoints(qtbot, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    a = make_run(root, "run-a", checkpoints=[5, 10])
    c = make_run(root, "run-c", family="vae", checkpoints=[7])
    make_run(root, "run-b")
    b = RunsBrowser(root, trash_dir=tmp_path / "trash")
    qtbot.addWidget(b)
    started = []
    monkeypatch.setattr(b.family_compare.job, "compare", lambda cks, n, **kw: started.append((list(cks), n)))
    b.select_run(a, c)
    b.families_btn.click()
    fc = b.family_compare
    assert b.tabs.currentWidget() is fc
    # nothing measures until Measure: the samples count is set first
    assert started == [] and fc.run_btn.isEnabled() and fc.n.isEnabled() and "press Measure" in fc.note.text()
    fc.n.setValue(40)
    fc.run_btn.click()
    assert started == [([str(a / "checkpoints" / "step_000010.safetensors"),
                         str(c / "checkpoints" / "step_000007.safetensors")], 40)]
    # one run selected: the checkpoints come from a file dialog; a cancelled dialog does nothing
    b.select_run(a)
    picked = [str(add_checkpoint(c, 9)), str(a / "checkpoints" / "step_000005.safetensors")]
    b.ask_open = lambda title, folder, flt: picked
    assert b.compare_families() is True and len(started) == 1 and fc.checkpoints == picked
    fc.run_btn.click()
    assert started[-1] == (picked, 40)
    b.ask_open = lambda title, folder, flt: []
    assert b.compare_families() is False and len(started) == 2


def test_a_comparison_saved_earlier_shows_again_and_a_bad_file_says_why(qtbot, tmp_path):
    w = panel(qtbot)
    finish(w)
    csv_path = w.export_csv(tmp_path / "earlier.csv")
    w2 = panel(qtbot)
    w2.ask_open = lambda title, folder, flt: str(csv_path)
    w2.open_btn.click()
    assert w2.table.rowCount() == 2 and [cell(w2, i, "family") for i in (0, 1)] == ["ddpm", "vae"]
    assert cell(w2, 0, "img/s") == "40" and cell(w2, 1, "bits/dim") == "1.250" and cell(w2, 0, "bits/dim") == "–"
    assert [(i, x, y) for i, x, y in w2.plotted] == [(0, 40.0, 3.5), (1, 4000.0, 7.25)]
    assert str(csv_path) in w2.header.text() and "same 20 real images" in w2.note.text()
    assert w2.checkpoints == [r["checkpoint"] for r in ROWS]   # Measure would measure them again
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": 3}')
    assert w2.load_file(bad) is False
    assert w2.note.text().startswith(f"✖ {bad}: not a family comparison") and w2.table.rowCount() == 2


def test_a_queued_comparison_shows_once_its_file_is_written(qtbot, tmp_path):
    w = panel(qtbot)
    result = tmp_path / "comparisons" / "ab12.json"
    w.watch(result, "comparison ab12")
    assert "Waiting for the queued comparison ab12" in w.note.text() and w.table.rowCount() == 0
    result.parent.mkdir()
    result.write_text(json.dumps({"rows": ROWS, "n": 20, "seconds": 41.0, "group": "ab12",
                                  "runs": ["/runs/run-ddpm", "/runs/run-vae"]}))
    qtbot.waitUntil(lambda: w.table.rowCount() == 2, timeout=5000)
    assert "the queued comparison ab12" in w.header.text() and w.watching is None
    assert w.progress.format() == "done in 41s"


# ---- one real engine run ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    from engine.training.loop import train
    from tests.engine.test_family_compare import tiny
    root = tmp_path_factory.mktemp("cmp-app")
    out = []
    for name in ("gan", "vae"):
        res = train(tiny(name).replace(training={"steps": 2}), root / f"run-{name}", emit=lambda e: None)
        assert res.state == "finished", res.message
        out.append(str(res.last_checkpoint))
    return out


def test_end_to_end_with_a_real_engine_and_cancel(qtbot, two_checkpoints, tmp_path):
    w = panel(qtbot)
    w.n.setValue(10)
    # Cancel kills the process at its first progress event
    w.job.progressed.connect(lambda ev: w.cancel())
    with qtbot.waitSignal(w.job.cancelled, timeout=60_000):
        assert w.start(two_checkpoints)
    assert w.progress.format() == "cancelled" and not w.rows and w.run_btn.isEnabled()
    w.job.progressed.disconnect()
    w.job.progressed.connect(w._on_progress)
    with qtbot.waitSignal(w.job.done, timeout=120_000) as got:
        assert w.start()
    assert not w.note.text().startswith("✖"), w.note.text()
    assert [r["family"] for r in got.args[0]["rows"]] == ["gan", "vae"]
    assert w.table.rowCount() == 2 and len(w.plotted) == 2
    assert cell(w, 0, "NFE") == "1" and cell(w, 0, "bits/dim") == "–" and cell(w, 1, "bits/dim") != "–"
    out = w.export_csv(tmp_path / "real.csv")
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("family,run,step")
    json.dumps(w.rows, allow_nan=False)
