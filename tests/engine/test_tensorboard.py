"""Runs as TensorBoard reads them (engine/runs/event_file.py, engine/runs/tensorboard_log.py,
`genlab-engine export --tensorboard`, the live tee in `genlab-engine train`): read back with
TensorBoard's own reader where it is installed (the test extra has it), and with a small reader of
the format here (no TensorBoard needed)."""
from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.runs import event_file
from engine.runs.rundir import RunDir
from engine.runs.tensorboard_log import ENV, LiveEvents, events_files, export_run, live_wanted
from tests.conftest import ROOT, tiny_family_config


# ---- a reader of the format, to check our files without TensorBoard --------------------------------
def records(path: Path) -> list[bytes]:
    """The records of an event file, each frame's CRCs checked; a torn tail is an error."""
    data, out, i = path.read_bytes(), [], 0
    while i < len(data):
        header = data[i:i + 8]
        (n,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[i + 8:i + 12])[0] == event_file.masked_crc32c(header)
        body = data[i + 12:i + 12 + n]
        assert len(body) == n and struct.unpack("<I", data[i + 12 + n:i + 16 + n])[0] == event_file.masked_crc32c(body)
        out.append(body)
        i += 16 + n
    return out


def fields(buf: bytes) -> dict[int, list]:
    """A protobuf message as field number -> values (varints as ints, the rest as bytes)."""
    out: dict[int, list] = {}
    i = 0

    def varint():
        nonlocal i
        shift = value = 0
        while True:
            b = buf[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value
    while i < len(buf):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            value = varint()
        elif wire == 2:
            n = varint()
            value, i = buf[i:i + n], i + n
        else:
            size = {1: 8, 5: 4}[wire]
            value, i = buf[i:i + size], i + size
        out.setdefault(number, []).append(value)
    return out


def read_run(folder: Path) -> dict:
    """What a run's (one non-empty) event file holds: {"scalars": {tag: [(step, value)]}, "images":
    {tag: [(step, png)]}, "text": {tag: [str]}, "starts": [step], "version": str}."""
    files = [p for p in events_files(folder) if p.stat().st_size]
    assert len(files) == 1, files
    got = {"scalars": {}, "images": {}, "text": {}, "starts": [], "version": None}
    for rec in records(files[0]):
        ev = fields(rec)
        step = ev.get(2, [0])[0]
        if 3 in ev:
            got["version"] = ev[3][0].decode()
        if 7 in ev:
            assert fields(ev[7][0])[1] == [event_file.SESSION_START]
            got["starts"].append(step)
        for raw in fields(ev[5][0]).get(1, []) if 5 in ev else []:
            v = fields(raw)
            tag = v[1][0].decode()
            if 2 in v:
                got["scalars"].setdefault(tag, []).append((step, struct.unpack("<f", v[2][0])[0]))
            elif 4 in v:
                got["images"].setdefault(tag, []).append((step, fields(v[4][0])[4][0]))
            elif 8 in v:
                got["text"].setdefault(tag, []).append(fields(v[8][0])[8][0].decode())
    return got


# ---- the format ----------------------------------------------------------------------------------
def test_crc32c_and_frames_are_tensorboards():
    assert event_file.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert event_file.crc32c(b"") == 0
    record_writer = pytest.importorskip("tensorboard.summary.writer.record_writer")
    for data in (b"", b"x", bytes(range(256)) * 40):
        buf = io.BytesIO()
        record_writer.RecordWriter(buf).write(data)
        assert event_file.frame(data) == buf.getvalue()


def png_bytes(width: int, height: int, mode: str) -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.new(mode, (width, height)).save(out, format="PNG")
    return out.getvalue()


def test_hand_encoded_events_parse_as_tensorboards_protobufs():
    event_pb2 = pytest.importorskip("tensorboard.compat.proto.event_pb2")
    png = png_bytes(7, 5, "RGB")
    ev = event_pb2.Event.FromString(event_file.event(
        123456789012, 1.5e9, [event_file.scalar_value("loss/mse", 0.25), event_file.image_value("samples", png),
                              event_file.text_value("config", "    a = 1")]))
    assert ev.step == 123456789012 and ev.wall_time == 1.5e9
    scalar, image, text = ev.summary.value
    assert (scalar.tag, scalar.simple_value) == ("loss/mse", 0.25)
    assert image.tag == "samples" and image.image.encoded_image_string == png
    assert (image.image.width, image.image.height, image.image.colorspace) == (7, 5, 3)
    assert text.metadata.plugin_data.plugin_name == "text" and text.tensor.string_val == [b"    a = 1"]
    assert event_pb2.Event.FromString(event_file.version_event(2.0)).file_version == "brain.Event:2"
    start = event_pb2.Event.FromString(event_file.start_event(0, 3.0))
    assert start.session_log.status == event_pb2.SessionLog.START and start.step == 0
    assert event_file.png_size(png_bytes(3, 4, "L")) == (3, 4, 1)
    assert event_file.png_size(png_bytes(3, 4, "RGBA")) == (3, 4, 4)


# ---- a run exported and written live ---------------------------------------------------------------
@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    """A tiny VAE run (samples and reconstructions, losses every step, one evaluation), trained
    without live events."""
    root = tmp_path_factory.mktemp("tb")
    cfg = tiny_family_config("vae", steps=4, sample_every=2, checkpoint_every=2).replace(metrics={"every": 4})
    cfg.save(root / "cfg.toml")
    mp = pytest.MonkeyPatch()
    mp.setenv(ENV, "0")
    try:
        assert main(["train", "--config", str(root / "cfg.toml"), "--run-dir", str(root / "vae"), "--no-stdin"]) == 0
    finally:
        mp.undo()
    assert not events_files(root / "vae")  # GENLAB_TENSORBOARD=0: nothing written live
    return root / "vae"


def metric_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def expected_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    out: dict = {}
    for row in metric_rows(run):
        for k, v in row.items():
            if k not in ("step", "time") and isinstance(v, (int, float)):
                out.setdefault(k, []).append((row["step"], v))
    return out


def pngs(folder: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in folder.glob("step_*.png"))


def test_an_exported_run_opens_in_tensorboards_event_reader_with_the_right_scalar_count(vae_run, tmp_path, capsys):
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run = tmp_path / "vae"
    shutil.copytree(vae_run, run)
    assert main(["export", "--tensorboard", str(run)]) == 0
    wanted = expected_scalars(run)
    assert "loss/recon" in wanted and "quality/fd_domain" in wanted and "lr" in wanted  # losses, scores, bookkeeping
    n = sum(len(v) for v in wanted.values())
    assert f"{n} scalars in {len(metric_rows(run))} rows" in capsys.readouterr().out

    acc = ea.EventAccumulator(str(run), size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    assert sorted(tags["scalars"]) == sorted(wanted)
    for tag, points in wanted.items():
        got = acc.Scalars(tag)
        assert [e.step for e in got] == [s for s, _ in points], tag
        assert [e.value for e in got] == pytest.approx([v for _, v in points], rel=1e-6), tag
    assert sorted(tags["images"]) == ["recon", "samples"]
    assert [e.step for e in acc.Images("samples")] == pngs(run / "samples") == [0, 2, 4]
    assert [e.step for e in acc.Images("recon")] == pngs(run / "samples" / "recon") == [0, 2, 4]
    assert acc.Images("samples")[-1].encoded_image_string == (run / "samples" / "step_000004.png").read_bytes()
    (config,) = acc.Tensors("config")
    text = config.tensor_proto.string_val[0].decode()
    assert [line[4:] for line in text.splitlines()] == (run / "config.toml").read_text().splitlines()

    # exporting again writes the run once: the earlier file is emptied, TensorBoard reads each step once
    first = events_files(run)
    assert main(["export", "--tensorboard", str(run)]) == 0
    assert [p.stat().st_size for p in events_files(run)][:-1] == [0] and events_files(run)[0] == first[0]
    assert main(["export", "--tensorboard", str(run)]) == 0
    assert len(events_files(run)) == 2  # the emptied one removed, the one before emptied
    acc = ea.EventAccumulator(str(run), size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0})
    acc.Reload()
    assert {t: len(acc.Scalars(t)) for t in acc.Tags()["scalars"]} == {t: len(v) for t, v in wanted.items()}
    assert len(acc.Images("samples")) == 3 and len(acc.Tensors("config")) == 1


def test_export_out_folder_and_a_folder_of_runs(vae_run, tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    for name in ("r1", "r2"):
        shutil.copytree(vae_run, runs / name)
    out = tmp_path / "tb"
    assert main(["export", "--tensorboard", str(runs), "--out", str(out)]) == 0
    assert capsys.readouterr().out.count(" -> ") == 2
    for name in ("r1", "r2"):
        assert not events_files(runs / name)  # --out: the run folders are left as they were
        got = read_run(out / name)
        assert got["version"] == "brain.Event:2" and got["starts"] == [0]
        assert {t: [s for s, _ in v] for t, v in got["scalars"].items()} == \
               {t: [s for s, _ in v] for t, v in expected_scalars(runs / name).items()}
        assert [s for s, _ in got["images"]["samples"]] == [0, 2, 4]


def test_export_refuses_what_is_not_a_run_in_one_line(tmp_path, capsys):
    assert main(["export", "--tensorboard", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"genlab-engine: error: {tmp_path}: not a run folder (no config.toml) and holds no runs"
    assert main(["export", "--tensorboard", str(tmp_path / "nope")]) == 2
    assert "folder not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a format must be named
        main(["export", str(tmp_path)])


def test_live_events_equal_the_export_and_a_resumed_run_holds_each_step_once(vae_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, "1")
    run = tmp_path / "live"
    cfg = RunDir(vae_run).config_path
    assert main(["train", "--config", str(cfg), "--run-dir", str(run), "--no-stdin"]) == 0
    live = read_run(run)
    assert live["starts"] == [0] and live["text"]["config"]
    assert {t: [s for s, _ in v] for t, v in live["scalars"].items()} == \
           {t: [s for s, _ in v] for t, v in expected_scalars(run).items()}
    assert [s for s, _ in live["images"]["recon"]] == pngs(run / "samples" / "recon") == [0, 2, 4]
    export_run(run, tmp_path / "exported")
    exported = read_run(tmp_path / "exported" / "live")
    assert exported["scalars"] == live["scalars"] and exported["images"] == live["images"]
    assert exported["text"] == live["text"]

    # resumed from step 2 (as if killed before step 4's checkpoint): the file is written anew up to
    # the checkpoint, then goes on; each step once, though steps 3-4 and step 4's grids come again
    for p in (run / "checkpoints").glob("step_000004.*"):
        p.unlink()
    assert main(["train", "--run-dir", str(run), "--resume", "--steps", "6", "--no-stdin"]) == 0
    resumed = read_run(run)
    steps = [s for s, _ in resumed["scalars"]["loss/recon"]]
    assert steps == [r["step"] for r in metric_rows(run) if "loss/recon" in r] == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in resumed["images"]["samples"]] == [0, 2, 4, 6]
    assert [s for s, _ in resumed["scalars"]["quality/fd_domain"]] == [4, 6]  # step 4 scored again, once
    assert resumed["scalars"]["loss/recon"][:2] == live["scalars"]["loss/recon"][:2]


def test_an_export_while_a_run_trains_is_where_the_run_goes_on(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text('name = "x"\n')
    (run / "metrics.jsonl").write_text('{"step": 1, "time": 5.0, "loss/mse": 1.0}\n')
    tee = LiveEvents(lambda ev: None)
    tee({"event": "started", "run_dir": str(run), "step": 0})  # a fresh run: nothing up to step 0
    assert read_run(run)["scalars"] == {}
    tee({"event": "metrics", "step": 1, "time": 5.0, "loss/mse": 1.0})
    export_run(run)  # the row is in metrics.jsonl: the export has it; the live file is emptied
    (run / "metrics.jsonl").open("a").write('{"step": 2, "time": 6.0, "loss/mse": 0.5}\n')
    tee({"event": "metrics", "step": 2, "time": 6.0, "loss/mse": 0.5})
    assert read_run(run)["scalars"] == {"loss/mse": [(1, 1.0), (2, 0.5)]}  # one file holds it all, once
    assert [p.stat().st_size > 0 for p in events_files(run)] == [False, True]


def test_live_events_warn_once_and_never_stop_training(tmp_path):
    seen = []
    tee = LiveEvents(seen.append)
    blocker = tmp_path / "file"
    blocker.write_text("")
    tee({"event": "started", "run_dir": str(blocker / "run"), "step": 0})  # a folder under a file: cannot be made
    tee({"event": "metrics", "step": 1, "loss/mse": 1.0})
    tee({"event": "metrics", "step": 2, "loss/mse": 0.5})
    assert [e["event"] for e in seen] == ["started", "warning", "metrics", "metrics"]  # every event passed on
    assert "export --tensorboard" in seen[1]["message"]


def test_live_events_are_written_when_the_tensorboard_package_is_there_unless_told():
    import importlib.util
    installed = importlib.util.find_spec("tensorboard") is not None
    assert live_wanted({}) is installed
    assert live_wanted({ENV: "0"}) is False and live_wanted({ENV: "off"}) is False
    assert live_wanted({ENV: "1"}) is True


def test_export_needs_neither_torch_nor_tensorboard(vae_run, tmp_path):
    """The export reads the run folder and writes the format itself: a machine with neither
    package installed exports the same."""
    code = ("import sys; from engine.cli.main import main; rc = main(['export', '--tensorboard', sys.argv[1], "
            "'--out', sys.argv[2]]); print(rc, 'torch' in sys.modules, 'tensorboard' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(vae_run), str(tmp_path)], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.stdout.splitlines()[-1] == "0 False False", out.stderr
    assert read_run(tmp_path / "vae")["images"].keys() == {"samples", "recon"}
