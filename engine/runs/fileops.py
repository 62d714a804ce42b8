"""What the runs browser can do to a run's folder: rename it, move it to the trash (restorable, laid
out as the freedesktop trash) and export its config or a checkpoint. Renaming and trashing refuse a live run
(its process still writes into the folder). Light: no torch, no Qt."""
from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from engine.core.util import atomic_copy_file, atomic_write_bytes
from engine.runs.rundir import ACTIVE_STATES, RunDir, effective_status


class RunBusyError(OSError):
    """A live run cannot be moved, renamed or deleted."""


def _refuse_if_live(run_dir: Path, what: str) -> None:
    st = effective_status(run_dir)
    if st.get("state") not in ACTIVE_STATES:
        return
    host = st.get("host") or ""
    where = f"pid {st.get('pid')}" + (f" on {host}" if host else "")
    hint = "stop it first"
    if host and host != socket.gethostname():
        hint += (f" (its status.json says it is {st['state']} on another machine, {host}; if that process "
                 f"is gone, stop it there or resume and stop it from here)")
    raise RunBusyError(f"{run_dir.name} is {st['state']} ({where}): cannot {what} a live run; {hint}")


_BAD_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def rename_run(path: str | Path, new_name: str) -> Path:
    """Rename a run's folder (in the same parent folder); returns the new path. Refuses while the
    run is live (its process writes into the folder), a name with a path separator or characters
    other systems refuse, and a name that is taken. status.json's last_checkpoint follows."""
    path = Path(path).absolute()
    new_name = new_name.strip()
    if not new_name or new_name in (".", "..") or new_name.startswith(".") or _BAD_NAME.search(new_name):
        raise ValueError(f"{new_name!r} is not a usable folder name (no / \\ : * ? \" < > |, not starting with '.')")
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run folder")
    target = path.with_name(new_name)
    if target == path:
        return path
    if target.exists():
        raise FileExistsError(f"{target}: a folder with that name exists already")
    _refuse_if_live(path, "rename")
    os.rename(path, target)
    rd = RunDir(target)
    st = rd.read_status()
    last = st.get("last_checkpoint")
    if isinstance(last, str) and Path(last).parent.parent == path:  # the absolute path of the old folder
        st["last_checkpoint"] = str(target / Path(last).relative_to(path))
        rd.write_status(**st)
    return target


def freedesktop_trash() -> Path:
    """The user's trash: $XDG_DATA_HOME/Trash, else ~/.local/share/Trash."""
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "Trash"


def _mount_top(path: Path) -> Path:
    path = path.resolve()
    dev = path.stat().st_dev
    while path.parent != path and path.parent.stat().st_dev == dev:
        path = path.parent
    return path


def default_trash_for(path: str | Path) -> Path:
    """Where trash() puts path without a trash_dir.

    Linux and other freedesktop systems: the user's trash (~/.local/share/Trash) when the run is on
    the same filesystem as it, else that filesystem's own trash ($topdir/.Trash-$uid, as the
    freedesktop spec says), so a run on a shared or cluster mount is never copied across; file
    managers list it and can restore it. Elsewhere (Windows, macOS): a `.trash` folder inside the
    runs folder that holds the run (the runs browser does not list it; empty it by hand)."""
    path = Path(path)
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        home_trash = freedesktop_trash()
        try:
            anchor = home_trash if home_trash.exists() else home_trash.parent
            while not anchor.exists():
                anchor = anchor.parent
            if anchor.stat().st_dev == path.stat().st_dev:
                return home_trash
            return _mount_top(path) / f".Trash-{os.getuid()}"
        except OSError:
            pass
    return path.parent / ".trash"


def trash(path: str | Path, trash_dir: str | Path | None = None) -> Path:
    """Move a run folder to a trash folder laid out as the freedesktop trash (files/NAME plus
    info/NAME.trashinfo with its original path and the time), so it can be restored; returns where
    it went. trash_dir: that trash folder; None: default_trash_for(path) (see there for which).
    Refuses while the run is live."""
    path = Path(path).absolute()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run folder")
    _refuse_if_live(path, "delete")
    root = Path(trash_dir) if trash_dir is not None else default_trash_for(path)
    files, info = root / "files", root / "info"
    files.mkdir(parents=True, exist_ok=True)
    info.mkdir(parents=True, exist_ok=True)
    if trash_dir is None and root.name.startswith(".Trash-"):
        os.chmod(root, 0o700)  # the spec: a per-user trash on a shared mount is the user's alone
    name, k = path.name, 1
    while True:  # reserve a name: the .trashinfo is created first, exclusively (the spec's way)
        info_path = info / f"{name}.trashinfo"
        try:
            fd = os.open(info_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            k += 1
            name = f"{path.name}.{k}"
            continue
        if (files / name).exists():
            os.close(fd)
            os.unlink(info_path)
            k += 1
            name = f"{path.name}.{k}"
            continue
        break
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"[Trash Info]\nPath={quote(str(path))}\nDeletionDate={datetime.now():%Y-%m-%dT%H:%M:%S}\n")
    target = files / name
    try:
        shutil.move(str(path), str(target))
    except BaseException:
        os.unlink(info_path)
        raise
    return target


def export_config(run_dir: str | Path, dest: str | Path) -> Path:
    """Write the run's config.toml to dest (a file, or a folder: <run name>.toml in it), with a
    comment saying where it came from and how to train it again without the GUI."""
    run_dir = Path(run_dir)
    text = (run_dir / "config.toml").read_text(encoding="utf-8")
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / f"{run_dir.name}.toml"
    header = (f"# exported from the GenLab run {run_dir}\n"
              f"# train it again without the GUI:  python -m engine train --config {dest.name}\n\n")
    atomic_write_bytes(dest, (header + text).encode("utf-8"))
    return dest


def export_checkpoint(checkpoint: str | Path, dest: str | Path) -> Path:
    """Copy a checkpoint (the .safetensors and its .json) to dest: a .safetensors file name, or a
    folder (then under its own name). Returns the .safetensors path written."""
    src = Path(checkpoint).with_suffix(".safetensors")
    meta = src.with_suffix(".json")
    for p in (src, meta):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: missing (is the checkpoint complete?)")
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / src.name
    dest = dest.with_suffix(".safetensors")
    atomic_copy_file(meta, dest.with_suffix(".json"))
    atomic_copy_file(src, dest)
    return dest

