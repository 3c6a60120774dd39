"""``bptt-xval bench --grading``: the grader at a MOOC's scale, and a real cluster against a
local one (issue 42, items 5 and 6).

- **The grading line.** A synthetic class (``comparisons.measure.classroom``: right, wrong,
  hostile, slow) graded sandboxed on the default in-process cluster, every verdict checked
  against the one the submission must get. Submissions per second and per core (the
  class's references are computed once, before, and timed apart: they do not grow with N),
  and the grader's peak memory for each class size, each size in a fresh process so that one
  size's peak cannot hide another's.
- **The cluster lines.** The same class graded on a ``dask scheduler`` with ``dask worker``
  processes started by hand (``comparisons.measure.cluster``; the grader alone writes the
  gradebook), and ``soak`` on the LocalCluster it starts itself against the same separate
  cluster: seconds both ways, and whether the tallies are equal count for count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (200, 1000)
CASES = 50
TIMEOUT = 5.0
SOAK_CASES, SOAK_SEED = 2000, 77


def _rss_mb() -> float:
    """This process's resident memory now (MiB), from /proc (Linux), else its peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _peak_mb()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024      # KiB on Linux


def grade_class(n: int, *, cases: int = CASES, timeout: float = TIMEOUT, workers: int | None = None,
                scheduler: str | None = None, seed: int = 0) -> dict:
    """Grade a synthetic class of ``n`` in this process; the figures of one run."""
    from comparisons.grading.gradebook import grade, make_plan
    from comparisons.grading.sandbox import protections
    from comparisons.measure.classroom import write_class

    with tempfile.TemporaryDirectory(prefix="bptt-xval-class-") as folder:
        expected = write_class(Path(folder) / "submissions", n)
        started = time.perf_counter()
        plan = make_plan("cs231n", cases=cases, seed=seed, timeout=timeout, memory=2 * 2 ** 30)
        planned = time.perf_counter()
        rss_before = _rss_mb()
        book = grade(Path(folder) / "submissions", Path(folder) / "gradebook", plan, workers=workers,
                     scheduler=scheduler, progress=lambda line: None)
        seconds = time.perf_counter() - planned
    wrong = {name: (book["rows"].get(name, {}).get("verdict"), want) for name, want in expected.items()
             if book["rows"].get(name, {}).get("verdict") != want}
    cores = os.cpu_count() or 1
    verdicts = {}
    for row in book["rows"].values():
        verdicts[row["verdict"]] = verdicts.get(row["verdict"], 0) + 1
    return {"submissions": n, "cases": cases, "timeout_s": timeout, "cores": cores,
            "workers": workers or cores, "scheduler": "separate" if scheduler else "in-process",
            "sandbox": protections().text(), "plan_seconds": planned - started, "grade_seconds": seconds,
            "submissions_per_s": n / seconds, "submissions_per_s_per_core": n / seconds / cores,
            "rss_before_grading_mb": rss_before, "peak_rss_mb": _peak_mb(),
            "growth_mb": _peak_mb() - rss_before, "verdicts": verdicts,
            "wrong_verdicts": len(wrong), "wrong_examples": dict(list(wrong.items())[:5])}


