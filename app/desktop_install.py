"""`genlab-install-desktop`: put GenLab in the applications menu of a Linux desktop.

Writes, under PREFIX (default $XDG_DATA_HOME or ~/.local/share; nothing outside it):

  applications/genlab.desktop                 the menu entry: Exec = the `genlab` script of this install
  icons/hicolor/NxN/apps/genlab.png           N = 48, 128, 256, and scalable/apps/genlab.svg
  mime/packages/genlab.xml                    the MIME type of a GenLab checkpoint (see CHECKPOINT_GLOB)
  genlab/installed.json                       what was written, so --uninstall removes exactly that

then refreshes the desktop's caches with update-desktop-database / update-mime-database /
gtk-update-icon-cache where they exist. `--uninstall` removes what the manifest lists (and the
folders the install created, when empty); `--dry-run` prints the plan and touches nothing.

File association, and what is left out on purpose:
- A GenLab checkpoint is checkpoints/step_NNNNNN.safetensors (+ its .json). The glob is
  `step_*.safetensors`, not `*.safetensors`: safetensors files are a common format (Hugging Face,
  diffusers, ComfyUI, ...) that GenLab cannot open (it needs the .json sidecar), so GenLab does not
  claim them. A longer glob of the same weight wins over a generic `*.safetensors` type that another
  package may install, so only files named like GenLab's own checkpoints become GenLab's.
- Run folders get no MIME type: a folder's type is inode/directory for every folder, and a glob on
  `config.toml` would claim every project's config.toml. Open a run with `genlab RUN_DIR`, or by
  opening any of its checkpoints.
- No mimeapps.list default is written: GenLab is the only application listing its type, so it is
  what a double-click uses; the user's own choices are left alone.

Pure stdlib (no Qt, no torch): it runs before anything else works, and on a headless machine."""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

APP_ID = "genlab"
WM_CLASS = "GenLab"  # QApplication.applicationName(): Qt's X11 WM_CLASS class, for StartupWMClass
ICON_SIZES = (48, 128, 256)
CHECKPOINT_MIME = "application/x-genlab-checkpoint"
CHECKPOINT_GLOB = "step_*.safetensors"
MANIFEST = Path("genlab") / "installed.json"
SOURCE_ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"

MIME_XML = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Installed by genlab-install-desktop, removed by its uninstall option. -->
<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">
  <mime-type type="{CHECKPOINT_MIME}">
    <comment>GenLab checkpoint</comment>
    <generic-icon name="application-x-generic"/>
    <icon name="{APP_ID}"/>
    <!-- GenLab names its checkpoints step_NNNNNN.safetensors; other tools' .safetensors files are
         not claimed (GenLab cannot open them: it needs the step_NNNNNN.json beside the file) -->
    <glob pattern="{CHECKPOINT_GLOB}"/>
  </mime-type>
