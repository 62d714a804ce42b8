import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tests compute on one thread (and so do the engines they start): their tensors are tiny, and `make test`
# runs one pytest worker per core. Measured on this 2-core machine under load: a tiny EDM's 30-step
# DDIM inversion took 57 s with two threads against 1.6 s with one (threads spinning at barriers).
os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from engine.core.config import RunConfig  # noqa: E402


def tiny_config(**sections) -> RunConfig:
    """A model small enough to train in seconds on 8x8 digits."""
    cfg = RunConfig(name="tiny").replace(
        data={"dataset": "digits", "resolution": 8},
        model={"base_channels": 8, "channel_mults": [1, 2], "attention_resolutions": [4], "timesteps": 50,
               "attention_heads": 2},
        training={"steps": 30, "batch_size": 16, "lr": 3e-3, "warmup_steps": 5, "log_every": 5,
                  "sample_every": 0, "checkpoint_every": 10, "device": "cpu", "ema_decay": 0.9},
        sampling={"steps": 5, "grid_size": 10},
        metrics={"domain_steps": 20},
    )
    return cfg.replace(**sections) if sections else cfg


@pytest.fixture
def tiny_cfg():
    return tiny_config()


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's caches (domain extractors, torch hub weights)."""
    root = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("GENLAB_CACHE", str(root / "genlab-cache"))
    monkeypatch.setenv("TORCH_HOME", str(root / "torch-home"))
    monkeypatch.delenv("GENLAB_INCEPTION", raising=False)


# ---- every family trained two steps at its TINY size, shared by the conformance suites ----------
TINY_RES = 8


def family_cases() -> list[str]:
    """Every registered family, and "family:variant" for each overlay of its section's TINY_VARIANTS
    (the same family on another backbone, say): what the resume conformance test runs. (Not the
    family conformance suite: its label test needs labels to matter after two steps, and a DiT's
    adaLN-Zero gates start at zero, so two steps leave a label's effect second order in the rate.)"""
    from engine.core.families import FAMILIES, family_spec
    cases = []
    for name in FAMILIES.names():
        cases += [name] + [f"{name}:{v}" for v in getattr(family_spec(name).config, "TINY_VARIANTS", {})]
    return cases


# ---- parents of two-stage families: a tiny checkpoint of the parent's family, trained once ------
# (the folder goes through the environment: test modules import this file as tests.conftest, a
# second copy of the module beside the one pytest loaded)
TINY_PARENTS_ENV = "GENLAB_TEST_TINY_PARENTS"


@pytest.fixture(scope="session", autouse=True)
def tiny_parent_root(tmp_path_factory):
    """Where tiny_parent trains the parents the session's tiny two-stage runs name."""
    os.environ[TINY_PARENTS_ENV] = str(tmp_path_factory.mktemp("tiny-parents"))
    yield
    os.environ.pop(TINY_PARENTS_ENV, None)


def tiny_parent(family: str, model: dict | None = None) -> Path:
    """A checkpoint of `family` at its TINY size on 8x8 digits (two steps, trained on first use and
    kept for the session), with `model` overlaid on its [model] section: the parent of the tiny
    configs of families that take one."""
    from engine.runs.rundir import RunDir
    overlay = model or {}
    tag = "-".join(f"{k}-{v}" for k, v in sorted(overlay.items()))
    run_dir = Path(os.environ[TINY_PARENTS_ENV]) / (f"{family}-{tag}" if tag else family)
    done = RunDir(run_dir).latest_checkpoint()
    if done is not None:
        return done
    from engine.training.loop import train
    cfg = tiny_family_config(family)
    res = train(cfg.replace(model=overlay) if overlay else cfg, run_dir, emit=lambda e: None)
    assert res.state == "finished", f"tiny parent {family}: {res.message}"
    return res.last_checkpoint


