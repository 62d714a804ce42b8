"""The quality plot's "FD vs NFE…" button and the sweep view it opens, driven by a fake worker
client: the solvers offered are the loaded model's, Run sends the sweep op with the chosen solvers,
steps and samples, progress shows the time left, Cancel stops it in the worker, a result is drawn
as one curve per solver on a log NFE axis with its summary, and exports to PNG and CSV."""
import csv
import json

from PySide6.QtCore import Qt
from test_canvas_views import DDPM, DDPM_OPTIONS, STYLE, FakeClient

from app.panels.sweep_view import SweepView
from app.worker_session import WorkerSession

CKPT = "/runs/a/checkpoints/step_000010.safetensors"
SOLVERS = ["ddim", "ddpm", "heun"]


def _caps(solvers):
    caps = DDPM.from_dict(DDPM.to_dict())
    caps.sampling.solvers = list(solvers)
    return caps


def _result(rid: int, folder: str = "") -> dict:
    points = [{"solver": s, "steps": k, "nfe": (2 * k - 1 if s == "heun" else k), "fd": 100.0 / k + i,
               "seconds": 0.1, "stochastic": s == "ddpm"} for i, s in enumerate(SOLVERS) for k in (1, 2, 4)]
    return {"event": "result", "id": rid, "op": "sweep", "points": points, "metric": "fd_domain",
            "metric_title": "FD-domain", "reference": {**points[2], "steps": 50, "nfe": 50, "fd": 26.0},
            "summary": ["ddim: reaches ddim-50's FD-domain 26 at 4 NFE (4 steps, FD-domain 25)",
                        "ddpm: does not reach ddim-50's FD-domain 26 within 4 NFE (best 26 at 4 NFE)",
                        "heun: reaches ddim-50's FD-domain 26 at 7 NFE (4 steps, FD-domain 25)"],
            "folder": folder, "csv": "", "json": "", "png": "", "note": ""}


def _view(qtbot, solvers=SOLVERS):
    client = FakeClient()
    session = WorkerSession(client)
    session.set_checkpoint(CKPT)
    view = SweepView(session)
    qtbot.addWidget(view)
    client.ready(_caps(solvers), DDPM_OPTIONS, checkpoint=CKPT)
    return client, view


def test_the_quality_plots_button_opens_the_sweep_of_the_windows_checkpoint(faked, qtbot):
    client, w = faked
    assert w.quality_plot.sweep_btn.isVisible()
    w.set_checkpoint(CKPT, load=False)
    qtbot.mouseClick(w.quality_plot.sweep_btn, Qt.LeftButton)
    assert w.sweep_dialog is not None and w.sweep_dialog.isVisible()
    assert any(r["op"] == "load" and r["checkpoint"] == CKPT for r in client.sent)   # shown: it loads the model
    client.ready(_caps(SOLVERS), DDPM_OPTIONS, checkpoint=CKPT, rid=client.last("load")["id"])
    view = w.sweep_dialog.view
    assert list(view.checks) == SOLVERS and view.run_btn.isEnabled()
    w.sweep_dialog.close()


