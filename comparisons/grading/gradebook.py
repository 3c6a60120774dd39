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
import functools
import hashlib
import html
import io
import json
import os
import queue
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bptt_xval.model import Gradients
from comparisons.grading import answers, collect, sandbox, text
from comparisons.grading.store import Store

VERDICTS = ("agree", "disagree", "raised", "bad_output", "timeout", "out_of_memory", "exited",
            "crashed", "import_error", "inconclusive")
COLUMNS = ("file", "verdict", "cases_agreed", "cases_run", "parameter", "step", "diagnosis", "seconds",
           "detail", "smallest_case", "loading", "sandbox", "engines", "notes", "writes")
SOURCE_SUFFIXES = (".py", ".ipynb")
CONVENTION_NAMES = ("contract", "min-char-rnn", "cs231n", "cs231n-step", "deeplearning-ai", "min-char-rnn-lstm",
                    "cs231n-lstm", "cs231n-lstm-step", "deeplearning-ai-lstm", "gru", "d2l-gru",
                    "deeplearning-ai-step", "deeplearning-ai-lstm-step", "class-gru", "class-gru-2019", "class-lstm",
                    "karpathy-lstm")
OUTPUT_KEPT = 16 * 1024          # bytes of a submission's stdout and stderr kept, each
OPEN_FILES = 256
FILE_SIZE = 256 * 2 ** 20        # the largest file a submission may write


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

    @functools.cached_property
    def expected(self) -> list:
        """What each case must return (``answers.expected``), by the grader's own reading of
        the convention and the cases, never the child's."""
        from comparisons.check.cases import make_problem

        if self.settings.get("cell"):
            from comparisons.check.cells import builtin_cells, make_cell_problem
            shapes = builtin_cells()[self.settings["cell"]].param_shapes
            params = [make_cell_problem(case, shapes)[0] for case in self.cases]
            return [answers.expected(self.convention, case, p, tuple(p)) for case, p in zip(self.cases, params)]
        return [answers.expected(self.convention, case, make_problem(case)[0], checked)
                for case, checked in zip(self.cases, self.checked)]

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:16]


def make_plan(convention: str, fn=None, *, cases: int = 50, seed: int = 0, timeout: float = 60.0,
              memory: int = 2 * 2 ** 30, hidden=None, output=None, loss=None, reduction=None,
              paths=(), stubs=(), strict_clip: bool = False, forbid=(), strict_inputs: bool = False) -> Plan:
    """Draw the class's cases from the convention's case space and compute their references.
    ``forbid``: modules the submissions may not import (``--forbid-import torch,jax``)."""
    from comparisons.check import backends
    from comparisons.check.cases import CaseSpace, draw_cases
    from comparisons.check.checker import inconclusive_reason, references_for
    from comparisons.conventions import CONVENTIONS, space_of

    if convention not in CONVENTION_NAMES:
        raise ValueError(f"convention: expected one of {CONVENTION_NAMES}; got {convention!r}")
    forbid = sorted(set(forbid or ()))
    for name in forbid:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"forbid: expected module names such as torch,jax; got {name!r}")
    space_dict, cell = {}, None
    if convention != "contract":
        adapter, names, _ = CONVENTIONS[convention]
        if fn is not None and len(fn) != len(names):
            raise ValueError(f"fn: the {convention} convention takes {len(names)} function name(s) "
                             f"({','.join(names)}); got {','.join(fn)}")
        space_dict, cell = space_of(convention)
    elif fn is not None and len(fn) != 1:
        raise ValueError(f"fn: the contract convention takes one function name; got {','.join(fn)}")
    if cell is not None:
        return _gated_plan(convention, fn, cell, space_dict, cases=cases, seed=seed, timeout=timeout, memory=memory,
                           output=output, loss=loss, reduction=reduction, paths=paths, stubs=stubs,
                           strict_clip=strict_clip, forbid=forbid, strict_inputs=strict_inputs)
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
                "paths": [str(Path(p).resolve()) for p in paths], "stubs": list(stubs), "strict_clip": strict_clip,
                "forbid": forbid, "strict_inputs": strict_inputs}
    return Plan(convention, tuple(fn) if fn else None, seed, drawn, [space.checked(c) for c in drawn],
                prepared, inconclusive, settings)


