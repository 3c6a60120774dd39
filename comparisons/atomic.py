"""Atomic file writes: a temporary file in the same folder, then ``os.replace``.

An interrupted run (Ctrl-C, a crash, a full disk) leaves either the old file or the new
one, never half of one: ``os.replace`` within one file system is atomic, and the folder is
synced after it so the rename itself survives a power cut.

The file gets the mode an ordinary ``open(path, "w")`` would give it, 0666 less the
process's umask (0644 under 022): ``mkstemp`` creates its file 0600, which a course's web
server cannot read when it serves a gradebook or a report.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def umask() -> int:
    """The process's umask, read without changing it where the kernel says it (Linux's
    /proc/self/status); elsewhere set and put back at once, under a lock."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return                      # a platform without folder handles (Windows): nothing to sync
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path, data: bytes) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # KeyboardInterrupt included: remove the partial temporary file, keep the old one
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _sync_folder(path.parent)
    return path


def write_text(path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))