def grade_class_fresh(n: int, **options) -> dict:
    """:func:`grade_class` in a fresh interpreter, so its peak memory is its own."""
    argv = [sys.executable, "-m", "comparisons.measure.grading_rate", str(n)]
    for key, value in options.items():
        if value is not None:
            argv += [f"--{key}", str(value)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"grading {n} submissions failed (exit {done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _tally_of(total: dict) -> dict:
    """What two soaks of one seed must agree on: every count and maximum, no times."""
    keep = ("cases", "false_alarms", "inconclusive", "inconclusive_by_reason", "max_error_over_tolerance",
            "histogram")
    return {k: total.get(k) for k in keep}


def soak_both_ways(cases: int = SOAK_CASES, seed: int = SOAK_SEED, workers: int = 2, progress=print) -> dict:
    """``soak --cases CASES --seed SEED`` on its own LocalCluster and on a separate one."""
    from comparisons.measure.cluster import separate_cluster
    from comparisons.measure.soak import soak

    runs = {}
    with tempfile.TemporaryDirectory(prefix="bptt-xval-soak-") as folder:
        progress(f"soak {cases} cases, seed {seed}: LocalCluster of {workers}")
        started = time.perf_counter()
        local = soak(cases, seed, workers=workers, out=Path(folder) / "local.json",
                     reproducers=Path(folder) / "local-fa", progress=lambda line: None)
        runs["local_seconds"] = time.perf_counter() - started
        progress(f"soak {cases} cases, seed {seed}: dask scheduler + {workers} dask workers")
        with separate_cluster(workers, threads=1) as address:
            started = time.perf_counter()
            far = soak(cases, seed, scheduler=address, out=Path(folder) / "separate.json",
                       reproducers=Path(folder) / "separate-fa", progress=lambda line: None)
            runs["separate_seconds"] = time.perf_counter() - started
    runs.update({"cases": cases, "seed": seed, "workers": workers,
                 "separate_over_local": runs["separate_seconds"] / runs["local_seconds"],
                 "tallies_equal": _tally_of(local) == _tally_of(far), "false_alarms": [local["false_alarms"],
                                                                                      far["false_alarms"]]})
    return runs


def run(sizes=SIZES, *, cases: int = CASES, soak_cases: int = SOAK_CASES, progress=print) -> dict:
    """Every grading and cluster line; the figures as bench's JSON holds them."""
    from comparisons.measure.cluster import separate_cluster

    results = {"grading": [], "cluster": {}}
    for n in sizes:
        progress(f"grading a class of {n} (sandboxed, {cases} cases, a fresh process)")
        results["grading"].append(grade_class_fresh(n, cases=cases))
    n = max(sizes)
    cores = os.cpu_count() or 1
    progress(f"grading a class of {n} on dask scheduler + {cores} dask workers")
    with separate_cluster(cores, threads=1) as address:
        results["cluster"]["grade"] = grade_class_fresh(n, cases=cases, scheduler=address)
    results["cluster"]["soak"] = soak_both_ways(soak_cases, SOAK_SEED, workers=cores, progress=progress)
    return results


def table(results: dict) -> str:
    lines = ["| class | where | submissions/s | per core | grader peak RSS | grown while grading | wrong verdicts |",
             "|---|---|---|---|---|---|---|"]
    rows = list(results["grading"]) + ([results["cluster"]["grade"]] if "grade" in results["cluster"] else [])
    for r in rows:
        lines.append(f"| {r['submissions']} | {r['scheduler']} | {r['submissions_per_s']:.2f} | "
                     f"{r['submissions_per_s_per_core']:.2f} | {r['peak_rss_mb']:.0f} MiB | {r['growth_mb']:.0f} MiB | "
                     f"{r['wrong_verdicts']} |")
    s = results["cluster"].get("soak")
    if s:
        lines.append("")
        lines.append(f"soak --cases {s['cases']} --seed {s['seed']}: LocalCluster {s['local_seconds']:.1f} s, "
                     f"dask scheduler + {s['workers']} workers {s['separate_seconds']:.1f} s "
                     f"({s['separate_over_local']:.2f}x); tallies equal: {s['tallies_equal']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """One class graded in this (fresh) process: its figures as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m comparisons.measure.grading_rate")
    parser.add_argument("n", type=int)
    parser.add_argument("--cases", type=int, default=CASES)
    parser.add_argument("--timeout", type=float, default=TIMEOUT)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--scheduler", default=None)
    args = parser.parse_args(argv)
    print(json.dumps(grade_class(args.n, cases=args.cases, timeout=args.timeout, workers=args.workers,
                                 scheduler=args.scheduler)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
