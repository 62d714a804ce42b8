"""training.compile: the networks compiled in place for the step, the compile time reported apart,
checkpoints with the uncompiled names (they load either way, and a run resumes across the switch),
and one line and eager training where it cannot compile.

Compiling for real takes minutes on this 2-core CPU (a 2-layer PixelCNN: 186 s), so these tests put
a fake torch.compile in its place (nn.Module.compile calls torch.compile): an eager wrapper that
counts its calls, or one that fails the way Inductor does without a C++ compiler. The real compile
is checked by test_a_real_compile_gives_the_eager_loss, which runs only with GENLAB_REAL_COMPILE=1."""
from __future__ import annotations

import json
import os

import pytest
import torch

from engine.family.base import Batch, build_family
from engine.runs.rundir import RunDir
from engine.training import compile as compile_switch
from engine.training.checkpoint import load_checkpoint
from engine.training.loop import Trainer
from tests.conftest import TINY_RES, tiny_family_config

FAMILY = "pixelcnn"
CLOCK_KEYS = {"time", "elapsed_s", "img_per_s", "eta_s"}


class FakeCompile:
    """torch.compile's stand-in: the callable wrapped eagerly (or failing at its first call, as
    Inductor fails at the first call when it cannot build), with its calls counted."""

    def __init__(self, fail: bool = False):
        self.fail, self.compiled, self.calls = fail, 0, 0

    def __call__(self, fn, *args, **kwargs):
        self.compiled += 1

        def compiled(*a, **k):
            self.calls += 1
            if self.fail:
                raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found in torch._inductor.config.cpp.cxx")
            return fn(*a, **k)
        return compiled


def train(tmp_path, name: str, steps: int = 3, until: int | None = None, resume: bool = False, **training):
    events = []
    cfg = tiny_family_config(FAMILY, steps=steps, checkpoint_every=2, **training)
    trainer = Trainer(cfg, tmp_path / name, resume=resume, emit=events.append)
    result = trainer.run(until_step=until)
    assert result.state in ("finished", "stopped"), result.message
    return trainer, events


def logged(run_dir) -> list[dict]:
    rows = [json.loads(line) for line in RunDir(run_dir).metrics_path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in CLOCK_KEYS} for r in rows]


def messages(events, kind: str) -> list[str]:
    return [e["message"] for e in events if e["event"] == kind]


@pytest.fixture(scope="module")
def eager(tmp_path_factory):
    """The uncompiled run every other run here is compared with (its folder: eager.rd.path)."""
    return train(tmp_path_factory.mktemp("compile"), "eager")[0]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_compiled_run_reports_its_compile_time_and_trains_and_saves_as_an_eager_one(tmp_path, monkeypatch, eager):
    fake = FakeCompile()
    monkeypatch.setattr(torch, "compile", fake)
    compiled, events = train(tmp_path, "compiled", compile=True)
    assert fake.compiled == len(compiled.family.networks) and fake.calls >= 3     # every step went through it
    lines = [m for m in messages(events, "info") if m.startswith("training.compile")]
    assert len(lines) == 1 and "compiled in" in lines[0] and compiled.compile_s is not None
    assert logged(tmp_path / "compiled") == logged(eager.rd.path)
    ckpt = load_checkpoint(compiled.last_ckpt)
    assert not any("_orig_mod" in k for k in ckpt.tensors)
    assert same_weights(ckpt.tensors, load_checkpoint(eager.last_ckpt).tensors)
    # the compiled run's checkpoint loads into an uncompiled family, names and all
    fam = build_family(compiled.cfg, compiled.data.channels, TINY_RES, compiled.data.class_names)
    fam.networks.load_state_dict(compiled.family.networks.state_dict())
    assert same_weights(fam.networks.state_dict(), eager.family.networks.state_dict())


def test_a_run_resumes_across_the_switch_bit_for_bit(tmp_path, monkeypatch):
    straight, _ = train(tmp_path, "straight", steps=4)
    monkeypatch.setattr(torch, "compile", FakeCompile())
    train(tmp_path, "switched", steps=4, until=2, compile=True)        # compiled for 2 steps, stopped
    monkeypatch.undo()
    resumed, _ = train(tmp_path, "switched", steps=4, resume=True)      # resumed eagerly to 4
    assert resumed.step == 4
    assert same_weights(resumed.family.networks.state_dict(), straight.family.networks.state_dict())
    assert logged(tmp_path / "switched") == logged(tmp_path / "straight")


def test_without_a_cxx_compiler_it_says_so_in_one_line_and_trains_eagerly(tmp_path, monkeypatch, eager):
    fake = FakeCompile()
    monkeypatch.setattr(torch, "compile", fake)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(compile_switch.shutil, "which", lambda name: None)
    _, events = train(tmp_path, "no-cxx", compile=True)
    lines = [m for m in messages(events, "warning") if m.startswith("training.compile")]
    assert lines == ["training.compile: no C++ compiler found (Inductor needs one for CPU code; install g++ or "
                     "clang, or set CXX); training without compiling"]
    assert fake.compiled == 0
    assert logged(tmp_path / "no-cxx") == logged(eager.rd.path)


def test_on_apple_mps_compiling_is_not_tried():
    assert "MPS" in compile_switch.compile_unavailable(torch.device("mps"))


def test_a_compile_that_fails_in_the_first_step_falls_back_to_the_same_eager_run(tmp_path, monkeypatch, eager):
    monkeypatch.setattr(torch, "compile", FakeCompile(fail=True))
    failed, events = train(tmp_path, "failed", compile=True)
    lines = [m for m in messages(events, "warning") if m.startswith("training.compile")]
    assert len(lines) == 1 and "compiling failed (RuntimeError: InvalidCxxCompiler" in lines[0]
    assert "training without compiling" in lines[0] and "\n" not in lines[0]
    assert all(net._compiled_call_impl is None for net in failed.family.networks.values())
    # the step is taken again from the same batch and random state: nothing differs from eager
    assert logged(tmp_path / "failed") == logged(eager.rd.path)
    assert same_weights(failed.family.networks.state_dict(), eager.family.networks.state_dict())


@pytest.mark.skipif(os.environ.get("GENLAB_REAL_COMPILE") != "1",
                    reason="compiling for real takes minutes on a 2-core CPU; set GENLAB_REAL_COMPILE=1")
def test_a_real_compile_gives_the_eager_loss():
    cfg = tiny_family_config(FAMILY)
    fam = build_family(cfg, 1, TINY_RES, [str(d) for d in range(10)])
    x = torch.randint(0, 256, (8, 1, TINY_RES, TINY_RES), generator=torch.Generator().manual_seed(0)).float() / 127.5 - 1
    batch = Batch(x, torch.arange(8) % 10)

    def loss() -> float:
        with torch.no_grad():
            return float(fam.nll(fam.networks["pixelcnn"], batch.images, batch.labels if fam.num_classes else None).mean())
    eager = loss()
    compile_switch.compile_networks(fam.networks)
    assert loss() == pytest.approx(eager, rel=1e-5)
    assert not any("_orig_mod" in k for k in fam.networks.state_dict())
