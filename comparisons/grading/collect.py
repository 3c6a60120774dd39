"""Reading a submissions folder as the grader, without being made to read anything else.

The grader runs as the instructor: whatever it reads while collecting, it reads with the
instructor's rights. A student's folder holding a symbolic link to the instructor's file,
to a classmate's solution or to ``/proc/self/environ`` had that file read and carried into
the gradebook (issue 40), and a link to ``/proc/self/mem`` stopped the whole class. So:

- every entry is examined with ``lstat`` (never ``stat``), and a folder is walked without
  following links (``os.walk(followlinks=False)``);
- a file is opened with ``O_NOFOLLOW`` (a link swapped in after the ``lstat`` fails to open)
  and ``O_NONBLOCK`` (a FIFO swapped in does not hang the grader), and read only if the
  opened descriptor's ``fstat`` says it is a regular file;
- links, devices, FIFOs and sockets are skipped and listed with why;
- what one student's folder may bring is capped, in bytes and in files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FOLDER_MAX_BYTES = 16 * 2 ** 20     # a student's folder travels to its process whole: bounded
FOLDER_MAX_FILES = 200
FILE_MAX_BYTES = 8 * 2 ** 20


class Refused(Exception):
    """An entry the grader will not read; the message says why."""


def kind(mode: int) -> str:
    return ("a symbolic link" if stat.S_ISLNK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a folder" if stat.S_ISDIR(mode) else "a regular file" if stat.S_ISREG(mode) else "not a file")


def read_regular(path, limit: int = FILE_MAX_BYTES) -> bytes:
    """The bytes of ``path`` if it is a regular file (not a link, device or FIFO) of at most
    ``limit`` bytes; else :class:`Refused` saying what it is."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        mode = _lstat_mode(path)
        if mode is not None and stat.S_ISLNK(mode):
            raise Refused("a symbolic link: not followed") from None
        raise Refused(f"cannot be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{kind(info.st_mode)}: not read")
        if info.st_size > limit:
            raise Refused(f"{info.st_size} bytes: over {limit} bytes")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:                       # it grew while being read
                raise Refused(f"over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _lstat_mode(path):
    try:
        return os.lstat(path).st_mode
    except OSError:
        return None


def entries(folder) -> list:
    """(name, mode from lstat) of ``folder``'s entries, sorted, links not followed."""
    out = []
    with os.scandir(folder) as it:
        for e in it:
            try:
                out.append((e.name, e.stat(follow_symlinks=False).st_mode))
            except OSError:
                continue
    return sorted(out)


def read_tree(folder, suffixes: tuple, max_bytes: int = FOLDER_MAX_BYTES,
              max_files: int = FOLDER_MAX_FILES) -> tuple[dict, list]:
    """({relative path: bytes} of the sources (``suffixes``) under ``folder``, [(relative path,
    why not read)]): hidden and ``__`` entries left out silently, links and special files
    listed. Raises :class:`Refused` when the folder brings more than ``max_files`` sources
    or ``max_bytes`` bytes."""
    folder = Path(folder)
    files, refused, total = {}, [], 0
    for here, dirs, names in os.walk(folder, followlinks=False):
        rel_here = Path(here).relative_to(folder)
        kept = []
        for d in sorted(dirs):
            if d.startswith((".", "__")):
                continue
            mode = _lstat_mode(os.path.join(here, d))
            if mode is None or stat.S_ISLNK(mode):
                refused.append((str(rel_here / d) + "/", "a symbolic link: not followed"))
                continue
            kept.append(d)
        dirs[:] = kept
        for n in sorted(names):
            if n.startswith((".", "__")):
                continue
            relative = str(rel_here / n)
            mode = _lstat_mode(os.path.join(here, n))
            if mode is None:
                continue
            if not stat.S_ISREG(mode):
                refused.append((relative, f"{kind(mode)}: not followed" if stat.S_ISLNK(mode)
                                else f"{kind(mode)}: not read"))
                continue
            if Path(n).suffix not in suffixes:
                continue
            if len(files) >= max_files:
                raise Refused(f"more than {max_files} source files")
            try:
                data = read_regular(os.path.join(here, n), FILE_MAX_BYTES)
            except Refused as exc:
                refused.append((relative, str(exc)))
                continue
            total += len(data)
            if total > max_bytes:
                raise Refused(f"over {max_bytes // 2**20} MB of sources")
            files[relative] = data
    return files, refused
