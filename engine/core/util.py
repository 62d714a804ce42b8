"""Small helpers with no heavy imports: atomic file writes and copies, temp-file names, process liveness."""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable


def throttled(fn: Callable, interval_s: float) -> Callable:
    """Progress callback fn(..., done, total) passed on at most every interval_s, and always for
    the last item, so a fast loop does not flood its listener with events."""
    last = [float("-inf")]

    def call(*args):
        now = time.monotonic()
        if now - last[0] >= interval_s or args[-2] == args[-1]:
            last[0] = now
            fn(*args)
    return call


def _read_umask() -> int:
    """The process umask, read without changing it where the system tells (Linux /proc), else by
    setting and restoring it once, at import, before any writer thread exists."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0)
    os.umask(old)
    return old


# mkstemp creates 0600 files; written files get the mode open() would give them, so a run
# watched from another account over a shared folder stays readable
FILE_MODE = 0o666 & ~_read_umask()

TEMP_SUFFIX = ".tmp"
COPY_CHUNK = 1 << 20  # bytes per read when copying (checkpoints run to hundreds of MB)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_replace(path: Path, write: Callable) -> None:
    """Call write(f) on a temp file in the target's folder, fsync it, rename it over the target,
    then fsync the folder (so the rename itself survives a crash). On any failure the temp file is
    removed and the target is untouched; an OSError names the target (not the temp file, and not
    None as a failed write() would)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # an error names the folder it could not make
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as e:
        _name_target(e, path)
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            _set_mode(f.fileno())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            _name_target(e, path)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to path through a temp file in the same folder (see _atomic_replace)."""
    _atomic_replace(path, lambda f: f.write(data))


def atomic_copy_file(src: Path, dest: Path) -> None:
    """Copy src's bytes to dest the same way: a reader never sees a partial dest, and a failed copy
    leaves dest as it was. src is opened first, so a missing src is reported under its own name."""
    with open(src, "rb") as s:
        _atomic_replace(dest, lambda f: shutil.copyfileobj(s, f, COPY_CHUNK))


def _set_mode(fd: int) -> None:
    try:
        os.fchmod(fd, FILE_MODE)
    except (OSError, AttributeError):  # a share that refuses chmod, or no fchmod (Windows)
        pass


def _name_target(e: OSError, path: Path) -> None:
    e.filename, e.filename2 = str(path), None


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True))


def is_temp_file(name: str) -> bool:
    """A temp file of the atomic writes and copies here: .{target name}.{random}.tmp"""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX) and name.count(".") >= 3


def pid_alive(pid) -> bool | None:
    """Whether a process with this id runs on this machine: True, False, or None when it cannot be
    told (no usable pid)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return None  # os.kill(0 or -1, ...) would address a whole process group
    if sys.platform == "win32":  # os.kill there terminates the process
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return None
    return True


def process_start_time(pid: int) -> float | None:
    """When a process started (seconds since the epoch), where the system tells (Linux), else None.
    Lets a reader see that a live pid was reused by a process younger than the record naming it."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after "(name)", which may hold spaces
        with open("/proc/stat", encoding="ascii") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of the whole line
    except (OSError, ValueError, IndexError, StopIteration, AttributeError):
        return None


def _pid_alive_windows(pid: int) -> bool | None:
    try:
        import ctypes
        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel32.GetLastError() == 5  # ERROR_ACCESS_DENIED: it exists
        try:
            code = ctypes.c_ulong()
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return None
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    except (OSError, AttributeError):
        return None
