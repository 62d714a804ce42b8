"""The registry mechanism every plug-in seam uses (engine/core/registry.py) and the family discovery
on top of it: a family folder is found with no list to edit, and a broken one is never silently
dropped."""
from __future__ import annotations

import json

import pytest

from engine.core.artifacts import SAMPLES, ArtifactSpec
from engine.core.families import FAMILIES, discover_families
from engine.core.registry import Registry, absolute_ref, load_object


def test_a_discovery_that_fails_fails_again_instead_of_leaving_an_empty_registry():
    calls = []

    def discover():
        calls.append(1)
        raise ImportError("engine.families.half: a family folder's __init__.py must define SPEC")

    reg = Registry("thing", discover)
    for _ in range(2):   # not "unknown thing 'x'; known: none" the second time
        with pytest.raises(ImportError, match="must define SPEC"):
            reg.get("x")
    assert len(calls) == 2


def test_discovery_runs_once_and_registers_what_it_finds():
    calls = []
    reg = Registry("thing", lambda: calls.append(1) or [("a", 1), ("b", 2)])
    assert reg.names() == ("a", "b") and reg["b"] == 2 and "a" in reg
    reg.register("c", 3)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a", 9)
    assert list(reg) == ["a", "b", "c"] and calls == [1]
    with pytest.raises(KeyError, match="unknown thing 'z'; known: a, b, c"):
        reg.get("z")


def test_every_family_folder_is_discovered_and_names_its_parts_relative_to_itself():
    found = dict(discover_families())
    assert tuple(found) == FAMILIES.names()
    for name, spec in found.items():
        assert spec.package.startswith("engine.families.") and spec.name == name
        for ref in spec.refs():
            assert ref.startswith(spec.package + "."), ref
            load_object(ref)   # every part resolves
    assert absolute_ref(".model:X", "engine.families.ddpm") == "engine.families.ddpm.model:X"
    assert absolute_ref("engine.x:Y", "engine.families.ddpm") == "engine.x:Y"


def test_an_artifact_list_from_a_run_folder_takes_only_well_typed_fields(tmp_path):
    good = ArtifactSpec.from_dict(SAMPLES.to_dict())
    assert good == SAMPLES
    odd = ArtifactSpec.from_dict({"key": "hist", "folder": "samples/hist", "stretch": "3", "title": 7})
    assert odd.stretch == 1 and odd.title == "hist"     # wrong types fall back on the defaults
    assert ArtifactSpec.from_dict({"folder": "x"}) is None and ArtifactSpec.from_dict("x") is None
    from engine.runs.rundir import RunDir
    (tmp_path / "artifacts.json").write_text(json.dumps([{"key": 1}, "junk"]))
    assert RunDir(tmp_path).artifacts() == [SAMPLES]    # nothing usable: the sample grids
