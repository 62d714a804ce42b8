"""Bad input through the command line and the worker: every case ends in one clear line naming the
problem (and the file, where there is one), never a traceback, and CLI arguments and worker fields
are held to the same rules as the config fields they stand for."""
import json

import pytest

from engine.cli.main import main
from engine.training.loop import train
from engine.worker import Worker
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    r = train(tiny_config(training={"steps": 4}), tmp_path_factory.mktemp("bad") / "run", emit=lambda e: None)
    return str(r.last_checkpoint)


def one_line_error(capsys, argv) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("genlab-engine: error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("args, expected", [
    (["--n", "0"], "n = 0 is too small; the minimum is 1 (the rule of sampling.grid_size)"),
    (["--n", "1000000"], "the maximum is 1024"),
    (["--steps", "0"], "sampling.steps = 0 is too small; the minimum is 1"),
    (["--guidance", "-5"], "sampling.guidance_scale = -5.0 is too small; the minimum is 0.0"),
    (["--scale", "0"], "scale = 0 must be between 1 and 16"),
    (["--class", "12"], "class 12 is out of range"),
    (["--option", "stepz=3"], "unknown sampling option 'stepz'"),
])
def test_sample_arguments_follow_the_config_rules(capsys, tmp_path, ckpt, args, expected):
    err = one_line_error(capsys, ["sample", "--checkpoint", ckpt, "--out", str(tmp_path / "g.png"), *args])
    assert expected in err


@pytest.mark.parametrize("argv, expected", [
    (["eval", "--checkpoint", "CKPT", "--n", "3"], "n = 3 is too small; the minimum is 10 (the rule of metrics.samples)"),
    (["eval", "--real", "r", "--fake", "f", "--n", "-1"], "n = -1 is too small"),
    (["eval", "--checkpoint", "CKPT", "--n", "20", "--steps", "-2"], "steps = -2 is too small"),
    (["interpolate", "--checkpoint", "CKPT", "--from", "1", "--to", "2", "--fps", "0"], "fps = 0.0 must be above 0"),
    (["interpolate", "--checkpoint", "CKPT", "--from", "1", "--to", "2", "--frames", "1"], "frames = 1"),
    (["interpolate", "--checkpoint", "CKPT", "--from", "1", "--to", "2", "--out", "x.avi"], "x.avi: unknown output type"),
])
def test_other_commands_validate_their_arguments(capsys, ckpt, argv, expected):
    assert expected in one_line_error(capsys, [ckpt if a == "CKPT" else a for a in argv])


def test_config_and_set_errors_name_the_field_or_file(capsys, tmp_path):
    err = one_line_error(capsys, ["train", "--preset", "ddpm-digits", "--set", "foo.bar=1",
                                  "--run-dir", str(tmp_path / "r")])
    assert "unknown config section 'foo'" in err
    bad = tmp_path / "latin1.toml"
    bad.write_bytes("name = \"caf\xe9\"\n".encode("latin-1"))
    err = one_line_error(capsys, ["train", "--config", str(bad), "--run-dir", str(tmp_path / "r2")])
    assert "latin1.toml: not UTF-8 text (byte 0xe9" in err
    assert not (tmp_path / "r2").exists()  # nothing half-made is left behind


def test_an_os_error_is_one_line_with_the_path(capsys, tmp_path, ckpt):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    err = one_line_error(capsys, ["sample", "--checkpoint", ckpt, "--out", str(blocker / "grid.png")])
    assert f"{blocker}: a file is in the way where a folder is needed" in err


def test_malformed_worker_requests_say_what_was_wrong(tmp_path, ckpt):
    events = []
    w = Worker(tmp_path / "cache", "cpu", emit=events.append)
    w.handle({"id": 0, "op": "load", "checkpoint": ckpt})
    cases = [
        ({"op": "sample", "n": "x"}, "sample.n = 'x' must be an integer"),
        ({"op": "sample", "options": [1]}, "sample.options = [1] must be a table of values"),
        ({"op": "sample", "options": {"steps": 0}}, "sampling.steps = 0 is too small"),
        ({"op": "sample", "options": {"steps": -3}}, "sampling.steps = -3 is too small"),
        ({"op": "sample", "nn": 3}, "sample: unknown field 'nn'"),
        ({"op": "project", "image": None}, "project.image = None must be a string"),
        ({"op": "interpolate", "endpoints": 5}, "interpolate.endpoints = 5 must be a list"),
        ({"op": "interpolate", "endpoints": [1, 2], "out": str(tmp_path / "x" / "a.txt")}, "unknown output type"),
        ({"op": "evaluate", "n": 3}, "the rule of metrics.samples"),
        ({"op": "sample", "checkpoint": 5}, "checkpoint = 5 must be the path of a checkpoint"),
        ({"op": "load"}, "load: the request is missing 'checkpoint'"),
        ({"op": "frobnicate"}, "unknown op 'frobnicate'"),
    ]
    for i, (req, expected) in enumerate(cases, start=1):
        w.handle({"id": i, **req})
        ev = events[-1]
        assert ev["event"] == "error" and ev["id"] == i and expected in ev["message"], (req, ev)
        assert "\n" not in ev["message"] and "Traceback" not in ev["message"]
    json.dumps(events)  # every event is plain JSON


@pytest.mark.parametrize("args, expected", [
    (["--preview-size", "4"], "--preview-size 4: must be between 8 and 1024 pixels"),
    (["--set", "training.batch_size=3"], "--set takes data fields only (data.FIELD=VALUE), not training"),
    (["--set", "data.colour=grey"], "unknown field data.colour"),
    (["--set", "data.resolution=2"], "data.resolution = 2 is too small; the minimum is 4"),
    (["--dataset", "folder", "--path", "/no/such/folder"], "/no/such/folder: folder not found"),
])
def test_data_preview_arguments_are_one_line_errors(capsys, tmp_path, args, expected):
    err = one_line_error(capsys, ["data-preview", "--n", "4", "--out", str(tmp_path / "g.png"), *args])
    assert expected in err and not (tmp_path / "g.png").exists()
