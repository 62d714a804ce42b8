"""The desktop install (app/desktop_install.py), the app icon (resources/icons, app/icon.py) and the
PyInstaller spec's registry scan. Everything installs into tmp_path: nothing here touches ~/.local."""
from __future__ import annotations

import configparser
import io
import json
import os
import shlex
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from app import desktop_install as di

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "resources" / "icons"


def run_main(*argv: str, capsys) -> tuple[int, str]:
    rc = di.main(list(argv))
    return rc, capsys.readouterr().out


def read_entry(path: Path) -> configparser.SectionProxy:
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str  # desktop entry keys are case-sensitive
    cp.read_string(path.read_text(encoding="utf-8"))
    return cp["Desktop Entry"]


def tree(prefix: Path) -> set[str]:
    return {str(p.relative_to(prefix)) for p in prefix.rglob("*")} if prefix.exists() else set()


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the desktop install is for Linux")


@linux_only
def test_install_writes_a_working_entry_and_uninstall_removes_it(tmp_path, capsys):
    prefix = tmp_path / "share"
    rc, out = run_main("--prefix", str(prefix), "--no-refresh", capsys=capsys)
    assert rc == 0, out
    desktop = prefix / "applications" / "genlab.desktop"
    assert desktop.is_file()
    entry = read_entry(desktop)
    assert entry["Type"] == "Application" and entry["Name"] == "GenLab"
    argv = shlex.split(entry["Exec"])
    assert argv[-1] == "%f"
    program = Path(argv[0])
    assert program.is_absolute() and program.is_file(), program  # works without PATH
    if program.name == "genlab":  # the venv's gui-script (else `python -m app`: no script installed)
        assert os.access(program, os.X_OK)
    icon = Path(entry["Icon"])
    assert icon.is_absolute() and icon.is_file() and icon.is_relative_to(prefix)
    assert entry["StartupWMClass"] == "GenLab"
    assert di.CHECKPOINT_MIME in entry["MimeType"].split(";")
    for size in di.ICON_SIZES:
        assert (prefix / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "genlab.png").is_file()
    assert (prefix / "icons" / "hicolor" / "scalable" / "apps" / "genlab.svg").is_file()
    # the MIME package is valid XML declaring the checkpoint type with GenLab's own glob only
    root = ET.parse(prefix / "mime" / "packages" / "genlab.xml").getroot()
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    types = root.findall("m:mime-type", ns)
    assert [t.get("type") for t in types] == [di.CHECKPOINT_MIME]
    assert [g.get("pattern") for g in types[0].findall("m:glob", ns)] == ["step_*.safetensors"]

    rc, out = run_main("--prefix", str(prefix), "--uninstall", "--no-refresh", capsys=capsys)
    assert rc == 0, out
    assert not prefix.exists(), tree(prefix)  # the install made every folder under it: all gone


@linux_only
def test_uninstall_leaves_what_was_there_before(tmp_path, capsys):
    prefix = tmp_path / "share"
    other = {prefix / "applications" / "other.desktop": "[Desktop Entry]\nName=Other\n",
             prefix / "icons" / "hicolor" / "48x48" / "apps" / "other.png": "png",
             prefix / "mime" / "packages" / "other.xml": "<mime-info/>"}
    for path, text in other.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    before = tree(prefix)
    assert run_main("--prefix", str(prefix), "--no-refresh", capsys=capsys)[0] == 0
    assert len(tree(prefix)) > len(before)
    assert run_main("--prefix", str(prefix), "--uninstall", "--no-refresh", capsys=capsys)[0] == 0
    assert tree(prefix) == before
    # a second uninstall finds nothing and says so
    rc, out = run_main("--prefix", str(prefix), "--uninstall", "--no-refresh", capsys=capsys)
    assert rc == 0 and "nothing" in out


@linux_only
def test_reinstall_then_uninstall_is_clean(tmp_path, capsys):
    prefix = tmp_path / "share"
    for _ in range(2):
        assert run_main("--prefix", str(prefix), "--no-refresh", capsys=capsys)[0] == 0
    manifest = json.loads((prefix / "genlab" / "installed.json").read_text())
    assert str(prefix / "applications") in manifest["dirs"]  # the first install's folders are kept
    assert run_main("--prefix", str(prefix), "--uninstall", "--no-refresh", capsys=capsys)[0] == 0
    assert not prefix.exists()


