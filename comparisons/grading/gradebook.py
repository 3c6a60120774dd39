"""Grading a class: a folder of untrusted submissions in, a gradebook and the class's
common mistakes out.

    bptt-xval grade SUBMISSIONS/ --convention cs231n [--timeout 60] [--memory 2GB]
                    [--workers K | --scheduler ADDRESS] --out gradebook/

Every submission is checked on the same cases (one seed, recorded), in a process of its
own (``comparisons.grading.child``) with resource limits, a fresh working folder and its
output captured; the grader never imports student code. The split is the checker's own:
the child runs the candidate's half (``run_candidate``) and returns the gradients; the
grader computes the references once for the class and judges every submission itself
(``judge``), so what a submission does to the suite inside its own process cannot change
its verdict. Every outcome is a row: agree, disagree, raised, bad_output, timeout,
out_of_memory, exited, crashed, import_error. Dask runs the submissions in parallel
(threads waiting on subprocesses in-process by default, or a scheduler's workers, which
get the submission's source, not its path). The gradebook is rewritten as submissions
finish; a rerun skips those already graded with the same source and settings unless
``force``. What the isolation does not protect against: docs/grading.md.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bptt_xval.model import Gradients
from comparisons.grading import sandbox

VERDICTS = ("agree", "disagree", "raised", "bad_output", "timeout", "out_of_memory", "exited",
            "crashed", "import_error")
COLUMNS = ("file", "verdict", "cases_agreed", "cases_run", "parameter", "step", "diagnosis", "seconds",
           "detail", "smallest_case", "loading", "sandbox")
SOURCE_SUFFIXES = (".py", ".ipynb")
FOLDER_MAX_BYTES = 16 * 2 ** 20     # a student's folder travels to its process whole: bounded
CONVENTION_NAMES = ("contract", "min-char-rnn", "cs231n", "cs231n-step", "deeplearning-ai", "min-char-rnn-lstm",
                    "cs231n-lstm", "cs231n-lstm-step", "deeplearning-ai-lstm", "gru", "d2l-gru")
OUTPUT_KEPT = 64 * 1024          # bytes of a submission's stdout and stderr kept, each
OPEN_FILES = 256
FILE_SIZE = 256 * 2 ** 20        # the largest file a submission may write
SUITE_ROOT = str(Path(__file__).resolve().parents[2])


def parse_size(text) -> int:
    """'2GB', '512MB', '1.5G', '300000000' -> bytes (powers of 1024)."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        if text <= 0:
            raise ValueError(f"memory: expected a positive size; got {text}")
        return int(text)
    if not isinstance(text, str):
        raise TypeError(f"memory: expected a size such as '2GB'; got {type(text).__name__}")
    units = {"": 1, "B": 1, "K": 2 ** 10, "KB": 2 ** 10, "M": 2 ** 20, "MB": 2 ** 20, "G": 2 ** 30, "GB": 2 ** 30,
             "T": 2 ** 40, "TB": 2 ** 40}
    t = text.strip().upper().replace("IB", "B")
    number = t.rstrip("KMGTB")
    try:
        value = float(number) * units[t[len(number):]]
    except (ValueError, KeyError):
        raise ValueError(f"memory: expected a size such as '2GB' or '512MB'; got {text!r}") from None
    if value <= 0:
        raise ValueError(f"memory: expected a positive size; got {text!r}")
    return int(value)


@dataclass
class Plan:
    """What every submission is graded on: the cases, their references, the settings."""

    convention: str
    fn: tuple | None
    seed: int
    cases: list
    checked: list
    prepared: list                       # (references, magnitudes) per case
    inconclusive: dict                   # case index -> reason
    settings: dict = field(default_factory=dict)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:16]