def _gated_plan(convention, fn, cell, space_dict, *, cases, seed, timeout, memory, output, loss, reduction, paths,
                stubs, strict_clip, forbid, strict_inputs=False) -> Plan:
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
                "forbid": forbid, "strict_inputs": strict_inputs, "cell": cell}
    return Plan(convention, tuple(fn) if fn else None, seed, drawn, [() for _ in drawn], prepared, inconclusive,
                settings)


# --- the submission's process -------------------------------------------------------------

class _Tail:
    """Keeps the first ``limit`` bytes of a pipe and drains the rest (megabytes of prints
    must neither fill the grader's memory nor block the child on a full pipe); ``dropped``
    counts what was not kept."""

    def __init__(self, pipe, limit: int = OUTPUT_KEPT):
        self.limit, self.kept, self.dropped = limit, bytearray(), 0
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe):
        for chunk in iter(lambda: pipe.read(65536), b""):
            room = self.limit - len(self.kept)
            self.kept += chunk[:max(room, 0)]
            self.dropped += max(len(chunk) - max(room, 0), 0)
        pipe.close()

    def text(self) -> str:
        self.thread.join(timeout=5)
        out = self.kept.decode("utf-8", "replace")
        return out + (f"\n[... {self.dropped} more bytes not kept]" if self.dropped else "")

    def whole(self) -> bytes | None:
        """Every byte the pipe carried, or None when there were more than ``limit``."""
        self.thread.join(timeout=5)
        return None if self.dropped else bytes(self.kept)


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


def _safe_relative(name: str) -> str:
    """A submission's file name as a path under its folder (no absolute path, no ``..``):
    a worker of a real cluster writes what the grader sent it, and nothing else."""
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or any(p in ("..", "") for p in parts):
        raise ValueError(f"a submission's file name {name!r} is not a path inside its folder")
    return str(Path(*parts))


def run_submission(name: str, files: dict, main: str, spec: dict, timeout: float) -> dict:
    """Run one submission in its own process (a Dask task): its files (relative name ->
    bytes; ``main`` the one graded, the others its own helpers) in a folder of its own (under
    the sandbox a tmpfs with a quota, gone when it ends), under the limits of the spec set
    before its interpreter starts, killed with its whole process group at ``timeout``
    seconds. Returns what came back: its printed output, and its answer's bytes
    (``comparisons.grading.answers``), read from a pipe and bounded by the spec's budget."""
    with tempfile.TemporaryDirectory(prefix="bptt-xval-grade-") as folder:
        work = Path(folder) / "work"
        work.mkdir()
        held = sandbox.protections()
        quota = held.bwrap is not None and "disk quota" in held.held
        staged = Path(folder) / "stage" if quota else work     # copied into its tmpfs as it starts
        staged.mkdir(exist_ok=True)
        for relative, source in files.items():
            target = staged / _safe_relative(relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source)
        read_end, write_end = os.pipe()
        spec = {**spec, "file": str(work / main), "answer_fd": write_end}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "TMPDIR": str(work),
               "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
               "MPLBACKEND": "Agg", "BPTT_XVAL_JAX_CACHE": "off", "LANG": "C.UTF-8"}
        argv = sandbox.child_argv(spec, sandboxed=held.bwrap is not None)
        if held.bwrap is None:
            # no sandbox: as an unprivileged user where one is named (Gradescope's fallback, gradescope.py)
            argv = sandbox.as_user(argv, folder)
        if held.bwrap is not None:        # its own namespaces and mounts (comparisons.grading.sandbox)
            argv, env = sandbox.command(argv, work=str(work), paths=spec.get("paths") or (), env=env,
                                        forbid=spec.get("forbid") or ())
        if quota:
            argv = sandbox.workspace(argv, work=str(work), staged=str(staged))
        group = sandbox.Cgroup(spec["limits"].get("address_space") or 0) if held.cgroup else None
        if group is not None:
            argv = group.launcher(argv)
        started = time.perf_counter()
        try:
            try:
                child = spawner().popen(argv, cwd=work, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True, pass_fds=(write_end,))
            finally:
                os.close(write_end)
            # the child's answer: bounded by what the cases can need (answers.answer_budget)
            answer = _Tail(os.fdopen(read_end, "rb", buffering=0), int(spec["answer_budget"]))
            stdout, stderr = _Tail(child.stdout), _Tail(child.stderr)
            try:                    # the spec on stdin: the child reads it whole before anything else
                child.stdin.write(json.dumps(spec).encode())
                child.stdin.close()
            except (BrokenPipeError, OSError):
                pass
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
        data = answer.whole()
        code = child.returncode
        if held.bwrap is not None and code is not None and code > 128 and code - 128 in signal.valid_signals():
            code = 128 - code          # bwrap exits 128 + n for a child killed by signal n: as Popen says it
        return {"name": name, "path": spec["file"], "returncode": code, "timed_out": timed_out, "seconds": seconds,
                "stdout": stdout.text(), "stderr": stderr.text(), "answer": None if timed_out else data,
                "answer_over": answer.dropped > 0, "answer_budget": int(spec["answer_budget"]), "sandbox": held.text(),
                "out_of_memory": out_of_memory}


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


