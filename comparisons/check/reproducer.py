"""Reproducers: a failing case as ``NAME.npz`` (the arrays) + ``NAME.json`` (the case).

The arrays are stored as well as the case, so a reproducer replays exactly even if
``make_problem`` changes in a later version. Loading uses ``allow_pickle=False`` and
checks every array against the case before anything runs.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from bptt_xval.model import PARAM_KEYS
from comparisons import atomic
from comparisons.check.cases import Case, make_problem

FORMAT = "bptt-xval-reproducer/1"


class ReproducerError(ValueError):
    """A reproducer file is missing, malformed or inconsistent."""


def save(case: Case, folder, summary: dict | None = None) -> Path:
    """Write the reproducer of ``case`` into ``folder``; returns the .json path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    params, xs, ys = make_problem(case)
    buffer = io.BytesIO()
    np.savez(buffer, xs=xs, ys=ys, **{f"param_{k}": v for k, v in params.items()})
    stem = f"repro-{case.id}"
    atomic.write_bytes(folder / f"{stem}.npz", buffer.getvalue())
    meta = {"format": FORMAT, "case": case.to_dict(), "arrays": f"{stem}.npz", "failure": summary or {}}
    return atomic.write_text(folder / f"{stem}.json", json.dumps(meta, indent=1, sort_keys=True) + "\n")


def load(path):
    """``(case, (params, xs, ys), meta)`` from a reproducer's .json (or .npz) path."""
    path = Path(path)
    if path.suffix == ".npz":
        path = path.with_suffix(".json")
    if not path.is_file():
        raise ReproducerError(f"reproducer: no such file {str(path)!r}")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReproducerError(f"reproducer: {path.name} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ReproducerError(f"reproducer: {path.name} is not a {FORMAT} file")
    try:
        case = Case(**meta["case"])
    except (TypeError, ValueError, KeyError) as exc:
        raise ReproducerError(f"reproducer: {path.name} holds an invalid case ({exc})") from None
    arrays_path = path.parent / Path(str(meta.get("arrays", ""))).name
    try:
        with np.load(arrays_path, allow_pickle=False) as data:
            stored = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ReproducerError(f"reproducer: cannot read arrays {arrays_path.name} ({exc})") from None
    expected_params = set(PARAM_KEYS) | ({"h0"} if case.h0 != "none" else set())
    params = {k.removeprefix("param_"): v for k, v in stored.items() if k.startswith("param_")}
    if set(params) != expected_params or "xs" not in stored or "ys" not in stored:
        raise ReproducerError(f"reproducer: {arrays_path.name} has arrays {sorted(stored)}; expected "
                              f"xs, ys and params {sorted(expected_params)}")
    reference = make_problem(case)
    for name, got, want in [("xs", stored["xs"], reference[1]), ("ys", stored["ys"], reference[2])] + \
            [(f"params['{k}']", params[k], reference[0][k]) for k in params]:
        if got.shape != want.shape or got.dtype != want.dtype:
            raise ReproducerError(f"reproducer: {name} has shape {got.shape} dtype {got.dtype}; "
                                  f"the case expects {want.shape} {want.dtype}")
    return case, (params, stored["xs"], stored["ys"]), meta