def make_plan(convention: str, fn=None, *, cases: int = 50, seed: int = 0, timeout: float = 60.0,
              memory: int = 2 * 2 ** 30, hidden=None, output=None, loss=None, reduction=None,
              paths=(), stubs=(), strict_clip: bool = False) -> Plan:
    """Draw the class's cases from the convention's case space and compute their references."""
    from comparisons.check import backends
    from comparisons.check.cases import CaseSpace, draw_cases
    from comparisons.check.checker import inconclusive_reason, references_for
    from comparisons.conventions import CONVENTIONS

    if convention not in CONVENTION_NAMES:
        raise ValueError(f"convention: expected one of {CONVENTION_NAMES}; got {convention!r}")
    space_dict, cell = {}, None
    if convention != "contract":
        adapter, names, _ = CONVENTIONS[convention]
        if fn is not None and len(fn) != len(names):
            raise ValueError(f"fn: the {convention} convention takes {len(names)} function name(s) "
                             f"({','.join(names)}); got {','.join(fn)}")
        # the adapter's case space does not depend on the functions it wraps
        probe = adapter(*[lambda *a, **k: None] * len(names))
        space_dict, cell = dict(probe.case_space), getattr(probe, "cell", None)
    elif fn is not None and len(fn) != 1:
        raise ValueError(f"fn: the contract convention takes one function name; got {','.join(fn)}")
    if cell is not None:
        return _gated_plan(convention, fn, cell, space_dict, cases=cases, seed=seed, timeout=timeout, memory=memory,
                           output=output, loss=loss, reduction=reduction, paths=paths, stubs=stubs,
                           strict_clip=strict_clip)
    config = {"hidden": hidden or space_dict.get("hidden", "tanh"), "output": output or space_dict.get("output", "identity"),
              "loss": loss or space_dict.get("loss", "squared_error"),
              "reduction": reduction or space_dict.get("reduction", "mean")}
    space = CaseSpace.make(space_dict.get("sizes"), space_dict.get("h0"), space_dict.get("inputs"),
                           space_dict.get("params"), space_dict.get("tie_D_O", False), loss=config["loss"])
    drawn = draw_cases(cases, seed, space=space, truncate=None, **config)
    refs, skipped = backends.available(backends.REFERENCES)
    if not refs:
        raise backends.BackendUnavailable(f"references: none available ({skipped})")
    prepared = references_for(drawn, refs)
    inconclusive = {i: why for i, (c, (r, m)) in enumerate(zip(drawn, prepared))
                    if (why := inconclusive_reason(c, r, m)) is not None}
    settings = {"convention": convention, "fn": list(fn) if fn else None, "seed": seed, "cases": cases,
                "timeout": timeout, "memory": memory, **config, "references": sorted(refs),
                "paths": [str(Path(p).resolve()) for p in paths], "stubs": list(stubs), "strict_clip": strict_clip}
    return Plan(convention, tuple(fn) if fn else None, seed, drawn, [space.checked(c) for c in drawn],
                prepared, inconclusive, settings)


def _gated_plan(convention, fn, cell, space_dict, *, cases, seed, timeout, memory, output, loss, reduction, paths,
                stubs, strict_clip) -> Plan:
    """make_plan for a gated convention: the cases of its case space and the suite's LSTM or
    GRU cell's references (``comparisons.check.gated``), stacked across the class's cases."""
    from comparisons.check.cases import CaseSpace, draw_cases
    from comparisons.check.gated import plan_references

    config = {"output": output or space_dict.get("output", "identity"),
              "loss": loss or space_dict.get("loss", "squared_error"),
              "reduction": reduction or space_dict.get("reduction", "mean")}
    space = CaseSpace.make(space_dict.get("sizes"), "none", space_dict.get("inputs"), None,
                           space_dict.get("tie_D_O", False), loss=config["loss"])
    drawn = draw_cases(cases, seed, space=space, truncate=None, **config)
    prepared, inconclusive, names = plan_references(cell, drawn)
    settings = {"convention": convention, "fn": list(fn) if fn else None, "seed": seed, "cases": cases,
                "timeout": timeout, "memory": memory, "hidden": "tanh", **config, "references": sorted(names),
                "paths": [str(Path(p).resolve()) for p in paths], "stubs": list(stubs), "strict_clip": strict_clip,
                "cell": cell}
    return Plan(convention, tuple(fn) if fn else None, seed, drawn, [() for _ in drawn], prepared, inconclusive,
                settings)


