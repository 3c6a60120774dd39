"""A Dask cluster of separate processes, started as an operator starts one by hand
(``dask scheduler``, then ``dask worker`` per worker), for the bench's cluster lines and the
tests: the soak and the grader must be as fast, and tally the same, on it as on the
LocalCluster they start for themselves.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class ClusterFailed(RuntimeError):
    """The scheduler or a worker did not come up."""


def _dask(*args) -> list:
    return [sys.executable, "-m", "dask", *args]


@contextlib.contextmanager
def separate_cluster(workers: int = 2, threads: int = 1, timeout: float = 90.0, env=None):
    """Yield the address of a ``dask scheduler`` with ``workers`` ``dask worker`` processes of
    ``threads`` threads each, on this machine; stop them all on the way out. ``env``: extra
    environment for the workers (nothing of this process's is set up in them)."""
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a positive number of worker processes; got {workers!r}")
    from dask.distributed import Client

    folder = Path(tempfile.mkdtemp(prefix="bptt-xval-cluster-"))
    scheduler_file = folder / "scheduler.json"
    logs, procs = [], []
    environment = {**os.environ, **(env or {})}

    def start(argv, name):
        log = open(folder / f"{name}.log", "wb")
        logs.append(log)
        procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                      start_new_session=True))

    try:
        start(_dask("scheduler", "--scheduler-file", str(scheduler_file), "--port", "0",
                    "--dashboard-address", ":0", "--host", "127.0.0.1"), "scheduler")
        deadline = time.monotonic() + timeout
        while not scheduler_file.is_file():
            if procs[0].poll() is not None or time.monotonic() > deadline:
                raise ClusterFailed(f"dask scheduler did not start: {(folder / 'scheduler.log').read_text()[-2000:]}")
            time.sleep(0.1)
        for i in range(workers):
            start(_dask("worker", "--scheduler-file", str(scheduler_file), "--nthreads", str(threads),
                        "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1"), f"worker-{i}")
        with Client(scheduler_file=str(scheduler_file), timeout=timeout) as client:
            try:
                client.wait_for_workers(workers, timeout=max(deadline - time.monotonic(), 1.0))
            except (TimeoutError, OSError) as exc:
                raise ClusterFailed(f"{workers} dask workers did not connect: {exc}") from None
            address = client.scheduler.address
        yield address
    finally:
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