@linux_only
def test_dry_run_writes_nothing(tmp_path, capsys):
    prefix = tmp_path / "share"
    rc, out = run_main("--prefix", str(prefix), "--dry-run", capsys=capsys)
    assert rc == 0
    assert not prefix.exists()
    assert f"would write {prefix / 'applications' / 'genlab.desktop'}" in out
    assert run_main("--prefix", str(prefix), "--no-refresh", capsys=capsys)[0] == 0
    installed = tree(prefix)
    rc, out = run_main("--prefix", str(prefix), "--uninstall", "--dry-run", capsys=capsys)
    assert rc == 0 and "would remove" in out
    assert tree(prefix) == installed


@linux_only
def test_refresh_tools_run_on_the_prefix(tmp_path, capsys, monkeypatch):
    """The cache tools are run where they exist, on the prefix's folders; a failing or missing one
    does not fail the install. Fake tools on PATH record their arguments."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for tool in ("update-desktop-database", "update-mime-database", "gtk-update-icon-cache"):
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\nexit 1\n')
        script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    prefix = tmp_path / "share"
    rc, out = run_main("--prefix", str(prefix), capsys=capsys)
    assert rc == 0, out
    calls = log.read_text().splitlines()
    assert f"update-desktop-database -q {prefix / 'applications'}" in calls
    assert f"update-mime-database {prefix / 'mime'}" in calls
    # no icon cache is created where there was none
    assert not any(c.startswith("gtk-update-icon-cache") for c in calls)
    (prefix / "icons" / "hicolor" / "icon-theme.cache").write_bytes(b"")
    assert ["gtk-update-icon-cache", "-q", "-t", "-f", str(prefix / "icons" / "hicolor")] in \
        di.refresh_commands(prefix)


def test_exec_quoting_follows_the_desktop_entry_spec():
    assert di.exec_arg("/usr/bin/genlab") == "/usr/bin/genlab"
    assert di.exec_arg("/home/a b/genlab") == '"/home/a b/genlab"'
    assert di.exec_arg('/x/$y`z"\\/genlab') == '"/x/\\$y\\`z\\"\\\\/genlab"'
    assert di.exec_arg("/50%/genlab") == "/50%%/genlab"
    # the string-value escaping doubles the backslashes of the quoting
    line = di.desktop_entry(["/a b/$x/genlab"], None).splitlines()
    assert 'Exec="/a b/\\\\$x/genlab" %f' in line
    with pytest.raises(ValueError):
        di.exec_arg("/a\nb")


def test_genlab_command_is_the_script_beside_this_python():
    cmd = di.genlab_command()
    assert Path(cmd[0]).is_absolute()
    script = Path(sys.executable).parent / "genlab"
    if script.is_file():
        assert cmd == [str(script)]


def test_other_systems_get_instructions_not_an_install(tmp_path, capsys, monkeypatch):
    for platform, words in (("win32", "Pin to Start"), ("darwin", ".app")):
        monkeypatch.setattr(sys, "platform", platform)
        rc, out = run_main("--prefix", str(tmp_path / "share"), capsys=capsys)
        assert rc == 1 and words in out
    assert not (tmp_path / "share").exists()


def test_open_target(tmp_path):
    run = tmp_path / "runs" / "20250101-000000-x"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.toml").write_text("[model]\n")
    ckpt = run / "checkpoints" / "step_000500.safetensors"
    ckpt.write_bytes(b"x")
    (run / "checkpoints" / "step_000500.json").write_text("{}")
    assert di.open_target(run) == (str(run), None)
    assert di.open_target(run / "checkpoints") == (str(run), None)
    assert di.open_target(run / "config.toml") == (str(run), None)
    assert di.open_target(ckpt) == (str(run), str(ckpt))
    assert di.open_target(ckpt.with_suffix(".json")) == (str(run), str(ckpt))
    loose = tmp_path / "step_000100.safetensors"
    loose.write_bytes(b"x")
    assert di.open_target(loose) == (None, str(loose))
    for bad in (tmp_path, tmp_path / "nope", run / "checkpoints" / "step_000999.json"):
        with pytest.raises(ValueError):
            di.open_target(bad)


# ---- the icon ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qt_gui():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication
    return QApplication.instance() or QApplication(sys.argv[:1])


def test_icons_exist_and_load(qt_gui):
    from PySide6.QtGui import QImage
    svg = ICONS / "genlab.svg"
    ET.parse(svg)  # well-formed
    img = QImage(str(svg))
    assert not img.isNull() and img.width() > 0
    for size in di.ICON_SIZES:
        img = QImage(str(ICONS / f"genlab-{size}.png"))
        assert not img.isNull() and (img.width(), img.height()) == (size, size)
        assert img.hasAlphaChannel() and img.pixelColor(0, 0).alpha() == 0  # rounded corner: transparent
        assert img.pixelColor(size // 2, size // 2).alpha() == 255


def test_app_icon(qt_gui):
    from app.icon import app_icon
    icon = app_icon()
    assert not icon.isNull()
    assert {s.width() for s in icon.availableSizes()} >= set(di.ICON_SIZES)


def test_pngs_match_the_svg(tmp_path, qt_gui):
    """The committed PNGs are renders of the committed SVG (re-render: packaging/render_icons.py)."""
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import render_icons
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    from PySide6.QtGui import QImage
    for path in render_icons.render(out_dir=tmp_path, sizes=(48,)):
        a, b = QImage(str(path)), QImage(str(ICONS / path.name))
        assert a.size() == b.size()
        # within a little of each other: another Qt version may antialias an edge differently
        off = sum(max(abs(x - y) for x, y in zip(a.pixelColor(i, j).getRgb(), b.pixelColor(i, j).getRgb())) > 8
                  for i in range(a.width()) for j in range(a.height()))
        assert off <= a.width() * a.height() // 100, f"{path.name}: {off} pixels differ; run packaging/render_icons.py"


# ---- the PyInstaller spec --------------------------------------------------------------------
def test_spec_finds_every_lazily_imported_module():
    """Run the spec's registry scan (not the build: PyInstaller is not a dependency) and check it
    covers every registry reference and only names modules that exist."""
    from app.canvases import CANVASES
    from engine.core.families import FAMILIES
    from engine.core.solvers import SOLVERS
    text = (ROOT / "packaging" / "genlab.spec").read_text(encoding="utf-8")
    scan = text[:text.index("# ---- what is left out")]
    ns = {"SPECPATH": str(ROOT / "packaging"), "__name__": "genlab_spec"}
    out = io.StringIO()
    old_path = list(sys.path)
    try:
        sys.stdout, real = out, sys.stdout
        exec(compile(scan, "genlab.spec", "exec"), ns)
    finally:
        sys.stdout = real
        sys.path[:] = old_path
    modules = set(ns["lazy_modules"])
    from engine.ops import OPS
    from engine.core.metrics import MEASURES
    wanted = {c.impl for c in CANVASES} | {s.impl for _, s in SOLVERS.items()} | {m.function for _, m in MEASURES.items()} | {o.request_ref for _, o in OPS.items()}
    for _, f in FAMILIES.items():
        wanted |= set(f.refs()) | {f"{f.package}:SPEC"}
    assert {r.partition(":")[0] for r in wanted} <= modules
    assert "engine.inpainting.options" in modules  # a reference outside the registries (ddpm's inpaint_options)
    assert all(ns["module_exists"](m) for m in modules)


@pytest.mark.parametrize("argv, wanted", [
    (["--engine", "presets"], ("engine", ["presets"])),
    (["-u", "-m", "engine", "worker"], ("engine", ["worker"])),  # engine_client.py's command, unchanged
    (["-m", "engine", "train", "--steps", "3"], ("engine", ["train", "--steps", "3"])),
    (["--install-desktop", "--dry-run"], ("install", ["--dry-run"])),
    ([], ("app", [])),
    (["--tab", "sample", "run/dir"], ("app", ["--tab", "sample", "run/dir"])),
])
def test_frozen_entry_dispatches_on_its_first_arguments(monkeypatch, argv, wanted):
    import app.__main__
    import engine.cli.main
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import frozen_main
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    calls = []
    monkeypatch.setattr(engine.cli.main, "main", lambda a: calls.append(("engine", a)) or 0)
    monkeypatch.setattr(app.__main__, "main", lambda a: calls.append(("app", a)) or 0)
    monkeypatch.setattr(di, "main", lambda a: calls.append(("install", a)) or 0)
    monkeypatch.setattr(sys, "argv", ["genlab", *argv])
    assert frozen_main.main() == 0
    assert calls == [wanted]