# --- the submission's process -------------------------------------------------------------

class _Tail:
    """Keeps the first OUTPUT_KEPT bytes of a pipe and drains the rest (megabytes of prints
    must neither fill the grader's memory nor block the child on a full pipe)."""

    def __init__(self, pipe):
        self.kept, self.dropped = bytearray(), 0
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe):
        for chunk in iter(lambda: pipe.read(65536), b""):
            room = OUTPUT_KEPT - len(self.kept)
            self.kept += chunk[:max(room, 0)]
            self.dropped += max(len(chunk) - max(room, 0), 0)
        pipe.close()

    def text(self) -> str:
        self.thread.join(timeout=5)
        out = self.kept.decode("utf-8", "replace")
        return out + (f"\n[... {self.dropped} more bytes not kept]" if self.dropped else "")


class Spawner:
    """Every child of the grader is started by this one thread.

    A fresh-clone CI run hung with two Dask threads inside Popen's fork/exec at once (one in
    _fork_exec, one waiting on its error pipe, every other thread on the GIL); concurrent
    vfork-based spawns from several threads are a known CPython hazard (gh-104372,
    gh-120998). A lock around Popen only made it rarer. Here the grader's threads never
    fork: each hands its request to this thread and waits for the child; the only forks are
    this thread's, one at a time, each straight into exec (subprocess's C code between
    fork and exec touches no lock another thread could hold). Spawning takes milliseconds;
    the children still run in parallel, waited on by the threads that asked for them."""

    def __init__(self):
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self.spawned = 0
        self.thread = threading.Thread(target=self._serve, name="bptt-xval-spawner", daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            args, kwargs, reply = self._requests.get()
            try:
                child = subprocess.Popen(*args, **kwargs)
            except BaseException as exc:             # handed back to the thread that asked
                reply.put((None, exc))
                continue
            self.spawned += 1
            reply.put((child, None))

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        reply: queue.SimpleQueue = queue.SimpleQueue()
        self._requests.put((args, kwargs, reply))
        child, exc = reply.get()
        if exc is not None:
            raise exc
        return child


_SPAWNER: Spawner | None = None
_SPAWNER_LOCK = threading.Lock()


def spawner() -> Spawner:
    """The process's one spawner thread (started on first use)."""
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None or not _SPAWNER.thread.is_alive():
            _SPAWNER = Spawner()
        return _SPAWNER


def run_submission(name: str, files: dict, main: str, spec: dict, timeout: float) -> dict:
    """Run one submission in its own process (a Dask task): its files (relative name ->
    bytes; ``main`` the one graded, the others its own helpers) in a fresh temporary folder,
    its working directory and HOME, limits set by the child before the submission is
    imported, killed with its whole process group at ``timeout`` seconds. Returns what came back."""
    with tempfile.TemporaryDirectory(prefix="bptt-xval-grade-") as folder:
        work = Path(folder) / "work"
        results = Path(folder) / "results"
        work.mkdir()
        results.mkdir()
        for relative, source in files.items():
            (work / relative).parent.mkdir(parents=True, exist_ok=True)
            (work / relative).write_bytes(source)
        spec = {**spec, "file": str(work / main)}
        (results / "spec.json").write_text(json.dumps(spec))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "TMPDIR": str(work),
               "PYTHONPATH": SUITE_ROOT, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
               "MPLBACKEND": "Agg", "BPTT_XVAL_JAX_CACHE": "off", "LANG": "C.UTF-8"}
        argv = [sys.executable, "-m", "comparisons.grading.child", str(results / "spec.json"), str(results / "out")]
        held = sandbox.protections()
        if held.bwrap is not None:        # its own namespaces and mounts (comparisons.grading.sandbox)
            argv, env = sandbox.command(argv, work=str(work), results=str(results), paths=spec.get("paths") or (),
                                        env=env)
        group = sandbox.Cgroup(spec["limits"].get("address_space") or 0) if held.cgroup else None
        if group is not None:
            argv = group.launcher(argv)
        started = time.perf_counter()
        try:
            child = spawner().popen(argv, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
            stdout, stderr = _Tail(child.stdout), _Tail(child.stderr)
            timed_out = False
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            # the whole group: whatever the submission started goes too (and, sandboxed, its
            # PID namespace ends with its first process: nothing it started survives it)
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            child.wait()
            out_of_memory = group is not None and group.out_of_memory()
        finally:
            if group is not None:
                group.close()
        seconds = time.perf_counter() - started
        record, arrays = None, {}
        if not timed_out and (results / "out.json").is_file():
            try:
                record = json.loads((results / "out.json").read_text())
                with np.load(results / "out.npz", allow_pickle=False) as npz:
                    arrays = {k: npz[k] for k in npz.files}
            except (OSError, ValueError):
                record = None
        code = child.returncode
        if held.bwrap is not None and code is not None and code > 128 and code - 128 in signal.valid_signals():
            code = 128 - code          # bwrap exits 128 + n for a child killed by signal n: as Popen says it
        return {"name": name, "path": spec["file"], "returncode": code, "timed_out": timed_out, "seconds": seconds,
                "stdout": stdout.text(), "stderr": stderr.text(), "record": record, "arrays": arrays,
                "sandbox": held.text(), "out_of_memory": out_of_memory}


# --- judging what came back ---------------------------------------------------------------

def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _memory(text: str) -> bool:
    return "MemoryError" in text or "Unable to allocate" in text or "std::bad_alloc" in text


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _case_text(case) -> str:
    return (f"Case(seed={case.seed}, T={case.T}, B={case.B}, D={case.D}, H={case.H}, O={case.O}, "
            f"regime={case.regime!r}, h0={case.h0!r}, dtype={case.dtype!r})")


def judge_submission(raw: dict, plan: Plan) -> dict:
    """The gradebook row of one submission from what its process returned."""
    from comparisons.check.checker import Outcome, failure_from, judge
    from comparisons.check.cases import make_problem

    row = {"file": raw["name"], "verdict": None, "cases_agreed": 0, "cases_run": 0, "parameter": "",
           "step": "", "diagnosis": "", "seconds": round(raw["seconds"], 2), "detail": "", "smallest_case": "",
           "stdout": raw["stdout"], "stderr": raw["stderr"], "loading": "", "sandbox": raw.get("sandbox", "")}
    record, code = raw["record"], raw["returncode"]
    if record is not None:
        row["loading"] = " | ".join(record.get("loading") or [])
        if record.get("clip") is not None and record.get("clip_note"):
            row["loading"] = " | ".join(filter(None, [row["loading"], record["clip_note"]]))
    if raw["timed_out"]:
        return {**row, "verdict": "timeout", "detail": f"still running after {plan.settings['timeout']:g} s: killed"}
    if record is None:
        if raw.get("out_of_memory"):
            return {**row, "verdict": "out_of_memory",
                    "detail": "the whole submission reached its memory limit (its cgroup's): killed"}
        if code is not None and code < 0:
            if -code == signal.SIGXCPU:
                return {**row, "verdict": "timeout", "detail": "used up its CPU-time limit (SIGXCPU)"}
            why = {signal.SIGSEGV: "a segmentation fault", signal.SIGXFSZ: f"wrote a file over {FILE_SIZE // 2**20} MB",
                   signal.SIGABRT: "aborted"}.get(-code, "killed")
            if _memory(raw["stderr"]):
                return {**row, "verdict": "out_of_memory", "detail": _last_line(raw["stderr"])}
            return {**row, "verdict": "crashed", "detail": f"{_signal_name(-code)}: {why}"}
        if _memory(raw["stderr"]):
            return {**row, "verdict": "out_of_memory", "detail": _last_line(raw["stderr"])}
        return {**row, "verdict": "exited", "detail": f"the process exited with code {code} before its results "
                                                        f"were written (os._exit or a crash in an extension)"}
    if record["import_error"]:
        message = record["import_error"]
        verdict = ("out_of_memory" if _memory(message) else "exited" if "SystemExit" in message else "import_error")
        # the submission's temporary path means nothing to a teacher: its file name does
        path = str(raw.get("path", ""))
        if path:
            message = message.replace(repr(path), raw["name"]).replace(path, raw["name"])
        return {**row, "verdict": verdict, "detail": message.splitlines()[0][:300]}
    cell = None
    if plan.settings.get("cell"):
        from comparisons.check import gated
        from comparisons.check.cells import _gates, builtin_cells, make_cell_problem
        cell = builtin_cells()[plan.settings["cell"]]
        gates = _gates(cell.param_shapes)
    outcomes = []
    for i, (case, entry) in enumerate(zip(plan.cases, record["cases"])):
        if i in plan.inconclusive:
            continue
        if entry["status"] != "returned":
            outcomes.append(Outcome(case, entry["status"], reason=entry["reason"], traceback=entry["traceback"]))
            continue
        grads = {k: raw["arrays"][f"{i}/{k}"] for k in entry["grads"]}
        result = Gradients(entry["loss"], grads,
                           raw["arrays"].get(f"{i}/dL_dh") if entry["dL_dh"] else None,
                           raw["arrays"].get(f"{i}/dL_dx") if entry["dL_dx"] else None)
        references, magnitude = plan.prepared[i]
        if cell is not None:
            if record.get("clip") is not None:
                references = {k: gated._clipped(r, record["clip"]) for k, r in references.items()}
            outcomes.append(gated.judge(case, result, references, magnitude,
                                        make_cell_problem(case, cell.param_shapes), gates))
            continue
        outcomes.append(judge(case, result, references, magnitude, make_problem(case), clip=record.get("clip")))
    agreed = sum(o.status == "agree" for o in outcomes)
    row.update(cases_agreed=agreed, cases_run=len(outcomes))
    failed = [o for o in outcomes if o.failed]
    if not failed:
        return {**row, "verdict": "agree" if outcomes else "import_error",
                "detail": "" if outcomes else "no case was run"}
    size = lambda o: (o.case.T * o.case.B * o.case.H * o.case.D * o.case.O, o.case.T)
    disagreeing = sorted((o for o in failed if o.status in ("disagree", "non_finite")), key=size)
    if disagreeing:
        smallest = disagreeing[0]
        if smallest.status == "disagree":
            f = failure_from(smallest) if cell is None else gated.failure(smallest, plan.settings["cell"], gates)
            return {**row, "verdict": "disagree", "parameter": f.parameter or "",
                    "step": "" if f.step is None else f.step, "diagnosis": ";".join(f.diagnosis),
                    "detail": f"{f.parameter} off by {f.rel:.3g} relative (tolerance {f.tol:.3g} absolute) "
                              f"against {f.reference}", "smallest_case": _case_text(smallest.case)}
        return {**row, "verdict": "disagree", "detail": smallest.reason, "smallest_case": _case_text(smallest.case)}
    first = sorted(failed, key=size)[0]
    if first.status == "raised":
        if _memory(first.reason):
            return {**row, "verdict": "out_of_memory", "detail": first.reason[:300]}
        if first.reason.startswith("SystemExit"):
            return {**row, "verdict": "exited", "detail": first.reason[:300]}
    return {**row, "verdict": first.status, "detail": first.reason[:300], "smallest_case": _case_text(first.case)}


# --- the class ----------------------------------------------------------------------------

@dataclass
class Submission:
    """One student: ``name`` (a file, or the student's folder), ``files`` (relative name ->
    bytes, all of a folder's sources travel), ``main`` (the file graded)."""

    name: str
    files: dict
    main: str | None
    why_not: str = ""            # a folder with no file that defines the convention's functions

    def digest(self) -> str:
        h = hashlib.sha256()
        for relative in sorted(self.files):
            h.update(relative.encode() + b"\0" + self.files[relative] + b"\0")
        return h.hexdigest()


def _helper_names(paths) -> set:
    """The module names of the course's helpers (``rnn_utils`` for rnn_utils.py)."""
    return {f.stem for p in paths for f in Path(p).glob("*.py")}


def submissions(folder, convention: str | None = None, fn=None, paths=()) -> tuple[list, list]:
    """(the submissions in ``folder``, [(name, why skipped)]): every ``.py`` and ``.ipynb``
    and every sub-folder (one per student: the file of it that defines the convention's
    functions is graded, its other files go with it as the student's helpers). A course
    helper named in ``paths`` is never graded; whatever else is not a submission is said."""
    from comparisons.conventions import CONVENTIONS
    from comparisons.loading import defined_functions

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"DIR: no such folder {str(folder)!r}")
    helpers = _helper_names(paths)
    wanted = tuple(fn or (CONVENTIONS[convention][1] if convention in CONVENTIONS else ("loss_and_grads",)))
    found, skipped = [], []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "__")):
            continue
        if entry.is_file():
            if entry.suffix not in SOURCE_SUFFIXES:
                skipped.append((entry.name, "not a .py or .ipynb file"))
            elif entry.stem in helpers:
                skipped.append((entry.name, "a course helper (in --path): never graded"))
            else:
                found.append(Submission(entry.name, {entry.name: entry.read_bytes()}, entry.name))
        elif entry.is_dir():
            sources = sorted(p for p in entry.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES
                             and not any(part.startswith((".", "__")) for part in p.relative_to(entry).parts))
            if not sources:
                skipped.append((entry.name + "/", "a folder without .py or .ipynb files"))
                continue
            size = sum(p.stat().st_size for p in sources)
            if size > FOLDER_MAX_BYTES:
                skipped.append((entry.name + "/", f"{size // 2**20} MB of sources: over {FOLDER_MAX_BYTES // 2**20} MB"))
                continue
            files = {str(p.relative_to(entry)): p.read_bytes() for p in sources}
            own = [p for p in sources if p.stem not in helpers]
            mains = [p for p in own if set(wanted) <= defined_functions(p)]
            # a .py beside the notebook it was exported from: the .py is what was meant to run
            mains.sort(key=lambda p: (p.suffix != ".py", len(p.relative_to(entry).parts), p.name))
            if mains:
                found.append(Submission(entry.name + "/", files, str(mains[0].relative_to(entry))))
            else:
                found.append(Submission(entry.name + "/", files, None,
                                        f"no file of the folder defines {', '.join(wanted)} "
                                        f"(its files: {', '.join(sorted(files))})"))
    if not found:
        raise ValueError(f"DIR: no submission (*.py, *.ipynb or a student's folder) in {str(folder)!r}")
    return found, skipped


