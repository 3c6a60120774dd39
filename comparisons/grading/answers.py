"""What a submission's process hands back, read as the student's answer and nothing more.

The child writes one ZIP archive to a pipe (never to a file on the grader's disk): a
``record.json`` of what went wrong, case by case, in the student's own words (exception
messages, loading notes), and one ``.npy`` per returned array, ``{case}/{name}.npy``. The
grader decides everything else itself (issue 40): which arrays each case must return (the
convention's and the plan's, :func:`expected`), their shapes and dtypes, each case's status,
the clip bound. A landed grader trusted the child's list of returned gradients, its clip
bound and its case statuses, and a submission that rewrote them in its own process passed
with wrong gradients; none of them is read now.

Every size is bounded before it is read: the whole answer (what the plan's cases can need,
:func:`answer_budget`), the number of members, each array by the shape its header declares
against the shape the case needs (so a 2 MB member that inflates to 2 GB is refused before it
is inflated), and the record. ``.npy`` headers are parsed by NumPy's own reader (a literal,
never a pickle: object dtypes are refused).
"""

from __future__ import annotations

import functools
import io
import json
import math
import zipfile
from dataclasses import dataclass, field

import numpy as np

from comparisons.grading import text

RECORD = "record.json"
RECORD_MAX = 2 * 2 ** 20
#: the statuses a child may give a case: "returned" (its arrays follow) or how it failed.
#: A child can only say it failed; "agree" is the grader's word alone.
CHILD_STATUSES = ("returned", "raised", "bad_output", "non_finite")
#: per convention, what its adapter hands back besides the parameters' gradients: dL/dx
#: (its input gradient) and the gated cells' initial-state gradients. The contract's
#: ``loss_and_grads`` may return dL/dh and dL/dx or not (CONTRACT.md), so they are optional
#: there; everywhere else the adapter always returns them, and an answer without them is
#: malformed. tests/test_answers.py holds this table to what each adapter returns.
RETURNS = {
    "contract": {"dL_dx": None, "dL_dh": None, "initial": ()},
    "min-char-rnn": {"dL_dx": False, "initial": ()},
    "cs231n": {"dL_dx": True, "initial": ()},
    "cs231n-step": {"dL_dx": True, "initial": ()},
    "deeplearning-ai": {"dL_dx": True, "initial": ()},
    "min-char-rnn-lstm": {"dL_dx": False, "initial": ()},
    "cs231n-lstm": {"dL_dx": True, "initial": ("h0",)},
    "cs231n-lstm-step": {"dL_dx": True, "initial": ("h0", "c0")},
    "deeplearning-ai-lstm": {"dL_dx": True, "initial": ("h0",)},
    "gru": {"dL_dx": True, "initial": ("h0",)},
    "d2l-gru": {"dL_dx": False, "initial": ()},
    "deeplearning-ai-step": {"dL_dx": True, "initial": ()},
    "deeplearning-ai-lstm-step": {"dL_dx": True, "initial": ("h0", "c0")},
    "class-gru": {"dL_dx": True, "initial": ("h0",)},
    "class-gru-2019": {"dL_dx": True, "initial": ("h0",)},
    "class-lstm": {"dL_dx": True, "initial": ("h0", "c0")},
    "karpathy-lstm": {"dL_dx": True, "initial": ("h0", "c0")},
}


@dataclass
class Expected:
    """One case's answer: ``required`` and ``optional`` {name: shape}; the loss is always
    required (a scalar)."""

    required: dict
    optional: dict = field(default_factory=dict)
    dtype: str = "float64"               # the case's: every parameter's gradient is of it
    exact: tuple = ()                    # the names held to ``dtype``
    def shape(self, name):
        return self.required.get(name, self.optional.get(name))


