"""Limits while a file loads: a time limit that works with or without ``SIGALRM`` and
``fork`` (Windows, macOS' spawn), a forked probe for a hang inside one C call, and the
student's own ``sys.argv`` and stdin while it runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
import time

from comparisons.loading.errors import LoadError

# --- running -------------------------------------------------------------------------------

@contextlib.contextmanager
def time_limit(seconds: float | None, what: str):
    """SIGALRM after ``seconds`` (in the main thread; elsewhere the caller's own limit, such
    as the grader's, holds): a loop that never ends becomes a LoadError. A loop inside one C
    call (``sum(range(10**12))``) never returns to the interpreter to see the signal, nor
    lets a watchdog thread run: :func:`finishes` is the command line's answer to that."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return
    if not (hasattr(signal, "SIGALRM") and hasattr(signal, "setitimer")):
        # Windows has neither: a timer thread interrupts the main thread instead
        with _interrupting_timer(seconds, what):
            yield
        return

    def expired(*_):
        raise _Expired()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Expired:
        raise LoadError(f"{what} did not finish in {seconds:g} s (a loop at import time?)") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _interrupting_timer(seconds: float, what: str):
    """:func:`time_limit` where SIGALRM does not exist: ``_thread.interrupt_main`` from a timer
    thread raises KeyboardInterrupt in the main thread at its next bytecode; only the one the
    timer caused becomes the LoadError (a user's own Ctrl-C stays theirs)."""
    import _thread

    fired = threading.Event()

    def fire():
        fired.set()
        _thread.interrupt_main()

    # interrupt_main does nothing where SIGINT is not Python's own (set to SIG_IGN or SIG_DFL by
    # a library or a parent process): Python's handler is put back for the load's duration
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except KeyboardInterrupt:
        if fired.is_set():
            raise LoadError(f"{what} did not finish in {seconds:g} s (a loop at import time?)") from None
        raise
    finally:
        timer.cancel()
        if previous is not signal.default_int_handler and previous is not None:
            signal.signal(signal.SIGINT, previous)


def finishes(load_it, seconds: float, what: str) -> None:
    """Raise LoadError unless ``load_it()`` finishes within ``seconds`` in a forked copy of
    this process (its output discarded, then it ends): a hang inside one C call can only be
    stopped from outside. For the command line's own process, before torch or JAX start
    threads; the real load follows in this process (loading runs only definitions and simple
    assignments, so twice costs milliseconds)."""
    if not hasattr(os, "fork"):
        return
    pid = os.fork()
    if pid == 0:                                           # the copy: load, and end
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            load_it()
        finally:
            os._exit(0)
    deadline = time.monotonic() + seconds + 1.0
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise LoadError(f"{what} did not finish in {seconds:g} s (a loop at import time?)")


class _Expired(BaseException):
    """Not an Exception: a student's ``except Exception`` must not swallow the time limit."""


@contextlib.contextmanager
def as_user(path):
    """The student's process as they would run it: ``sys.argv == [FILE]``, stdin empty."""
    argv, stdin = sys.argv, sys.stdin
    sys.argv, sys.stdin = [str(path)], io.StringIO("")
    try:
        yield
    finally:
        sys.argv, sys.stdin = argv, stdin