def judge_submission(raw: dict, plan: Plan, clip: float | None = None) -> dict:
    """The gradebook row of one submission from what its process returned: its answer read
    against the grader's own expectations (``comparisons.grading.answers``), judged against
    the plan's references; ``clip``: the min-char-rnn bound the grader read off the source
    itself (``conventions.min_char.clip_from_source``), None where it clips nothing."""
    from comparisons.check.checker import Outcome, failure_from, judge
    from comparisons.check.cases import make_problem

    row = {"file": raw["name"], "verdict": None, "cases_agreed": 0, "cases_run": 0, "parameter": "",
           "step": "", "diagnosis": "", "seconds": round(raw["seconds"], 2), "detail": "", "smallest_case": "",
           "stdout": raw["stdout"], "stderr": raw["stderr"], "loading": "", "sandbox": raw.get("sandbox", ""),
           "notes": "", "writes": ""}
    code = raw["returncode"]
    if raw["timed_out"]:
        return {**row, "verdict": "timeout", "detail": f"still running after {plan.settings['timeout']:g} s: killed"}
    answer, malformed = None, None
    if raw.get("record") is not None:          # a row made by the grader itself (_nothing)
        answer = answers.Answer(raw["record"], [], [])
    elif raw.get("answer_over"):
        malformed = (f"its answer was over {raw.get('answer_budget', 0)} bytes, more than the cases can need "
                     f"(not read)")
    elif raw.get("answer"):
        try:
            answer = answers.read(raw["answer"], plan.expected)
        except answers.Malformed as exc:
            malformed = f"its answer could not be read: {exc}"
    if answer is None and malformed is None:
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
        return {**row, "verdict": "exited", "detail": f"the process exited with code {code} before its answer "
                                                        f"was written (os._exit or a crash in an extension)"}
    if malformed is not None:
        return {**row, "verdict": "bad_output", "detail": malformed}
    record = answer.record
    row["loading"] = " | ".join(record.get("loading") or [])
    # the child's word on writes into upstream gradients its course's loop never reads again: a
    # note only (a submission hiding it changes nothing); under --strict-inputs the write is the
    # child's own failure of the case instead
    row["writes"] = " | ".join(record.get("writes") or [])
    if record["import_error"]:
        message = record["import_error"]
        verdict = ("out_of_memory" if _memory(message) else "exited" if "SystemExit" in message else "import_error")
        # the submission's temporary path means nothing to a teacher: its file name does
        path = str(raw.get("path", ""))
        if path:
            message = message.replace(repr(path), raw["name"]).replace(path, raw["name"])
        return {**row, "verdict": verdict, "detail": message.splitlines()[0][:300] if message else ""}
    if clip is not None:
        row["loading"] = " | ".join(filter(None, [row["loading"], (
            f"clipped at ±{clip:g}, as min-char-rnn does (read by the grader from the code of its loss function "
            f"that can run): compared with the true gradients clipped at ±{clip:g}; --strict-clip compares them "
            f"unclipped")]))
    cell = None
    if plan.settings.get("cell"):
        from comparisons.check import gated
        from comparisons.check.cells import _gates, builtin_cells, make_cell_problem
        cell = builtin_cells()[plan.settings["cell"]]
        gates = _gates(cell.param_shapes)
    outcomes, inconclusive = [], []
    for i, case in enumerate(plan.cases):
        if i in plan.inconclusive:
            continue
        entry = record["cases"][i] if i < len(record["cases"]) else {"status": None, "reason": "", "traceback": ""}
        status = entry["status"]
        if status not in answers.CHILD_STATUSES:
            outcomes.append(Outcome(case, "bad_output", reason="no answer for this case" if status is None else
                                    f"the answer's case status {text.cap(status, 40)!r} is not one the harness gives"))
            continue
        if status != "returned":
            outcomes.append(Outcome(case, status, reason=entry["reason"], traceback=entry["traceback"]))
            continue
        problem = answer.problems[i]
        if problem is not None:
            kind = "non_finite" if problem.startswith("non_finite: ") else "bad_output"
            outcomes.append(Outcome(case, kind, reason=problem.removeprefix("non_finite: ")))
            continue
        arrays = answer.cases[i]
        grads = {k: v for k, v in arrays.items() if k not in ("loss", "dL_dh", "dL_dx")}
        result = Gradients(float(arrays["loss"]), grads, arrays.get("dL_dh"), arrays.get("dL_dx"))
        references, magnitude = plan.prepared[i]
        if cell is not None:
            outcome = gated.judge(case, result, references, magnitude, make_cell_problem(case, cell.param_shapes),
                                  gates, clip=clip)
        else:
            outcome = judge(case, result, references, magnitude, make_problem(case), clip=clip)
        if outcome.status == "inconclusive":
            inconclusive.append(outcome.reason)
            continue
        outcomes.append(outcome)
    agreed = sum(o.status == "agree" for o in outcomes)
    row.update(cases_agreed=agreed, cases_run=len(outcomes))
    if inconclusive:
        row["notes"] = f"{len(inconclusive)} case(s) inconclusive for this submission: {inconclusive[0]}"
    failed = [o for o in outcomes if o.failed]
    if not failed:
        if outcomes:
            return {**row, "verdict": "agree"}
        if inconclusive:
            return {**row, "verdict": "inconclusive", "detail": f"no case could be judged: {inconclusive[0]}"}
        return {**row, "verdict": "import_error", "detail": "no case was run"}
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
    refused: list = field(default_factory=list)     # (relative path, why) of what was not collected

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
    helper named in ``paths`` is never graded; whatever else is not a submission is said.
    Read as ``comparisons.grading.collect`` reads: no link followed, no device or FIFO read,
    a folder's bytes and files capped."""
    from comparisons.conventions import CONVENTIONS
    from comparisons.loading import defined_functions

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"DIR: no such folder {str(folder)!r}")
    helpers = _helper_names(paths)
    wanted = tuple(fn or (CONVENTIONS[convention][1] if convention in CONVENTIONS else ("loss_and_grads",)))
    found, skipped = [], []
    for name, mode in collect.entries(folder):
        if name.startswith((".", "__")):
            continue
        shown = text.terminal(name)
        if stat.S_ISREG(mode):
            if Path(name).suffix not in SOURCE_SUFFIXES:
                skipped.append((shown, "not a .py or .ipynb file"))
            elif Path(name).stem in helpers:
                skipped.append((shown, "a course helper (in --path): never graded"))
            else:
                try:
                    data = collect.read_regular(folder / name)
                except collect.Refused as exc:
                    skipped.append((shown, str(exc)))
                    continue
                found.append(Submission(name, {name: data}, name))
        elif stat.S_ISDIR(mode):
            try:
                files, refused = collect.read_tree(folder / name, SOURCE_SUFFIXES)
            except collect.Refused as exc:
                skipped.append((shown + "/", str(exc)))
                continue
            if not files:
                skipped.append((shown + "/", "a folder without .py or .ipynb files"
                                + (f" ({len(refused)} entries not read: links or special files)" if refused else "")))
                continue
            own = [r for r in files if Path(r).stem not in helpers]
            mains = [r for r in own if set(wanted) <= defined_functions(folder / name / r, files[r])]
            # a .py beside the notebook it was exported from: the .py is what was meant to run
            mains.sort(key=lambda r: (Path(r).suffix != ".py", len(Path(r).parts), Path(r).name))
            sub = Submission(name + "/", files, mains[0] if mains else None,
                             "" if mains else f"no file of the folder defines {', '.join(wanted)} "
                                              f"(its files: {', '.join(sorted(files))})")
            sub.refused = list(refused)
            found.append(sub)
        else:
            skipped.append((shown, collect.kind(mode) + (": not followed" if stat.S_ISLNK(mode) else ": not read")))
    if not found:
        raise ValueError(f"DIR: no submission (*.py, *.ipynb or a student's folder) in {str(folder)!r}")
    return found, skipped