def tiny_parent_fields(name: str, model=None) -> dict:
    """The [model] fields that give family `name` its tiny parent ({} for a family that takes none):
    one of the first family it accepts, with the overlay of its section's TINY_PARENT, if any (VAR
    needs a tokenizer with the multi-scale quantizer). A family whose parent is optional (reflow)
    gets one only when `model` (its [model] section or a dict) switches the parent on."""
    from engine.core.families import family_spec
    spec = family_spec(name)
    cls = spec.family_class()
    accepted = cls.parent_families
    if cls.parent_switch:
        on = model.get(cls.parent_switch) if isinstance(model, dict) else getattr(model, cls.parent_switch, False)
        accepted = accepted if on else ()
    # a preset's default parent preset picks among several accepted families (ldm-vq-digits: vqvae)
    preset = model.get("default_parent_preset") if isinstance(model, dict) else getattr(model, "default_parent_preset", "")
    if len(accepted) > 1 and preset:
        from engine.core.config import load_preset
        named = load_preset(preset).model.family
        accepted = (named,) if named in accepted else accepted
    overlay = getattr(spec.config, "TINY_PARENT", {}).get("model")
    return {"parent": str(tiny_parent(accepted[0], overlay))} if accepted else {}


def tiny_family_config(name: str, **training) -> RunConfig:
    """Family `name` (or "family:variant", one of family_cases()) at its config section's TINY size
    on 8x8 digits, two steps of batch 8 on the CPU; any evaluation of it is cheap too (few samples,
    a briefly trained feature network). A two-stage family gets a tiny parent (tiny_parent)."""
    from engine.core.families import family_spec
    family, _, variant = name.partition(":")
    section = family_spec(family).config
    tiny, overlay = section.TINY, section.TINY_VARIANTS[variant] if variant else {}
    # a variant may name another family its parent is of (ldm:vq, on a tokenizer)
    other = overlay.get("parent_family")
    parent = {"parent": str(tiny_parent(other))} if other else tiny_parent_fields(family)
    return RunConfig(name=f"conf-{name.replace(':', '-')}").replace(
        data={"dataset": "digits", "resolution": TINY_RES},
        model={"family": family, **tiny.get("model", {}), **overlay.get("model", {}), **parent},
        training={"steps": 2, "batch_size": 8, "warmup_steps": 0, "log_every": 1, "sample_every": 0,
                  "checkpoint_every": 0, "device": "cpu", "ema_decay": 0.5, **training},
        sampling={"grid_size": 4, **tiny.get("sampling", {}), **overlay.get("sampling", {})},
        metrics={"samples": 10, "sampling_steps": 2, "domain_steps": 10})


@dataclass
class TinyRun:
    name: str
    config: RunConfig
    result: object        # engine.training.loop.RunResult
    rows: list            # its metrics.jsonl rows

    @property
    def checkpoint(self) -> Path:
        return self.result.last_checkpoint


class TinyRuns:
    """The run of each family, trained on first use and kept for the whole test session: the
    conformance suites of families, ops and canvases all load the same checkpoints."""

    def __init__(self, root: Path):
        self.root, self._runs = root, {}

    def __getitem__(self, name: str) -> TinyRun:
        if name not in self._runs:
            from engine.training.loop import train
            cfg = tiny_family_config(name)
            res = train(cfg, self.root / name, emit=lambda e: None)
            assert res.state == "finished", f"{name}: {res.message}"
            rows = [json.loads(line) for line in (self.root / name / "metrics.jsonl").read_text().splitlines()]
            self._runs[name] = TinyRun(name, cfg, res, rows)
        return self._runs[name]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> TinyRuns:
    return TinyRuns(tmp_path_factory.mktemp("tiny-runs"))


class ManualClock:
    """A clock that moves only when a test moves it (a training step, a grid, a paused poll): what
    images/s, the ETA and a time budget are timed with in the loop tests."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def commands_read_at_every_step(monkeypatch):
    """The control file is read at every step (not every FILE_POLL_S of real time), so a command
    lands at the step the test sends it, however fast the tiny steps run."""
    from engine.training.control import ControlChannel
    monkeypatch.setattr(ControlChannel, "FILE_POLL_S", 0.0)
