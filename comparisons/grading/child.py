"""The process one submission runs in:
``python -I .../comparisons/grading/child.py`` with the spec on stdin.

Started by ``comparisons.grading.gradebook`` (never imported by the grader itself), under
limits the sandbox set before this interpreter started (``prlimit`` for the process, the
submission's cgroup for all of it; ``-I``: no environment variables, no user site, neither
the working folder nor the student's on ``sys.path``). Its trusted prologue imports every
module running a candidate needs, makes the course's forbidden modules unimportable, and only
then puts the student's folder on the path and loads the submission. It runs the
candidate's half of a check (``comparisons.check.candidate``) on the cases of the spec and
writes what came back to the answer pipe (``comparisons.grading.answers``): the arrays and,
in words, what went wrong. It computes no reference, names no status but the candidate's
own failure, reads no clip bound: the grader decides all of that, so whatever a submission
does in this process changes nothing but its own answer.
"""

from __future__ import annotations

import io
import json
import os
import resource
import sys
import zipfile

# the harness's own root (this file is comparisons/grading/child.py under it): -I left the
# script's folder off sys.path, and nothing else of ours is importable in the sandbox
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402  (after the path is set)

# limits the grader may ask for, by name: (resource, the spec's key)
LIMITS = {"address_space": resource.RLIMIT_AS, "cpu_seconds": resource.RLIMIT_CPU,
          "open_files": resource.RLIMIT_NOFILE, "file_size": resource.RLIMIT_FSIZE}


def limit(spec: dict) -> None:
    """Soft and hard limits on this process, where the sandbox could not set them before it
    started (no ``prlimit`` on the machine: the spec says ``"limits_by": "python"``); no
    core files either way."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if spec.get("limits_by") != "python":
        return
    for name, which in LIMITS.items():
        value = spec.get("limits", {}).get(name)
        if value is not None:
            soft, hard = resource.getrlimit(which)
            value = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
            resource.setrlimit(which, (value, value if name != "cpu_seconds" else value + 5))


class Forbidden:
    """A meta path finder refusing the course's forbidden modules (``--forbid-import``) with
    a message naming the rule. Under the sandbox their files are not mounted either, so a
    submission that removes this finder still finds nothing to import."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.split(".")[0]
        if top in self.names:
            raise ModuleNotFoundError(f"No module named {top!r}: the course forbids it "
                                      f"(--forbid-import {','.join(sorted(self.names))})", name=top)
        return None


def load(spec: dict):
    """(the submission adapted to the contract, what loading its file did not run or
    rewrote); a file that cannot be loaded is an ImportFailure with the one-line reason."""
    from comparisons.files import UsageError, convention_check, function_named, load_file

    options = {"paths": tuple(spec.get("paths") or ()), "stubs": tuple(spec.get("stubs") or ())}
    try:
        loaded = load_file(spec["file"], **options)
        if spec["convention"] == "contract":
            fn = function_named(loaded, spec["file"], (spec.get("fn") or ["loss_and_grads"])[0])
        else:
            fn = convention_check(loaded, spec["file"], spec["convention"], spec.get("fn"),
                                  strict_clip=bool(spec.get("strict_clip")),
                                  strict_inputs=bool(spec.get("strict_inputs")))
    except UsageError as exc:
        raise ImportFailure(str(exc)) from None
    return fn, loaded.report_lines(limit=3)


class ImportFailure(Exception):
    pass


def answer(record: dict, arrays: dict) -> bytes:
    """The answer archive (``comparisons.grading.answers``): the record, then each array."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr("record.json", json.dumps(record))
        for name, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
            z.writestr(f"{name}.npy", member.getvalue())
    return buffer.getvalue()


def main() -> int:
    spec = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    fd = int(spec["answer_fd"])
    limit(spec)
    if spec.get("forbid"):
        sys.meta_path.insert(0, Forbidden(spec["forbid"]))
    # everything running a candidate needs, imported before one line of the student's
    from comparisons.check.candidate import Outcome, run_candidate, run_gated_candidate
    from comparisons.check.cases import Case, make_problem
    from comparisons.check.cell_model import GATED_LAYOUTS, make_cell_problem
    from comparisons.loading import as_user
    import comparisons.files  # noqa: F401
    import comparisons.conventions  # noqa: F401
    import comparisons.course_helpers  # noqa: F401  (deeplearning.ai's rnn_utils, where it is missing)

    record = {"import_error": None, "cases": [], "loading": []}
    arrays = {}

    def send():
        data = answer(record, arrays)
        while data:
            data = data[os.write(fd, data):]
        os.close(fd)

    try:
        fn, record["loading"] = load(spec)
    except ImportFailure as exc:
        record["import_error"] = str(exc)
        send()
        return 0
    cases = [Case(**c) for c in spec["cases"]]
    with as_user(spec["file"]):
        if getattr(fn, "cell", None) is not None:        # a gated convention: the suite's LSTM/GRU cases
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
        record["cases"].append({"status": "returned"})
        arrays[f"{i}/loss"] = np.float64(result.loss)
        for name, g in result.grads.items():
            arrays[f"{i}/{name}"] = np.asarray(g)
        for name in ("dL_dh", "dL_dx"):
            if getattr(result, name) is not None:
                arrays[f"{i}/{name}"] = np.asarray(getattr(result, name))
    writes = getattr(fn, "writes", None)
    record["writes"] = writes.notes() if writes is not None else []
    send()
    # the submission may have left threads or atexit hooks behind: the answer is written
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
