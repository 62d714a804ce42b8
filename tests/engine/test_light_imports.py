"""What the GUI imports of the engine stays light: every module of engine/core, every family's
folder (its FamilySpec), its [model] section and its sample options load without torch (and
without Qt), in a fresh interpreter. A family whose section.py pulls in its model would make the
window start seconds slower and break the app's no-torch rule; this names the module that did."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import importlib, json, pkgutil, sys
import engine.core
for info in pkgutil.iter_modules(engine.core.__path__):
    importlib.import_module(f"engine.core.{info.name}")
from engine.core.families import FAMILIES
loaded = {}
for name, spec in FAMILIES.items():
    loaded[name] = [spec.config.__module__, spec.sample_options.__module__]
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "PySide6"))
engine = sorted(m for m in sys.modules if m.startswith("engine."))
print(json.dumps({"families": loaded, "heavy": heavy[:5], "engine": engine}))
"""


def test_the_registries_sections_and_sample_options_load_without_torch():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    from engine.core.families import FAMILIES
    assert sorted(out["families"]) == sorted(FAMILIES.names())
    assert out["heavy"] == [], (f"importing engine.core and the families' specs, sections and sample options "
                                f"loaded {out['heavy']}; engine modules loaded: {out['engine']}")


QUEUE_PROBE = r"""
import json, sys
from engine.cli.main import main
rc = main(["queue", "list", "--runs-root", sys.argv[1]])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "PySide6", "numpy"))
print(json.dumps({"rc": rc, "heavy": heavy[:5]}))
"""


def test_queue_list_imports_no_torch(tmp_path):
    """`genlab-engine queue list` (and the queue store the GUI reads) answers at once: no torch."""
    from engine.runs.queue import TrainingQueue
    from engine.core.config import RunConfig
    TrainingQueue(tmp_path).add(RunConfig(name="x").to_dict(), time_budget_s=5)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", QUEUE_PROBE, str(tmp_path)], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"rc": 0, "heavy": []}
    assert "x, budget 5 s" in r.stdout