def expected(convention: str, case, params: dict, checked) -> Expected:
    """What ``case`` must return under ``convention``: the gradients of ``checked`` (the
    plan's, by the case's parameters ``params``), then dL/dh_t (T+1, B, H) and dL/dx_t
    (T, B, D) as the convention gives them, and the gated cells' initial states (B, H)."""
    T, B, D, H = case.T, case.B, case.D, case.H
    returns = RETURNS[convention]
    required = {"loss": ()}
    required.update({k: tuple(params[k].shape) for k in checked})
    optional = {}
    for name in returns["initial"]:
        required[name] = (B, H)
    for name, shape in (("dL_dh", (T + 1, B, H)), ("dL_dx", (T, B, D))):
        wanted = returns.get(name, False)
        if wanted is True:
            required[name] = shape
        elif wanted is None:
            optional[name] = shape
    exact = tuple(checked) + tuple(returns["initial"])
    return Expected(required, optional, str(case.dtype), exact)


def answer_budget(expectations: list) -> int:
    """The most bytes a well-formed answer to these cases can take: every array at 8 bytes an
    entry, each member's header and the archive's directory, and the record."""
    total = RECORD_MAX
    for e in expectations:
        for shape in list(e.required.values()) + list(e.optional.values()):
            total += 8 * math.prod(shape) + 512
    return total


class Malformed(Exception):
    """The answer as a whole cannot be read (not an archive, too large, a bad record)."""


@dataclass
class Answer:
    """What was read: ``record`` (sanitised), ``cases`` [{name: array}] per case, and per case
    the reason it is malformed (or None)."""

    record: dict
    cases: list
    problems: list


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    if info.file_size > limit:
        raise Malformed(f"{info.filename}: declares {info.file_size} bytes, over the {limit} it may take")
    with archive.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise Malformed(f"{info.filename}: inflates past the {limit} bytes it may take")
    return data


HEADER_MAX = 64 * 1024          # np.save writes ~128 bytes of header; more is refused
# the dtypes the harness's arrays come in (the case's dtypes); another is read by NumPy's reader
FAST_DTYPES = ("<f8", "<f4")


@functools.lru_cache(maxsize=8192)
def _canonical_header(descr: str, shape: tuple) -> bytes:
    """The header ``np.save`` writes for a C-ordered array of ``descr`` and ``shape``."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, shape: tuple, wanted=None) -> np.ndarray:
    """The array of one member, its header checked against ``shape`` (and ``dtype``, where
    given) before its data is used: the rules of ``comparisons.check.outputs``. A member is
    read to at most its shape's bytes and a header's; the header the harness writes is
    matched byte for byte (the grader's own bytes: nothing of the child's is parsed), any
    other is parsed by NumPy's reader (a literal, never a pickle)."""
    need = 8 * math.prod(shape)
    with archive.open(info) as f:
        raw = f.read(need + HEADER_MAX + 1)           # more than that is refused below, unread
    for descr in FAST_DTYPES:
        head = _canonical_header(descr, tuple(shape))
        if raw.startswith(head):
            dtype = np.dtype(descr)
            if wanted is not None and dtype != np.dtype(wanted):
                raise ValueError(f"dtype {dtype}: expected {wanted} (the input dtype)")
            nbytes = math.prod(shape) * dtype.itemsize
            if len(raw) - len(head) != nbytes:
                raise ValueError(f"{len(raw) - len(head)} bytes of data: its header declares {nbytes}")
            return np.frombuffer(raw, dtype=dtype, offset=len(head)).reshape(shape).copy()
    f = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            got_shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            got_shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"npy format version {version}")
    except ValueError as exc:
        raise ValueError(f"not an array in NumPy's format ({text.cap(str(exc), 200)})") from None
    if dtype.hasobject or dtype.kind not in "fiu" or dtype.itemsize > 8:
        raise ValueError(f"dtype {dtype}: expected real numbers")
    if wanted is not None and dtype != np.dtype(wanted):
        raise ValueError(f"dtype {dtype}: expected {wanted} (the input dtype)")
    if tuple(got_shape) != tuple(shape):
        raise ValueError(f"shape {tuple(got_shape)}: expected {tuple(shape)}")
    nbytes = math.prod(got_shape) * dtype.itemsize
    if nbytes > need:
        raise ValueError(f"{nbytes} bytes: over the {need} its shape needs")
    data = f.read()
    if len(data) != nbytes:
        raise ValueError(f"{len(data)} bytes of data: its header declares {nbytes}")
    return np.frombuffer(data, dtype=dtype).reshape(got_shape, order="F" if fortran else "C").copy()