</mime-info>
"""


# ---- what to write ---------------------------------------------------------------------------
def default_prefix() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def genlab_command() -> list[str]:
    """The command that starts GenLab, as absolute paths, so the menu entry needs no PATH: a frozen
    build's own executable, else the `genlab` script of the environment this runs in (beside
    sys.executable in a venv, the scripts folder of a system install), else `python -m app`."""
    if getattr(sys, "frozen", False):
        return [os.path.abspath(sys.executable)]
    exe = os.path.abspath(sys.executable)  # not resolved: a venv's python is a symlink out of it
    name = "genlab.exe" if os.name == "nt" else "genlab"
    for folder in (os.path.dirname(exe), sysconfig.get_path("scripts")):
        if folder and os.path.isfile(os.path.join(folder, name)):
            return [os.path.join(folder, name)]
    found = shutil.which("genlab")
    return [os.path.abspath(found)] if found else [exe, "-m", "app"]


_RESERVED = re.compile(r'[\s"\'\\><~|&;$*?#()`]')


def exec_arg(arg: str) -> str:
    """One argument of a desktop entry's Exec key (Desktop Entry Spec, "The Exec key"): quoted when
    it holds a reserved character, with ", `, $ and \\ escaped inside the quotes; % doubled so it
    is no field code. The string-value escaping of backslashes is done by `value` below."""
    if "\n" in arg or "\r" in arg:
        raise ValueError(f"{arg!r}: a path with a newline cannot go in a desktop entry")
    arg = arg.replace("%", "%%")
    if _RESERVED.search(arg) or not arg:
        arg = '"' + re.sub(r'(["`$\\])', r"\\\1", arg) + '"'
    return arg


def value(text: str) -> str:
    """A desktop entry string value: backslash, tab, newline and carriage return escaped."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def desktop_entry(command: list[str], icon: Path | None) -> str:
    lines = [
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.1",
        "Name=GenLab",
        "GenericName=Generative model workbench",
        "Comment=Train and explore image generative models, offline",
        "Exec=" + value(" ".join(exec_arg(a) for a in command) + " %f"),
        "TryExec=" + value(command[0]),  # the menu hides the entry once that install is gone
        *(["Icon=" + value(str(icon))] if icon else []),
        "Terminal=false",
        "Categories=Science;ArtificialIntelligence;",  # one main category: listed once in a menu
        "Keywords=diffusion;GAN;VAE;flow;machine learning;generative;",
        f"MimeType={CHECKPOINT_MIME};",
        f"StartupWMClass={WM_CLASS}",
        "StartupNotify=true",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Plan:
    """The files to write (path -> bytes) and the folders that do not exist yet, under `prefix`."""
    prefix: Path
    files: dict[Path, bytes] = field(default_factory=dict)
    new_dirs: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def desktop_file(self) -> Path:
        return self.prefix / "applications" / f"{APP_ID}.desktop"

    @property
    def manifest(self) -> Path:
        return self.prefix / MANIFEST


def icon_targets(prefix: Path, source: Path = SOURCE_ICONS) -> dict[Path, Path]:
    """Installed icon path -> the repository file it is copied from (those that exist)."""
    hicolor = prefix / "icons" / "hicolor"
    pairs = {hicolor / f"{s}x{s}" / "apps" / f"{APP_ID}.png": source / f"genlab-{s}.png" for s in ICON_SIZES}
    pairs[hicolor / "scalable" / "apps" / f"{APP_ID}.svg"] = source / "genlab.svg"
    return {dst: src for dst, src in pairs.items() if src.is_file()}


def make_plan(prefix: Path, command: list[str] | None = None, source_icons: Path = SOURCE_ICONS) -> Plan:
    prefix = Path(prefix).expanduser().absolute()
    plan = Plan(prefix)
    icons = icon_targets(prefix, source_icons)
    if not icons:
        plan.warnings.append(f"no icons in {source_icons}: the menu entry gets the desktop's default icon")
    for dst, src in icons.items():
        plan.files[dst] = src.read_bytes()
    biggest = [p for p in icons if p.suffix == ".png"]
    icon = max(biggest, key=lambda p: int(p.parent.parent.name.split("x")[0])) if biggest else next(iter(icons), None)
    plan.files[prefix / "mime" / "packages" / f"{APP_ID}.xml"] = MIME_XML.encode()
    plan.files[plan.desktop_file] = desktop_entry(command or genlab_command(), icon).encode()
    seen = set()
    for path in [*plan.files, plan.manifest]:
        for d in reversed(path.parents):
            if d not in seen and not d.exists() and prefix in (d, *d.parents):
                seen.add(d)
                plan.new_dirs.append(d)
    return plan


# ---- doing it --------------------------------------------------------------------------------
def refresh_commands(prefix: Path, *, which=shutil.which) -> list[list[str]]:
    """The cache tools to run after a change under `prefix`, those that are installed. The icon
    cache is only refreshed where one exists already: a user-level icon-theme.cache that nothing
    else keeps up to date would hide icons other programs install later (and the entry names its
    icon by absolute path, so it needs no cache)."""
    cmds = []
    if which("update-desktop-database"):
        cmds.append(["update-desktop-database", "-q", str(prefix / "applications")])
    if which("update-mime-database"):
        cmds.append(["update-mime-database", str(prefix / "mime")])
    hicolor = prefix / "icons" / "hicolor"
    if which("gtk-update-icon-cache") and (hicolor / "icon-theme.cache").is_file():
        cmds.append(["gtk-update-icon-cache", "-q", "-t", "-f", str(hicolor)])
    return cmds


def run_refresh(prefix: Path, out) -> None:
    for cmd in refresh_commands(prefix):
        if not Path(cmd[-1]).is_dir():
            continue
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as e:
            print(f"  (skipped {cmd[0]}: {e})", file=out)
            continue
        status = "ok" if r.returncode == 0 else f"exit {r.returncode}: {(r.stderr or r.stdout).strip()[:200]}"
        print(f"  ran {' '.join(cmd)}: {status}", file=out)
    hicolor = prefix / "icons" / "hicolor"
    if hicolor.is_dir():
        os.utime(hicolor)  # a newer folder than its cache: GTK rescans it


def install(plan: Plan, *, dry_run: bool = False, refresh: bool = True, out=None) -> int:
    out = out or sys.stdout
    for w in plan.warnings:
        print(f"warning: {w}", file=out)
    verb = "would write" if dry_run else "wrote"
    if dry_run:
        for d in plan.new_dirs:
            print(f"would create {d}/", file=out)
    for path, data in plan.files.items():
        if not dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        print(f"{verb} {path}", file=out)
    if dry_run:
        print(f"would write {plan.manifest}", file=out)
        for cmd in refresh_commands(plan.prefix) if refresh else []:
            print(f"would run {' '.join(cmd)}", file=out)
        return 0
    old = read_manifest(plan.manifest)  # a reinstall keeps the folders an earlier install made
    manifest = {"files": sorted({*map(str, plan.files), *old.get("files", [])}),
                "dirs": sorted({*map(str, plan.new_dirs), *old.get("dirs", [])})}
    plan.manifest.parent.mkdir(parents=True, exist_ok=True)
    plan.manifest.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    if refresh:
        run_refresh(plan.prefix, out)
    exec_line = next(l for l in plan.files[plan.desktop_file].decode().splitlines() if l.startswith("Exec="))
    this = "genlab --install-desktop" if getattr(sys, "frozen", False) else "genlab-install-desktop"
    print(f"GenLab is in the applications menu ({exec_line}). Remove it with: {this} --uninstall"
          + (f" --prefix {plan.prefix}" if plan.prefix != default_prefix().absolute() else ""), file=out)
    return 0


def read_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def uninstall(prefix: Path, *, dry_run: bool = False, refresh: bool = True, out=None) -> int:
    out = out or sys.stdout
    """Remove the files the manifest lists, then the folders the install created if they are empty
    now. Without a manifest (an install it did not record), the fixed file names of an install.
    The caches the refresh tools wrote go with a folder the install created (mime/ holds nothing
    else once its packages/ is empty, applications/ nothing but mimeinfo.cache); elsewhere the tools
    run again, so they drop GenLab's entries."""
    prefix = Path(prefix).expanduser().absolute()
    manifest_path = prefix / MANIFEST
    manifest = read_manifest(manifest_path)
    if manifest:
        files = [Path(p) for p in manifest.get("files", [])]
        dirs = [Path(p) for p in manifest.get("dirs", [])]
    else:
        files, dirs = list(make_plan(prefix, command=["genlab"]).files), []
    # only ever at or below the prefix, whatever a manifest says
    files = [p for p in files if prefix in p.parents]
    dirs = [d for d in dirs if d == prefix or prefix in d.parents]
    verb = "would remove" if dry_run else "removed"
    removed = 0
    for path in [*files, manifest_path]:
        if path.is_file() or path.is_symlink():
            if not dry_run:
                path.unlink()
            print(f"{verb} {path}", file=out)
            removed += 1
    if not removed:
        print(f"nothing of GenLab's is installed under {prefix}", file=out)
        return 0
    mime, apps = prefix / "mime", prefix / "applications"
    if not dry_run:
        packages = mime / "packages"
        if mime in dirs and mime.is_dir() and not (packages.is_dir() and any(packages.iterdir())):
            shutil.rmtree(mime)  # all that is left there is update-mime-database's output
            print(f"{verb} {mime}/ (the MIME cache the install made)", file=out)
        if apps in dirs and apps.is_dir() and {p.name for p in apps.iterdir()} <= {"mimeinfo.cache"}:
            shutil.rmtree(apps)
            print(f"{verb} {apps}/", file=out)
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):  # deepest first
        if d.is_dir() and (dry_run or not any(d.iterdir())):
            if not dry_run:
                d.rmdir()
            print(f"{verb} {d}/" + (" (if empty then)" if dry_run else ""), file=out)
    if refresh and not dry_run:
        run_refresh(prefix, out)
    elif refresh:
        for cmd in refresh_commands(prefix):
            print(f"would run {' '.join(cmd)}", file=out)
    return 0


