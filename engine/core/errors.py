"""One line for an operating-system error, naming the path and what is wrong in words a person
acts on (light: no torch)."""
from __future__ import annotations

import errno
import shutil
from pathlib import Path


def _free_space(path: str) -> str:
    p = Path(path)
    for folder in (p, *p.parents):
        try:
            return f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free"
        except OSError:
            continue
    return "free space unknown"


def os_error_line(e: OSError, action: str = "") -> str:
    """'runs/x/status.json: no space left on the device (12 MiB free)', '…: permission denied', …"""
    path = e.filename if e.filename is not None else ""
    if e.filename2 is not None:
        path = f"{path} -> {e.filename2}"
    what = {errno.ENOSPC: f"no space left on the device ({_free_space(str(e.filename or '.'))})",
            errno.EDQUOT: "disk quota exceeded",
            errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.EROFS: "the file system is read-only",
            errno.ENOENT: "not found",
            errno.ENOTDIR: "a file is in the way where a folder is needed",
            errno.EEXIST: "a file is in the way where a folder is needed" if Path(str(path)).is_file() else "already exists",
            errno.EISDIR: "is a folder, not a file",
            errno.ENAMETOOLONG: "the name is too long"}.get(e.errno, e.strerror or type(e).__name__)
    prefix = f"{path}: " if path else ""
    return f"{prefix}{action + ': ' if action else ''}{what}"


class NotFinite(ValueError):
    """A score or a likelihood that came out as NaN or infinite (images unlike anything the model
    or the feature network has seen, a diverged model's samples): refused in one line saying why,
    never written into a table as NaN."""