ENGINES = ("torch", "jax", "tensorflow", "autograd", "mxnet")


def source_facts(p: Submission, plan: Plan) -> dict:
    """What the grader reads off a submission's sources itself, outside any sandbox: the
    autodiff engines it imports by name, the forbidden ones among them, and min-char-rnn's
    clip bound from its loss function's code that can run. Nothing of it is run."""
    from comparisons.conventions.min_char import clip_from_source
    from comparisons.loading import imported_modules, source_trees

    trees = {r: source_trees(r, data) for r, data in p.files.items()}
    imported = set().union(*map(imported_modules, trees.values())) if trees else set()
    engines = sorted(imported & set(ENGINES))
    forbidden = sorted(imported & set(sandbox.forbidden_names(plan.settings.get("forbid") or ())))
    clip = None
    if plan.convention in ("min-char-rnn", "min-char-rnn-lstm") and not plan.settings.get("strict_clip") and p.main:
        try:
            clip = clip_from_source(trees[p.main], (plan.fn or ("lossFun",))[0])
        except (RecursionError, ValueError, TypeError):
            clip = None
    return {"engines": engines, "forbidden": forbidden, "clip": clip}


def _shown(row: dict) -> dict:
    """The row as the gradebook keeps it: every field a submission could write capped and its
    control characters escaped (the row's notes say which were)."""
    escaped = []
    out = dict(row)
    for key in ("file", "detail", "loading", "diagnosis", "smallest_case", "notes", "stdout", "stderr"):
        value = out.get(key)
        if not isinstance(value, str):
            continue
        limit = text.OUTPUT_MAX if key in ("stdout", "stderr") else text.NAME_MAX if key == "file" else text.FIELD_MAX
        out[key], changed = text.clean(value, limit, "\n\t" if key in ("stdout", "stderr") else "")
        if changed and key not in ("stdout", "stderr"):
            escaped.append(key)
    if escaped:
        out["notes"] = "; ".join(filter(None, [out.get("notes", ""),
                                               f"control characters escaped in {', '.join(escaped)}"]))
    return out


