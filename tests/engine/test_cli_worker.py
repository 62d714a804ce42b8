import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from engine.worker import Worker
from engine.training.loop import train

ROOT = Path(__file__).resolve().parents[2]


def engine(*args, input=None, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True,
                          input=input, timeout=timeout, env=env, cwd=ROOT)


def test_cli_presets_and_clear_errors(tmp_path):
    r = engine("presets")
    assert r.returncode == 0 and "ddpm-digits" in r.stdout
    r = engine("train", "--preset", "nope", "--run-dir", str(tmp_path / "x"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genlab-engine: error: unknown preset 'nope'; available: ")
    assert "ddpm-digits" in lines[0] and "dcgan-digits" in lines[0] and "stylegan-shapes" in lines[0]
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nschedule = "quad"\n')
    r = engine("train", "--config", str(bad))
    assert r.returncode == 2 and "model.schedule = 'quad'" in r.stderr and "bad.toml" in r.stderr
    r = engine("sample", "--checkpoint", str(tmp_path / "none.safetensors"))
    assert r.returncode == 2 and "checkpoint not found" in r.stderr


def test_cli_train_stdin_stop_then_resume_and_sample(tmp_path, tiny_cfg):
    cfg_path = tmp_path / "tiny.toml"
    tiny_cfg.replace(training={"steps": 40}).save(cfg_path)
    run = tmp_path / "run"
    r = engine("train", "--config", str(cfg_path), "--run-dir", str(run), "--steps", "20")
    assert r.returncode == 0, r.stderr
    events = [json.loads(l) for l in r.stdout.splitlines()]
    assert next(e for e in events if e["event"] != "phase")["event"] == "started" and events[-1] == {**events[-1], "event": "status", "state": "finished"}
    r = engine("train", "--run-dir", str(run), "--resume", "--steps", "30")
    assert r.returncode == 0, r.stderr
    st = json.loads((run / "status.json").read_text())
    assert st["state"] == "finished" and st["step"] == 30
    out = tmp_path / "grid.png"
    r = engine("sample", "--checkpoint", str(run / "checkpoints" / "step_000030.safetensors"), "--n", "12",
               "--seed", "3", "--out", str(out), "--steps", "4")
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size[0] > 8
    # a run fed "stop" on stdin stops cleanly with a checkpoint
    run2 = tmp_path / "run2"
    r = engine("train", "--config", str(cfg_path), "--run-dir", str(run2), "--steps", "100000", input="stop\n")
    assert r.returncode == 0, r.stderr
    assert json.loads((run2 / "status.json").read_text())["state"] == "stopped"
    assert list((run2 / "checkpoints").glob("*.safetensors"))


def test_worker_serves_and_newer_request_supersedes(tmp_path, tiny_cfg):
    res = train(tiny_cfg.replace(training={"steps": 5}), tmp_path / "run", emit=lambda e: None)
    events = []
    w = Worker(tmp_path / "cache", device="cpu", emit=events.append)
    w.submit({"id": 1, "op": "load", "checkpoint": str(res.last_checkpoint)})
    w.submit({"id": 2, "op": "sample", "n": 4, "seed": 0, "options": {"steps": 3}})
    w.submit({"id": 3, "op": "sample", "n": 6, "seed": 1, "cls": 2, "options": {"steps": 3, "guidance_scale": 2.0}})
    w.submit({"id": 4, "op": "quit"})
    while w._queue:  # the serve loop's body, in this thread (no stdin reader)
        req = w._queue.pop(0)
        if req["op"] == "quit":
            break
        w.handle(req)
    kinds = [(e["event"], e.get("id")) for e in events]
    assert ("cancelled", 2) in kinds and ("result", 2) not in kinds
    assert ("ready", 1) in kinds and ("result", 3) in kinds
    ready = next(e for e in events if e["event"] == "ready")
    assert ready["capabilities"]["conditional"]["class_labels"] == [str(i) for i in range(10)]
    assert ready["options"]["steps"] == tiny_cfg.sampling.steps  # the run's sample options, for the canvas
    path = next(e["path"] for e in events if e["event"] == "result")
    assert Image.open(path).size[0] > 8
    w.handle({"id": 9, "op": "sample", "n": 0})
    assert events[-1]["event"] == "error" and "n = 0 is too small; the minimum is 1" in events[-1]["message"]


def test_previews_sent_while_an_export_runs_queue_behind_it_and_never_cancel_it(tmp_path, tiny_cfg):
    """The Interpolate canvas exports a GIF, then the person drags a slider: the previews (op
    interpolate) arrive while the export (op interpolate-export) renders. The export finishes and
    writes its file, a second export queues behind it too, and previews still supersede previews."""
    res = train(tiny_cfg.replace(training={"steps": 5}), tmp_path / "run", emit=lambda e: None)
    events, exporting, previews_sent = [], threading.Event(), threading.Event()

    def emit(ev):
        events.append(ev)
        if ev.get("id") == 2 and not exporting.is_set():
            exporting.set()                  # the export is between its batches of frames (or failed):
            previews_sent.wait(timeout=30)   # hold it there until the previews are in

    w = Worker(tmp_path / "cache", device="cpu", emit=emit)
    walk = {"endpoints": [1, 2], "frames": 20, "options": {"steps": 2}}   # two batches: 16 frames, then 4
    w.submit({"id": 1, "op": "load", "checkpoint": str(res.last_checkpoint)})
    w.submit({"id": 2, "op": "interpolate-export", **walk, "out": str(tmp_path / "walk.gif")})
    serving = threading.Thread(target=w.serve_queue, daemon=True)
    serving.start()
    assert exporting.wait(timeout=60), events
    for rid in (3, 4):                       # the drag: the newer preview supersedes the older
        w.submit({"id": rid, "op": "interpolate", **walk, "frames": 3})
    w.submit({"id": 5, "op": "interpolate-export", **walk, "out": str(tmp_path / "strip.png")})
    w.submit({"id": 6, "op": "quit"})
    previews_sent.set()
    serving.join(timeout=120)
    assert not serving.is_alive()
    final = {e["id"]: e for e in events if e["event"] in ("result", "cancelled", "error")}
    assert final[2]["event"] == "result", final    # the export was not cancelled by the previews
    assert final[2]["op"] == "interpolate-export" and final[2]["frames"] == 20
    assert Image.open(final[2]["out"]).format == "GIF"     # written (alike frames of a tiny model may merge)
    assert final[3]["event"] == "cancelled" and final[4]["event"] == "result" and final[4]["frames"] == 3
    assert final[5]["event"] == "result" and Path(final[5]["out"]).is_file()
    done = [e["id"] for e in events if e["event"] == "result"]
    assert done == [2, 4, 5]                         # answered in the order asked, after the export
    # its own cancel still stops an export; an export with no file to write says so
    w.submit({"id": 7, "op": "interpolate-export", **walk, "out": str(tmp_path / "x.gif")})
    w.submit({"id": 8, "op": "cancel", "target": 7})
    assert events[-1] == {"event": "cancelled", "id": 7, "op": "interpolate-export"} and not w._queue
    w.handle({"id": 9, "op": "interpolate-export", **walk})
    assert events[-1]["event"] == "error" and "missing 'out'" in events[-1]["message"]


def test_a_newer_render_drops_a_queued_one_but_projections_and_exports_all_wait_their_turn(tmp_path):
    events = []
    w = Worker(tmp_path / "cache", device="cpu", emit=events.append)
    for rid, op in enumerate(("mix", "mix", "project", "project", "interpolate-export", "interpolate-export"), 1):
        w.submit({"id": rid, "op": op, "out": f"{rid}.gif"} if op.endswith("export") else {"id": rid, "op": op})
    assert events == [{"event": "cancelled", "id": 1, "op": "mix"}]    # a slider's stale frame only
    assert [r["id"] for r in w._queue] == [2, 3, 4, 5, 6]


def test_cli_eval_folder_vs_folder(tmp_path):
    import numpy as np
    rng = np.random.default_rng(0)
    # 10 images a class, all of them scored (--n 20): the first eval trains the domain network (300
    # steps on batches of every image), so its cost grows with the image count
    for name, shift in (("real", 0), ("fake", 0), ("far", 120)):
        for cls in ("a", "b"):
            d = tmp_path / name / cls
            d.mkdir(parents=True)
            for i in range(10):
                arr = np.zeros((16, 16, 3), np.uint8)
                if cls == "a":
                    arr[:, :8] = 200
                else:
                    arr[:8] = 200
                arr = np.clip(arr.astype(int) + rng.integers(0, 40, arr.shape) + shift, 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(d / f"{i}.png")
    env_cache = {"GENLAB_CACHE": str(tmp_path / "cache")}
    results = {}
    for fake in ("fake", "far"):
        r = subprocess.run([sys.executable, "-m", "engine", "eval", "--real", str(tmp_path / "real"), "--fake",
                            str(tmp_path / fake), "--resolution", "16", "--metrics", "fid,pr", "--n", "20"],
                           capture_output=True, text=True, timeout=300, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT), **env_cache})
        assert r.returncode == 0, r.stderr
        results[fake] = json.loads(r.stdout.strip().splitlines()[-1])
    assert results["fake"]["event"] == "result" and results["fake"]["extractor"] == "domain"
    assert results["fake"]["fd_domain"] < results["far"]["fd_domain"]
    assert results["fake"]["real_images"] == 20
    r = engine("eval", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "far"), "--metrics", "lpips")
    assert r.returncode == 2 and "unknown metric 'lpips'" in r.stderr


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="POSIX scheduling priorities")
def test_train_nice_is_an_absolute_level_for_the_process_and_its_later_threads():
    """train --nice 10 (what the app passes) lowers the engine to niceness 10 once: torchrun's ranks
    get the flag again and must not end at 19; threads started afterwards (torch's pools) inherit it."""
    code = ("import os, threading; from engine.cli.train import lower_priority\n"
            "lower_priority(10); lower_priority(10)\n"
            "seen = []; t = threading.Thread(target=lambda: seen.append(os.getpriority(os.PRIO_PROCESS, 0)))\n"
            "t.start(); t.join(); print(os.getpriority(os.PRIO_PROCESS, 0), seen[0])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["10", "10"]
