"""An operation describes itself: a Request dataclass whose fields carry their flags, help and
output kind, registered in OPS, is a genlab-engine subcommand and a worker op with no other edit;
the op commands' sample-option flags come from the families' sections; OPS is lazy."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.core.flags import Flag, request_field, result_field, seeds_or_paths, worker_outputs
from engine.ops import OPS, Op
from engine.worker import Worker

ROOT = Path(__file__).resolve().parents[2]
NAME = "echo-sources"


@dataclasses.dataclass
class EchoRequest:
    sources: list = request_field(help="seeds and/or image paths to echo, comma-separated", parse=seeds_or_paths)
    out: str = request_field(output="file", cli_default="echo.json")
    repeat: int = request_field(1, "how often each source is written", flag="--times", metavar="K")
    shout: bool = request_field(False, "write the sources in capitals")
    label: str = request_field("", flags=(Flag("--label", "a name for the file"),
                                          Flag("--tag", deprecated="use --label")))
    secret: str = request_field("unseen", cli=False)

    def check(self) -> None:
        if self.repeat < 1:
            raise ValueError(f"repeat = {self.repeat} must be at least 1")


@dataclasses.dataclass
class EchoResult:
    path: str = result_field(report="out")
    count: int = result_field()
    secret: str = result_field(report=False)
    note: str = result_field("", note=True)


def run_echo(session, req: EchoRequest, progress, cancel) -> EchoResult:
    words = [str(s).upper() if req.shout else str(s) for s in req.sources for _ in range(req.repeat)]
    progress("echoing", 1, 1)
    Path(req.out).write_text(json.dumps({"words": words, "label": req.label}))
    return EchoResult(req.out, len(words), req.secret, "echoed without a model" if session is None else "")


@pytest.fixture
def echo_op():
    OPS.register(NAME, Op(EchoRequest, run_echo, needs_model=False, command="echo seeds and paths into a JSON file"))
    yield
    OPS.unregister(NAME)
    assert NAME not in OPS


def test_a_registered_op_is_a_command_whose_flags_reach_its_request(echo_op, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main([NAME, "--sources", "3,face.png", "--times", "2", "--shout", "--tag", "old", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"out": str(out), "count": 4, "step": None}
    assert json.loads(out.read_text()) == {"words": ["3", "3", "FACE.PNG", "FACE.PNG"], "label": "old"}
    assert f"genlab-engine: warning: {NAME} --tag is deprecated, use --label" in captured.err
    assert "genlab-engine: note: echoed without a model" in captured.err
    # the request's own check speaks for the command, in one line
    assert main([NAME, "--sources", "1", "--times", "0", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "genlab-engine: error: repeat = 0 must be at least 1"


def test_a_registered_ops_help_comes_from_its_fields(echo_op, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "echo seeds and paths into a JSON file" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main([NAME, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert e.value.code == 0
    assert "--sources SOURCES seeds and/or image paths to echo, comma-separated" in text
    assert "--times K how often each source is written" in text and "--label LABEL a name for the file" in text
    assert "--shout write the sources in capitals" in text
    assert "--tag" not in text and "--secret" not in text      # a deprecated alias, a field not on the command line
    with pytest.raises(SystemExit) as e:
        main([NAME, "--times", "2"])   # a field without a default is a required flag
    assert e.value.code == 2 and "the following arguments are required: --sources" in capsys.readouterr().err


def test_a_registered_op_runs_in_the_worker_with_its_output_in_the_cache(echo_op, tmp_path):
    events = []
    w = Worker(tmp_path / "cache", emit=events.append)
    w.handle({"id": 7, "op": NAME, "sources": [1, "a.png"], "repeat": 2})
    result = events[-1]
    assert result["event"] == "result" and result["op"] == NAME, events
    assert result["path"] == str(tmp_path / "cache" / f"{NAME}_7.png") and result["count"] == 4
    assert result["secret"] == "unseen"
    assert json.loads(Path(result["path"]).read_text())["words"] == ["1", "1", "a.png", "a.png"]
    w.handle({"id": 8, "op": NAME, "sources": [1], "repeat": "two"})
    assert events[-1]["event"] == "error" and f"{NAME}.repeat = 'two' must be an integer" in events[-1]["message"]


def test_worker_outputs_follow_the_fields_metadata():
    from engine.ops.inpaint import InpaintRequest
    from engine.ops.interpolate import ExportRequest, InterpolateRequest
    from engine.ops.sample import SampleRequest
    assert worker_outputs(SampleRequest) == [("out", "file")]
    assert worker_outputs(InpaintRequest) == [("out_dir", "folder")]
    # a walk: the canvas reads the strip; the file is written only when a request names it
    assert worker_outputs(InterpolateRequest) == worker_outputs(ExportRequest) == [("strip", "strip")]
    assert worker_outputs(EchoRequest) == [("out", "file")]


def test_the_op_commands_sample_option_flags_come_from_the_families_sections():
    from engine.core.flags import sample_option_flags
    flags = {option: flag.name for option, (flag, _, _) in sample_option_flags().items()}
    assert flags == {"sampler": "--sampler", "steps": "--steps", "eta": "--eta", "guidance_scale": "--guidance",
                     "truncation_psi": "--psi", "noise_mode": "--noise", "temperature": "--temperature",
                     "top_k": "--top-k", "top_p": "--top-p"}


def _imported_after(code: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = code + ("\nimport sys; print(' '.join(sorted(m for m in sys.modules "
                     "if m.startswith('engine.ops') or m == 'torch')))")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    return set(lines[-1].split()) if lines else set()


def test_presets_and_the_workers_start_import_no_operation():
    op_modules = {OPS.get(name).request_ref.partition(":")[0] for name in OPS}
    assert "engine.ops.sample" in op_modules and "engine.ops.inpaint" in op_modules
    loaded = _imported_after("from engine.cli.main import main; main(['presets'])")
    assert not loaded & (op_modules | {"torch"}), loaded     # nor torch: the command lists files
    loaded = _imported_after("from engine.worker import Worker; import tempfile; Worker(tempfile.mkdtemp())")
    assert not loaded & op_modules, loaded
    # a command imports its own op only
    loaded = _imported_after("from engine.cli.main import build_parser; build_parser(['mix'])")
    assert "engine.ops.style_mix" in loaded and not loaded & (op_modules - {"engine.ops.style_mix",
                                                                            "engine.ops.project"}), loaded