# ---- what a double-click hands to `genlab PATH` -----------------------------------------------
def open_target(path: str | os.PathLike) -> tuple[str | None, str | None]:
    """(run folder, checkpoint) to open for PATH: a run folder (or its checkpoints/ folder or its
    config.toml) gives the run; a step_NNNNNN.safetensors or .json gives that checkpoint, and its
    run when it sits in one. ValueError, with one line, for anything else."""
    p = Path(path).expanduser().absolute()
    if p.is_dir():
        for run in (p, p.parent) if p.name == "checkpoints" else (p,):
            if (run / "config.toml").is_file():
                return str(run), None
        raise ValueError(f"{p}: not a GenLab run folder (it has no config.toml)")
    if not p.is_file():
        raise ValueError(f"{p}: no such file or folder")
    if p.name == "config.toml":
        return str(p.parent), None
    if p.suffix in (".safetensors", ".json"):
        ckpt = p.with_suffix(".safetensors")
        if not ckpt.is_file():
            raise ValueError(f"{ckpt}: not found (a GenLab checkpoint is a .safetensors file with its .json)")
        run = p.parent.parent
        in_run = p.parent.name == "checkpoints" and (run / "config.toml").is_file()
        return (str(run) if in_run else None), str(ckpt)
    raise ValueError(f"{p}: GenLab opens run folders and checkpoints (.safetensors), not this")