def test_run_sends_the_sweep_and_the_result_draws_one_curve_per_solver(qtbot, tmp_path):
    client, view = _view(qtbot)
    assert list(view.checks) == SOLVERS                   # the model's solvers, as its capabilities list them
    view.checks["ddpm"].setChecked(False)
    view.steps.setText("1, 2,4")
    view.samples.setValue(200)
    qtbot.mouseClick(view.run_btn, Qt.LeftButton)
    req = client.last("sweep")
    assert req["solvers"] == ["ddim", "heun"] and req["steps"] == [1, 2, 4] and req["samples"] == 200
    assert req["checkpoint"] == CKPT and not view.run_btn.isEnabled() and view.cancel_btn.isEnabled()
    view._started[req["id"]] -= 10.0                      # sent 10 s ago
    client.event.emit({"event": "progress", "id": req["id"], "op": "sweep", "stage": "ddim, 2 steps (2/6)",
                       "done": 50, "total": 100})
    assert view.progress.format().startswith("ddim, 2 steps (2/6) %v / %m") and "left" in view.progress.format()

    (tmp_path / "sweep.csv").write_text("solver,steps,nfe,fd_domain\nddim,1,1,100\n")
    client.event.emit(_result(req["id"], folder=str(tmp_path)))
    assert list(view.curves) == SOLVERS
    heun = view.curves["heun"]
    assert list(heun.xData) == [1, 3, 7] and list(heun.yData) == [102.0, 52.0, 27.0]
    assert view.plot.getPlotItem().ctrl.logXCheck.isChecked()      # NFE on a log axis
    assert view.ref_line.isVisible() and view.ref_line.value() == 26.0
    text = view.summary.text()
    assert "ddim-50 FD-domain: 26" in text and "heun: reaches ddim-50's FD-domain 26 at 7 NFE" in text
    assert view.run_btn.isEnabled() and not view.cancel_btn.isEnabled()

    view.export_png(str(tmp_path / "out.png"))
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    view.export_csv(str(tmp_path / "out.csv"))
    assert (tmp_path / "out.csv").read_text() == (tmp_path / "sweep.csv").read_text()   # the engine's table
    view.record["folder"] = ""
    view.export_csv(str(tmp_path / "points.csv"))
    rows = list(csv.DictReader(open(tmp_path / "points.csv")))
    assert len(rows) == 9 and rows[0] == {"solver": "ddim", "steps": "1", "nfe": "1", "fd_domain": "100.0"}


def test_cancel_stops_the_sweep_in_the_worker(qtbot):
    client, view = _view(qtbot)
    qtbot.mouseClick(view.run_btn, Qt.LeftButton)
    rid = client.last("sweep")["id"]
    qtbot.mouseClick(view.cancel_btn, Qt.LeftButton)
    assert client.sent[-1] == {"id": rid + 1, "op": "cancel", "target": rid}
    client.event.emit({"event": "cancelled", "id": rid, "op": "sweep"})
    assert view.progress.format() == "cancelled" and view.run_btn.isEnabled() and not view.curves


def test_a_model_without_solvers_says_so_in_one_line(qtbot):
    client, view = _view(qtbot, solvers=[])
    client.ready(STYLE, {}, checkpoint=CKPT)
    assert not view.run_btn.isEnabled() and not view.checks
    assert view.status.text().startswith("a stylegan model has no solvers")


def test_bad_steps_are_one_line_and_send_nothing(qtbot):
    client, view = _view(qtbot)
    view.steps.setText("1,two")
    qtbot.mouseClick(view.run_btn, Qt.LeftButton)
    assert not any(r["op"] == "sweep" for r in client.sent)
    assert "comma-separated whole numbers" in view.status.text()


def test_the_runs_newest_sweep_is_shown_when_the_view_opens(qtbot, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for stamp, fd in (("20260101-000000", 9.0), ("20260102-000000", 5.0)):
        (run / "sweeps" / stamp).mkdir(parents=True)
        record = _result(0)
        record["points"] = [{"solver": "ddim", "steps": 1, "nfe": 1, "fd": fd}]
        (run / "sweeps" / stamp / "sweep.json").write_text(json.dumps(record))
    session = WorkerSession(FakeClient())
    session.set_checkpoint(str(run / "checkpoints" / "step_000010.safetensors"), load=False)
    view = SweepView(session)
    qtbot.addWidget(view)
    assert list(view.curves["ddim"].yData) == [5.0] and "20260102-000000" in view.summary.text()
    session.set_checkpoint(str(tmp_path / "other" / "checkpoints" / "step_000010.safetensors"), load=False)
    assert not view.curves and view.summary.text() == "" and not view.png_btn.isEnabled()   # another run's