def grade(folder, out, plan: Plan, *, workers: int | None = None, scheduler: str | None = None,
          force: bool = False, progress=print) -> dict:
    """Grade every ``*.py`` in ``folder`` on ``plan``; write OUT/gradebook.{json,csv,html}.
    Returns the gradebook."""
    from dask.distributed import Client, LocalCluster, as_completed

    from comparisons import atomic

    files, skipped = submissions(folder, plan.convention, plan.fn, plan.settings.get("paths", ()))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    book_path = out / "gradebook.json"
    book = {"settings": plan.settings, "fingerprint": plan.fingerprint(),
            "cases": [c.to_dict() for c in plan.cases],
            "inconclusive": {str(i): why for i, why in plan.inconclusive.items()}, "rows": {},
            "skipped": {name: why for name, why in skipped}, "sandbox": sandbox.protections().text()}
    for name, why in skipped:
        progress(f"skipped {name}: {why}")
    if book_path.is_file() and not force:
        try:
            saved = json.loads(book_path.read_text())
        except ValueError:
            saved = {}
        if saved.get("fingerprint") == book["fingerprint"]:
            book["rows"] = saved.get("rows", {})
    digests = {p.name: p.digest() for p in files}
    todo = [p for p in files if book["rows"].get(p.name, {}).get("sha256") != digests[p.name]]
    for name in set(book["rows"]) - set(digests):        # a submission removed from the folder
        del book["rows"][name]
    if len(todo) < len(files):
        progress(f"resuming: {len(files) - len(todo)} of {len(files)} submissions already graded (--force regrades)")
    spec = {"convention": plan.convention, "fn": list(plan.fn) if plan.fn else None,
            "paths": plan.settings.get("paths", []), "stubs": plan.settings.get("stubs", []),
            "strict_clip": plan.settings.get("strict_clip", False),
            "cases": [c.to_dict() for i, c in enumerate(plan.cases)], "checked": [list(c) for c in plan.checked],
            "limits": {"address_space": plan.settings["memory"], "cpu_seconds": int(plan.settings["timeout"]) + 1,
                       "open_files": OPEN_FILES, "file_size": FILE_SIZE}}
    workers = workers or os.cpu_count() or 1
    cluster = None if scheduler else LocalCluster(n_workers=1, threads_per_worker=workers, processes=False,
                                                  dashboard_address=":0")
    try:
        with Client(scheduler or cluster) as client:
            futures = [client.submit(run_submission, p.name, p.files, p.main, spec, plan.settings["timeout"],
                                     pure=False) for p in todo if p.main is not None]
            for p in todo:
                if p.main is None:          # a folder with nothing to grade: its row says why
                    book["rows"][p.name] = {**judge_submission(_nothing(p), plan), "sha256": digests[p.name]}
                    progress(f"{p.name}: import_error ({p.why_not})")
            for done, future in enumerate(as_completed(futures), 1):
                raw = future.result()
                row = judge_submission(raw, plan)
                row["sha256"] = digests[raw["name"]]
                book["rows"][raw["name"]] = row
                atomic.write_text(book_path, json.dumps(book, indent=1, sort_keys=True) + "\n")
                progress(f"[{done}/{len(todo)}] {raw['name']}: {row['verdict']}"
                         + (f" ({row['diagnosis']})" if row["diagnosis"] else ""))
    finally:
        if cluster is not None:
            cluster.close()
    atomic.write_text(book_path, json.dumps(book, indent=1, sort_keys=True) + "\n")
    write_csv(book, out / "gradebook.csv")
    atomic.write_text(out / "gradebook.html", render_html(book))
    return book


