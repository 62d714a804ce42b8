"""The runs browser's "Reconstruct EMA…" (app/panels/run_ema.py): offered only for a run with
post-hoc EMA snapshots; it asks for sigma_rel, runs `genlab-engine ema` with progress and Cancel,
and the checkpoint it writes joins the run's checkpoint strip."""
from __future__ import annotations

from pathlib import Path

from app.panels.run_ema import EmaJob
from app.panels.runs import RunsBrowser
from tests.engine.test_posthoc_ema import write_toy_run
from tests.engine.test_runs_index import make_run


def strip_labels(b: RunsBrowser) -> list[str]:
    strip = b.flipbook.checkpoints
    return [strip.item(i).text() for i in range(strip.count())]


def test_reconstruct_ema_is_offered_for_runs_with_snapshots_and_adds_its_checkpoint(qtbot, tmp_path):
    root = tmp_path / "runs"
    plain = make_run(root, "20240101-000000-plain", checkpoints=[5], status={"state": "finished", "step": 5})
    phema = make_run(root, "20240102-000000-phema", checkpoints=[40], status={"state": "finished", "step": 40})
    write_toy_run(phema, steps=40, every=10)
    b = RunsBrowser(root, trash_dir=tmp_path / "trash")
    qtbot.addWidget(b)
    ema = b.actions.ema
    b.select_run(plain)
    assert ema.isHidden()
    b.select_run(phema)
    assert not ema.isHidden() and ema.button.isEnabled() and ema.bar.isHidden()

    asked = []
    ema.ask_sigma = lambda: asked.append(1) or None      # the dialog cancelled: nothing runs
    ema.button.click()
    assert asked and not ema.job.is_running()

    ema.ask_sigma = lambda: 0.07
    with qtbot.waitSignal(b.actions.ema_reconstructed, timeout=120_000) as sig:
        ema.button.click()
        assert not ema.button.isEnabled() and not ema.cancel_btn.isHidden()   # running: Cancel, no second start
    written = Path(sig.args[0])
    assert written == phema / "checkpoints" / "step_000040-ema-0p070.safetensors" and written.is_file()
    assert ema.button.isEnabled() and ema.cancel_btn.isHidden()
    assert "sigma_rel 0.07 at step 40 from 4 snapshots" in b.actions.message.text()
    assert strip_labels(b) == ["step 40", "40 · σ 0.07"]


def test_a_failed_or_cancelled_reconstruction_says_so(qtbot, tmp_path):
    run = make_run(tmp_path / "runs", "20240102-000000-phema", checkpoints=[40], status={"state": "finished"})
    write_toy_run(run, steps=40, every=10)
    b = RunsBrowser(tmp_path / "runs", trash_dir=tmp_path / "trash")
    qtbot.addWidget(b)
    b.select_run(run)
    ema = b.actions.ema
    ema.job.reconstruct = lambda run_dir, sigma_rel: None    # no engine process: its answers are emitted below
    assert ema.start(0.07) and not ema.bar.isHidden() and not ema.button.isEnabled()
    ema.job.progressed.emit("combining snapshots", 1, 4)
    assert ema.bar.value() == 1 and ema.bar.maximum() == 4 and "left" in ema.bar.format()
    ema.job.failed.emit("/x/phema/step_000010.json: not a GenLab post-hoc EMA snapshot")
    assert "Could not reconstruct the EMA: /x/phema/step_000010.json" in b.actions.message.text()
    assert ema.button.isEnabled() and ema.bar.isHidden()

    job = EmaJob()   # a real engine process, killed at once
    with qtbot.waitSignal(job.cancelled, timeout=60_000):
        job.reconstruct(run, 0.07)
        job.cancel()
    assert not list((run / "checkpoints").glob("*-ema-*"))