def _record(raw) -> dict:
    """The child's record as the grader keeps it: known keys only, each text capped and
    escaped, the case statuses limited to :data:`CHILD_STATUSES`."""
    if not isinstance(raw, dict):
        raise Malformed(f"{RECORD}: a JSON {type(raw).__name__}, not an object")
    error = raw.get("import_error")
    cases = raw.get("cases")
    loading = raw.get("loading") or []
    writes = raw.get("writes") or []
    if not isinstance(cases, list) or not isinstance(loading, list) or not isinstance(writes, list):
        raise Malformed(f"{RECORD}: its cases or loading notes are not lists")
    kept = []
    for c in cases:
        if not isinstance(c, dict):
            raise Malformed(f"{RECORD}: a case that is not an object")
        kept.append({"status": c.get("status") if isinstance(c.get("status"), str) else None,
                     "reason": text.clean(c.get("reason") or "", text.FIELD_MAX, "\n")[0],
                     "traceback": text.clean(c.get("traceback") or "", 4000, "\n")[0]})
    return {"import_error": None if error is None else text.clean(error)[0],
            "cases": kept, "loading": [text.clean(line, 500)[0] for line in loading[:20]],
            "writes": [text.clean(line, 500)[0] for line in writes[:10] if isinstance(line, str)]}


def read(data: bytes, expectations: list) -> Answer:
    """The answer to ``expectations`` (one :class:`Expected` per case) in ``data``: raises
    :class:`Malformed` when it cannot be read as a whole; a case whose arrays are missing,
    extra, mis-shaped, of a wrong dtype or not finite gets its reason in ``problems``."""
    budget = answer_budget(expectations)
    if len(data) > budget:
        raise Malformed(f"{len(data)} bytes: over the {budget} these cases can need")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise Malformed(f"not the harness's archive ({text.cap(str(exc), 200)})") from None
    most = 1 + sum(len(e.required) + len(e.optional) for e in expectations)
    if len(infos) > most:
        raise Malformed(f"{len(infos)} members: the cases have at most {most}")
    by_name = {}
    for info in infos:
        if info.filename in by_name:
            raise Malformed(f"{text.terminal(info.filename)} twice")
        by_name[info.filename] = info
    if RECORD not in by_name:
        raise Malformed(f"no {RECORD}")
    try:
        raw = json.loads(_read_member(archive, by_name.pop(RECORD), RECORD_MAX).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"{RECORD}: not JSON ({text.cap(str(exc), 200)})") from None
    record = _record(raw)
    cases = [dict() for _ in expectations]
    problems = [None] * len(expectations)
    for name, info in sorted(by_name.items()):
        index, _, rest = name.partition("/")
        array = rest[:-4] if rest.endswith(".npy") else None
        if not index.isdigit() or int(index) >= len(expectations) or array is None:
            raise Malformed(f"an unexpected member {text.terminal(name)!r}")
        i = int(index)
        e = expectations[i]
        shape = e.shape(array)
        if shape is None:
            problems[i] = problems[i] or f"returned {array}, which this case does not take"
            continue
        try:
            cases[i][array] = _array(archive, info, shape, e.dtype if array in e.exact else None)
        except (ValueError, zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as exc:
            problems[i] = problems[i] or f"{array}: {exc}"
    for i, e in enumerate(expectations):
        status = record["cases"][i]["status"] if i < len(record["cases"]) else None
        if status != "returned" or problems[i]:
            continue
        missing = [k for k in e.required if k not in cases[i]]
        if missing:
            problems[i] = f"returned no {', '.join(missing)}"
            continue
        bad = [k for k, v in cases[i].items() if not np.all(np.isfinite(v))]
        if bad:
            problems[i] = f"non_finite: {', '.join(bad)} hold NaN or Inf"
    return Answer(record, cases, problems)
