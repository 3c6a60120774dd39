"""The process one submission runs in: ``python -m comparisons.grading.child SPEC.json OUT``.

Started by ``comparisons.grading.gradebook`` (never imported by the grader itself). It limits its
own resources first (before any student code is imported: the limits are set by this
trusted prologue, and an unprivileged process cannot raise them again), imports the
submission, runs it on the cases named in SPEC.json — the candidate's half of a check,
``comparisons.check.checker.run_candidate`` — and writes what it returned to OUT.json and
OUT.npz. It computes no reference and gives no verdict: the grader judges the returned
gradients against references it computed itself, so a submission that patches the suite
in its own process changes nothing but its own inputs.
"""

from __future__ import annotations

import json
import os
import resource
import sys

import numpy as np

# limits the grader may ask for, by name: (resource, the spec's key)
LIMITS = {"address_space": resource.RLIMIT_AS, "cpu_seconds": resource.RLIMIT_CPU,
          "open_files": resource.RLIMIT_NOFILE, "file_size": resource.RLIMIT_FSIZE}


def limit(spec: dict) -> None:
    """Soft and hard limits on this process (inherited by anything it starts); no core
    files (a segfaulting submission must not fill the disk)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for name, which in LIMITS.items():
        value = spec.get("limits", {}).get(name)
        if value is not None:
            soft, hard = resource.getrlimit(which)
            value = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
            resource.setrlimit(which, (value, value if name != "cpu_seconds" else value + 5))


def load(spec: dict):
    """(the submission adapted to the contract, what loading its file did not run or
    rewrote); a file that cannot be loaded is an ImportFailure with the one-line reason."""
    from comparisons.cli import UsageError, _function, convention_check, load_file

    options = {"paths": tuple(spec.get("paths") or ()), "stubs": tuple(spec.get("stubs") or ())}
    try:
        loaded = load_file(spec["file"], **options)
        if spec["convention"] == "contract":
            fn = _function(loaded, spec["file"], (spec.get("fn") or ["loss_and_grads"])[0])
        else:
            fn = convention_check(loaded, spec["file"], spec["convention"], spec.get("fn"),
                                  strict_clip=bool(spec.get("strict_clip")))
    except UsageError as exc:
        raise ImportFailure(str(exc)) from None
    return fn, loaded.report_lines(limit=3)


class ImportFailure(Exception):
    pass


def main(spec_path: str, out: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    limit(spec)
    from comparisons.check.candidate import Outcome, run_candidate, run_gated_candidate
    from comparisons.check.cases import Case, make_problem

    record = {"import_error": None, "cases": [], "clip": None, "clip_note": None, "loading": []}
    arrays = {}

    def write():
        np.savez(out + ".npz", **arrays)
        with open(out + ".json", "w") as f:
            json.dump(record, f)

    try:
        fn, record["loading"] = load(spec)
    except ImportFailure as exc:
        record["import_error"] = str(exc)
        write()
        return 0
    record["clip"], record["clip_note"] = getattr(fn, "clip", None), getattr(fn, "clip_note", None)
    from comparisons.loading import as_user

    cases = [Case(**c) for c in spec["cases"]]
    with as_user(spec["file"]):
        if getattr(fn, "cell", None) is not None:        # a gated convention: the suite's LSTM/GRU cases
            from comparisons.check.cells import GATED_LAYOUTS, make_cell_problem

            shapes, state = GATED_LAYOUTS[fn.cell]
            outcomes = [run_gated_candidate(fn, case, make_cell_problem(case, shapes), state) for case in cases]
        else:
            outcomes = [run_candidate(fn, case, *make_problem(case), tuple(checked))
                        for case, checked in zip(cases, spec["checked"])]
    for i, result in enumerate(outcomes):
        if isinstance(result, Outcome):
            record["cases"].append({"status": result.status, "reason": result.reason,
                                    "traceback": (result.traceback or "")[-4000:]})
            continue
        record["cases"].append({"status": "returned", "loss": float(result.loss), "grads": sorted(result.grads),
                                "dL_dh": result.dL_dh is not None, "dL_dx": result.dL_dx is not None})
        for name, g in result.grads.items():
            arrays[f"{i}/{name}"] = np.asarray(g)
        for name in ("dL_dh", "dL_dx"):
            if getattr(result, name) is not None:
                arrays[f"{i}/{name}"] = np.asarray(getattr(result, name))
    write()
    # the submission may have left threads or atexit hooks behind: the record is written
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