# ---- other systems ---------------------------------------------------------------------------
def not_linux_message(platform: str, command: list[str]) -> str:
    target = command[0] if len(command) == 1 else " ".join(command)
    if platform == "win32":
        return ("genlab-install-desktop only sets up Linux desktops. On Windows:\n"
                f"  - GenLab is {target}\n"
                "  - in Explorer, right-click it > Pin to Start (or Send to > Desktop (create shortcut));\n"
                "  - to open a checkpoint with a double-click: right-click a step_NNNNNN.safetensors >\n"
                "    Open with > Choose another app > browse to that file.\n"
                "A Start-menu .lnk is not written here: creating one needs the Windows Shell COM API\n"
                "(pywin32), which GenLab does not depend on.")
    if platform == "darwin":
        return ("genlab-install-desktop only sets up Linux desktops. On macOS a Dock/Launchpad entry is an\n"
                ".app bundle; GenLab does not build one yet (packaging/README.md, \"macOS\").\n"
                f"Start GenLab from a terminal with: {target}")
    return (f"genlab-install-desktop sets up freedesktop.org desktops (Linux, BSD); this is {platform!r}.\n"
            f"Start GenLab with: {target}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="genlab-install-desktop",
                                description="Add GenLab to the applications menu (a .desktop entry, its icon "
                                            "and the checkpoint file type), or remove it.")
    p.add_argument("--uninstall", action="store_true", help="remove what an install put there")
    p.add_argument("--prefix", type=Path, default=None,
                   help="the data folder to install into (default: $XDG_DATA_HOME or ~/.local/share)")
    p.add_argument("--dry-run", action="store_true", help="print what would be done; change nothing")
    p.add_argument("--no-refresh", action="store_true",
                   help="do not run update-desktop-database / update-mime-database / gtk-update-icon-cache")
    args = p.parse_args(argv)
    if not (sys.platform.startswith("linux") or "bsd" in sys.platform):
        print(not_linux_message(sys.platform, genlab_command()))
        return 1
    prefix = args.prefix if args.prefix is not None else default_prefix()
    try:
        if args.uninstall:
            return uninstall(prefix, dry_run=args.dry_run, refresh=not args.no_refresh)
        return install(make_plan(prefix), dry_run=args.dry_run, refresh=not args.no_refresh)
    except (OSError, ValueError) as e:
        print(f"genlab-install-desktop: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