def grade(folder, out, plan: Plan, *, workers: int | None = None, scheduler: str | None = None,
          force: bool = False, progress=print, part: str = "") -> dict:
    """Grade every ``*.py`` in ``folder`` on ``plan``; write OUT/gradebook.{json,csv,html}
    (a rubric's ``part``: its rows in OUT/gradebook.sqlite under that part, its files in
    OUT/parts/PART/). Returns the gradebook."""
    from dask.distributed import Client, LocalCluster, as_completed

    files, skipped = submissions(folder, plan.convention, plan.fn, plan.settings.get("paths", ()))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    book = {"settings": plan.settings, "fingerprint": plan.fingerprint(),
            "cases": [c.to_dict() for c in plan.cases],
            "inconclusive": {str(i): why for i, why in plan.inconclusive.items()}, "rows": {},
            "skipped": {name: why for name, why in skipped}, "sandbox": sandbox.protections().text()}
    for name, why in skipped:
        progress(f"skipped {name}: {why}")
    # the gradebook lives in OUT/gradebook.sqlite, a row per finished submission (store.py);
    # the .json, .csv and .html are exported from it at the end
    store = Store(out / "gradebook.sqlite", part)
    book["rows"] = store.start(book, force=force)
    digests = {p.name: p.digest() for p in files}
    todo = [p for p in files if book["rows"].get(p.name, {}).get("sha256") != digests[p.name]]
    gone = set(book["rows"]) - set(digests)               # a submission removed from the folder
    for name in gone:
        del book["rows"][name]
    store.drop(gone)
    if len(todo) < len(files):
        progress(f"resuming: {len(files) - len(todo)} of {len(files)} submissions already graded (--force regrades)")
    spec = {"convention": plan.convention, "fn": list(plan.fn) if plan.fn else None,
            "paths": plan.settings.get("paths", []), "stubs": plan.settings.get("stubs", []),
            "strict_clip": plan.settings.get("strict_clip", False), "forbid": plan.settings.get("forbid") or [],
            "strict_inputs": plan.settings.get("strict_inputs", False),
            "cases": [c.to_dict() for i, c in enumerate(plan.cases)], "checked": [list(c) for c in plan.checked],
            "answer_budget": answers.answer_budget(plan.expected),
            "limits": {"address_space": plan.settings["memory"], "cpu_seconds": int(plan.settings["timeout"]) + 1,
                       "open_files": OPEN_FILES, "file_size": FILE_SIZE}}
    facts = {p.name: source_facts(p, plan) for p in todo}

    def finish(p: Submission, row: dict, done: str) -> None:
        f = facts[p.name]
        notes = [row.get("notes", "")]
        if p.refused:
            notes.append("not collected: " + ", ".join(f"{text.terminal(r)} ({why})" for r, why in p.refused[:10]))
        row = _shown({**row, "engines": ",".join(f["engines"]), "notes": "; ".join(filter(None, notes)),
                      "sha256": digests[p.name]})
        book["rows"][p.name] = row
        store.put(p.name, row)                            # one transaction: O(1) per submission
        progress(f"{done}{text.terminal(p.name)}: {row['verdict']}" + (f" ({row['diagnosis']})" if row["diagnosis"] else ""))

    workers = workers or os.cpu_count() or 1
    runnable = [p for p in todo if p.main is not None and not facts[p.name]["forbidden"]]
    cluster = None if scheduler or not runnable else LocalCluster(n_workers=1, threads_per_worker=workers,
                                                                  processes=False, dashboard_address=":0")
    by_name = {p.name: p for p in todo}
    try:
        for p in todo:
            if p.main is None:          # a folder with nothing to grade: its row says why
                finish(p, judge_submission(_nothing(p), plan), "")
            elif facts[p.name]["forbidden"]:      # decided from its source: it never runs
                rule = ",".join(plan.settings.get("forbid") or ())
                finish(p, judge_submission(_nothing(p, f"imports {', '.join(facts[p.name]['forbidden'])}, which the "
                                                       f"course forbids (--forbid-import {rule})"), plan), "")
        if runnable:
            with Client(scheduler or cluster) as client:
                # a window of submissions in flight, not the whole class: a finished task's
                # answer (the arrays of every case) is let go once judged, so the grader's
                # memory does not grow with the class (bench --grading measures it)
                waiting = iter(runnable)
                slots = max(2 * _threads(client, workers), 2)

                def submit(p: Submission):
                    return client.submit(run_submission, p.name, p.files, p.main, spec, plan.settings["timeout"],
                                         pure=False)

                pending = as_completed([submit(p) for _, p in zip(range(slots), waiting)])   # range first: zip pulls no extra
                for done, future in enumerate(pending, 1):
                    raw = future.result()
                    future.release()
                    del future
                    nxt = next(waiting, None)
                    if nxt is not None:
                        pending.add(submit(nxt))
                    p = by_name[raw["name"]]
                    finish(p, judge_submission(raw, plan, clip=facts[p.name]["clip"]), f"[{done}/{len(runnable)}] ")
                    del raw
    finally:
        if cluster is not None:
            cluster.close()
        store.close()
    export(book, out / "parts" / part if part else out)
    return book