def _nothing(submission: Submission) -> dict:
    """What a folder with no gradable file "returned": an import error saying why."""
    return {"name": submission.name, "path": "", "returncode": 0, "timed_out": False, "seconds": 0.0,
            "stdout": "", "stderr": "", "arrays": {},
            "record": {"import_error": submission.why_not, "cases": [], "loading": []}}


def write_csv(book: dict, path) -> None:
    from comparisons import atomic

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for name in sorted(book["rows"]):
        writer.writerow(book["rows"][name])
    atomic.write_text(path, buffer.getvalue())


def class_summary(book: dict) -> dict:
    """{"verdicts": {verdict: count}, "mistakes": [(name, count, description)], "students": n}."""
    from comparisons.check.diagnosis import MISTAKES

    rows = list(book["rows"].values())
    verdicts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    mistakes = {}
    for r in rows:
        for m in filter(None, r["diagnosis"].split(";")):
            mistakes[m] = mistakes.get(m, 0) + 1
    ranked = sorted(mistakes.items(), key=lambda kv: (-kv[1], kv[0]))
    return {"students": len(rows), "verdicts": verdicts,
            "mistakes": [(m, n, MISTAKES.get(m, "")) for m, n in ranked]}


def render_html(book: dict) -> str:
    """A self-contained page (inline CSS, no script, no external file)."""
    e = html.escape
    s = class_summary(book)
    settings = book["settings"]
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Gradebook</title><style>",
             "body{font-family:system-ui,sans-serif;max-width:72em;margin:2em auto;padding:0 1em;color:#222}",
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;"
             "text-align:left;vertical-align:top}th{background:#f3f3f3}.agree{color:#176b2c}"
             ".bar{background:#c0392b;height:.9em;display:inline-block}pre{white-space:pre-wrap;max-height:12em;"
             "overflow:auto;background:#f7f7f7;padding:.4em;font-size:85%}</style></head><body>",
             f"<h1>Gradebook: {s['students']} submissions</h1>",
             f"<p>{s['verdicts']['agree']} of {s['students']} agree with the references. Every submission was "
             f"graded on the same {settings['cases']} cases (seed {settings['seed']}, convention "
             f"<code>{e(settings['convention'])}</code>, {e(settings['hidden'])} units, {e(settings['loss'])}, "
             f"timeout {settings['timeout']:g} s, memory {settings['memory'] // 2**20} MB).</p>",
             f"<p>Sandbox: {e(book.get('sandbox') or 'not recorded')}.</p>",
             "<h2>Verdicts</h2><table><tr><th>verdict</th><th>submissions</th></tr>"]
    parts += [f"<tr><td>{v}</td><td>{n}</td></tr>" for v, n in s["verdicts"].items() if n]
    parts.append("</table><h2>The class's mistakes</h2>")
    if s["mistakes"]:
        top = max(n for _, n, _ in s["mistakes"])
        parts.append("<table><tr><th>students</th><th>mistake</th><th></th></tr>")
        for m, n, text in s["mistakes"]:
            parts.append(f"<tr><td>{n}</td><td><b>{e(m)}</b>: {n} student{'s' if n != 1 else ''} "
                         f"{e(text)}</td><td><span class='bar' style='width:{8 * n / top:.2f}em'></span></td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>No catalogued mistake was diagnosed.</p>")
    if book.get("skipped"):
        parts.append("<h2>Not graded</h2><table><tr><th>entry</th><th>why</th></tr>")
        parts += [f"<tr><td>{e(n)}</td><td>{e(w)}</td></tr>" for n, w in sorted(book["skipped"].items())]
        parts.append("</table>")
    parts.append("<h2>Per student</h2><table><tr><th>file</th><th>verdict</th><th>cases agreed</th>"
                 "<th>first failing</th><th>diagnosis</th><th>detail and smallest failing case</th><th>s</th></tr>")
    for name in sorted(book["rows"]):
        r = book["rows"][name]
        where = e(str(r["parameter"])) + (f", t = {r['step']}" if r["step"] != "" else "")
        output = "".join(f"<details><summary>{k}</summary><pre>{e(r[k])}</pre></details>"
                         for k in ("stdout", "stderr") if r.get(k))
        parts.append(f"<tr><td>{e(name)}</td><td class='{r['verdict']}'>{r['verdict']}</td>"
                     f"<td>{r['cases_agreed']} / {r['cases_run']}</td><td>{where}</td>"
                     f"<td>{e(r['diagnosis'].replace(';', ', '))}</td><td>{e(r['detail'])}"
                     f"{'<br><code>' + e(r['smallest_case']) + '</code>' if r['smallest_case'] else ''}"
                     f"{'<br><small>' + e(r['loading']) + '</small>' if r.get('loading') else ''}{output}</td>"
                     f"<td>{r['seconds']}</td></tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(parts)