def _threads(client, default: int) -> int:
    """How many tasks the cluster runs at once (its workers' threads), else ``default``."""
    try:
        return sum(w["nthreads"] for w in client.scheduler_info()["workers"].values()) or default
    except (KeyError, TypeError, AttributeError):
        return default


def export(book: dict, out) -> None:
    """gradebook.json, .csv, .html and the LMS's CSV, from the whole book (once, at the end)."""
    from comparisons import atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / "gradebook.json", json.dumps(book, indent=1, sort_keys=True) + "\n")
    write_csv(book, out / "gradebook.csv")
    write_lms_csv(book, out / "gradebook-lms.csv")
    atomic.write_text(out / "gradebook.html", render_html(book))


def points(row: dict, settings: dict) -> float:
    """A row's points for its part: its share of the conclusive cases agreed (partial credit)
    or all-or-nothing, times the part's points (a one-part grade: 1 point)."""
    worth = float(settings.get("points", 1.0))
    if row.get("verdict") == "agree":
        return worth
    if settings.get("partial", True) and row.get("cases_run"):
        return round(worth * row["cases_agreed"] / row["cases_run"], 4)
    return 0.0


def write_lms_csv(book: dict, path) -> None:
    """student, the points of each part, total: what an LMS imports (one part per convention)."""
    from comparisons import atomic

    part = book["settings"].get("part") or book["settings"]["convention"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", part, "total"])
    for name in sorted(book["rows"]):
        p = points(book["rows"][name], book["settings"])
        student = text.csv_cell(text.clean(Path(name).stem if name.endswith(SOURCE_SUFFIXES) else name,
                                           text.FIELD_MAX)[0])
        writer.writerow([student, p, p])
    atomic.write_text(path, buffer.getvalue())


def _nothing(submission: Submission, why: str | None = None) -> dict:
    """What a submission the grader does not run "returned": an import error saying why (a
    folder with no gradable file, a forbidden import read off its source)."""
    return {"name": submission.name, "path": "", "returncode": 0, "timed_out": False, "seconds": 0.0,
            "stdout": "", "stderr": "", "answer": None,
            "record": {"import_error": why or submission.why_not, "cases": [], "loading": []}}


def write_csv(book: dict, path) -> None:
    from comparisons import atomic

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for name in sorted(book["rows"]):
        # a row kept by an older grader may lack the newer columns; every cell as a spreadsheet's text
        row = book["rows"][name]
        writer.writerow({k: text.csv_cell(text.clean(row[k], text.FIELD_MAX)[0] if isinstance(row.get(k), str)
                                          else row.get(k, "")) for k in COLUMNS})
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
        parts.append(f"<tr><td>{e(str(r.get('file', name)))}</td><td class='{e(r['verdict'])}'>{e(r['verdict'])}</td>"
                     f"<td>{r['cases_agreed']} / {r['cases_run']}</td><td>{where}</td>"
                     f"<td>{e(r['diagnosis'].replace(';', ', '))}</td><td>{e(r['detail'])}"
                     f"{'<br><code>' + e(r['smallest_case']) + '</code>' if r['smallest_case'] else ''}"
                     f"{'<br><small>' + e(r['loading']) + '</small>' if r.get('loading') else ''}{output}</td>"
                     f"<td>{r['seconds']}</td></tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(parts)
