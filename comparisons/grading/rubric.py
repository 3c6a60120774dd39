"""An assignment's rubric: its parts, their points, and what a student sees, in one TOML file
(read with the standard library's ``tomllib``), graded in one run:

    bptt-xval grade DIR --rubric rubric.toml --out OUT

    [assignment]
    name = "cs231n A3, RNN and LSTM"
    cases = 50                    # every part's cases, the same for every student (seed)
    seed = 0
    timeout = 60                  # seconds per submission and part
    memory = "2GB"
    show = ["verdict", "where", "smallest_case", "diagnosis"]   # what a student sees (below)

    [[part]]
    name = "rnn_step"             # a column of the gradebook
    convention = "cs231n-step"    # any of `bptt-xval check --convention`'s, or "contract"
    points = 5
    partial = true                # the share of conclusive cases agreed; false: all or nothing
    fn = ["rnn_step_forward", "rnn_step_backward"]   # optional: the names, if not the convention's

What a student may see (``show``): ``verdict``, ``where`` (the first wrong gradient and time
step), ``smallest_case``, ``diagnosis`` (the catalogued mistake, in words), ``detail`` (the
failure's own line: its error and tolerance). Never the references' values: they are not
in a row to begin with. ``grade DIR --convention X`` alone is the one-part rubric of X.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

SHOWABLE = ("verdict", "where", "smallest_case", "diagnosis", "detail")
ASSIGNMENT_KEYS = {"name", "cases", "seed", "timeout", "memory", "show", "forbid_import", "strict_clip",
                   "strict_inputs"}
PART_KEYS = {"name", "convention", "points", "partial", "fn"}


class RubricError(ValueError):
    """The rubric cannot be used: the message names the key and what was expected."""


@dataclass
class Part:
    name: str
    convention: str
    points: float = 1.0
    partial: bool = True
    fn: tuple | None = None


@dataclass
class Rubric:
    name: str
    parts: list
    cases: int = 50
    seed: int = 0
    timeout: float = 60.0
    memory: str = "2GB"
    show: tuple = ("verdict", "where", "smallest_case", "diagnosis")
    forbid: tuple = ()
    strict_clip: bool = False
    strict_inputs: bool = False
    source: dict = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(p.points for p in self.parts)


def _typed(where: str, value, kinds, what: str):
    """``value`` if it is of ``kinds`` (a TOML true is no number), else a RubricError naming it."""
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise RubricError(f"{where}: expected {what}; got {value!r}")
    return value


def parse(data: dict, origin: str = "rubric") -> Rubric:
    """A Rubric from the TOML's table, every key checked (unknown keys are refused by name)."""
    from comparisons.grading.gradebook import CONVENTION_NAMES

    if not isinstance(data, dict):
        raise RubricError(f"{origin}: expected a TOML table")
    unknown = set(data) - {"assignment", "part"}
    if unknown:
        raise RubricError(f"{origin}: unknown table(s) {sorted(unknown)}; expected [assignment] and [[part]]")
    a = data.get("assignment", {})
    if not isinstance(a, dict):
        raise RubricError(f"{origin}: [assignment] must be a table")
    bad = set(a) - ASSIGNMENT_KEYS
    if bad:
        raise RubricError(f"{origin}: [assignment] has unknown key(s) {sorted(bad)}; expected some of "
                          f"{sorted(ASSIGNMENT_KEYS)}")
    parts_data = data.get("part")
    if not isinstance(parts_data, list) or not parts_data:
        raise RubricError(f"{origin}: expected one or more [[part]] tables")
    parts, names = [], set()
    for i, p in enumerate(parts_data, 1):
        where = f"{origin}: part {i}"
        if not isinstance(p, dict):
            raise RubricError(f"{where}: expected a table")
        bad = set(p) - PART_KEYS
        if bad:
            raise RubricError(f"{where}: unknown key(s) {sorted(bad)}; expected some of {sorted(PART_KEYS)}")
        name = _typed(f"{where}: name", p.get("name", p.get("convention")), str, "a name")
        if not name.replace("-", "_").replace(".", "_").isidentifier():
            raise RubricError(f"{where}: name: expected letters, digits, - or _; got {name!r}")
        if name in names:
            raise RubricError(f"{where}: name {name!r} is used twice")
        names.add(name)
        convention = _typed(f"{where}: convention", p.get("convention"), str, "a convention's name")
        if convention not in CONVENTION_NAMES:
            raise RubricError(f"{where}: convention: expected one of {list(CONVENTION_NAMES)}; got {convention!r}")
        points = _typed(f"{where}: points", p.get("points", 1), (int, float), "a number of points")
        if not points > 0:
            raise RubricError(f"{where}: points: expected a positive number; got {points!r}")
        partial = _typed(f"{where}: partial", p.get("partial", True), bool, "true or false")
        fn = p.get("fn")
        if fn is not None and (not isinstance(fn, list) or not all(isinstance(f, str) for f in fn)):
            raise RubricError(f"{where}: fn: expected a list of function names; got {fn!r}")
        parts.append(Part(name, convention, float(points), partial, tuple(fn) if fn else None))
    show = a.get("show", ["verdict", "where", "smallest_case", "diagnosis"])
    if not isinstance(show, list) or any(s not in SHOWABLE for s in show):
        raise RubricError(f"{origin}: [assignment] show: expected some of {list(SHOWABLE)}; got {show!r}")
    forbid = a.get("forbid_import", [])
    if not isinstance(forbid, list) or not all(isinstance(m, str) and m.isidentifier() for m in forbid):
        raise RubricError(f"{origin}: [assignment] forbid_import: expected module names; got {forbid!r}")
    cases = _typed(f"{origin}: [assignment] cases", a.get("cases", 50), int, "a positive integer")
    seed = _typed(f"{origin}: [assignment] seed", a.get("seed", 0), int, "a non-negative integer")
    timeout = _typed(f"{origin}: [assignment] timeout", a.get("timeout", 60), (int, float), "seconds")
    if cases < 1 or seed < 0 or not timeout > 0:
        raise RubricError(f"{origin}: [assignment] cases, seed and timeout: expected cases >= 1, seed >= 0, "
                          f"timeout > 0; got {cases}, {seed}, {timeout}")
    return Rubric(_typed(f"{origin}: [assignment] name", a.get("name", "assignment"), str, "a name"), parts,
                  cases, seed, float(timeout), str(a.get("memory", "2GB")), tuple(show), tuple(forbid),
                  bool(a.get("strict_clip", False)), bool(a.get("strict_inputs", False)), data)


def load(path) -> Rubric:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RubricError(f"--rubric: cannot read {str(path)!r} ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RubricError(f"--rubric: {path.name} is not valid TOML ({exc})") from None
    return parse(data, path.name)


def one_part(convention: str, fn=None, **assignment) -> Rubric:
    """``grade DIR --convention X``: the one-part rubric of X (1 point, partial credit)."""
    return Rubric(assignment.pop("name", convention), [Part(convention, convention, 1.0, True, fn)], **assignment)


# --- what a student sees ---------------------------------------------------------------------------

def feedback(row: dict, part: Part, points: float, show: tuple) -> str:
    """The lines a student is shown for one part of their submission, only what ``show`` allows."""
    lines = [f"{part.name}: {points:g} of {part.points:g} points"]
    if "verdict" in show:
        lines.append(f"  verdict: {row['verdict']} ({row['cases_agreed']} of {row['cases_run']} cases agree)")
    if "where" in show and row.get("parameter"):
        lines.append(f"  first wrong: {row['parameter']}" + (f" at t = {row['step']}" if row.get("step") != "" else ""))
    if "diagnosis" in show and row.get("diagnosis"):
        from comparisons.check.diagnosis import MISTAKES
        for m in row["diagnosis"].split(";"):
            lines.append(f"  diagnosis: {m}: {MISTAKES.get(m, '')}".rstrip(": "))
    if "smallest_case" in show and row.get("smallest_case"):
        lines.append(f"  smallest failing case: {row['smallest_case']}")
    if "detail" in show and row.get("detail"):
        lines.append(f"  detail: {row['detail']}")
    return "\n".join(lines)


# --- grading every part --------------------------------------------------------------------------

def grade_rubric(folder, out, rubric: Rubric, *, workers=None, scheduler=None, force=False, progress=print,
                 paths=(), stubs=()) -> dict:
    """Every part of every submission in ``folder``: each part graded as ``grade`` grades it
    (its rows in OUT/gradebook.sqlite under the part's name), then the assignment's gradebook:
    a column per part, the total, the class's mistakes per part, and what each student sees."""
    from comparisons.grading.gradebook import grade, make_plan, parse_size, points

    books = {}
    for part in rubric.parts:
        progress(f"part {part.name} ({part.convention}, {part.points:g} points)")
        plan = make_plan(part.convention, part.fn, cases=rubric.cases, seed=rubric.seed, timeout=rubric.timeout,
                         memory=parse_size(rubric.memory), paths=paths, stubs=stubs,
                         strict_clip=rubric.strict_clip, forbid=rubric.forbid, strict_inputs=rubric.strict_inputs)
        plan.settings.update(part=part.name, points=part.points, partial=part.partial)
        books[part.name] = grade(folder, out, plan, workers=workers, scheduler=scheduler, force=force,
                                 progress=progress, part=part.name)
    students = sorted({name for book in books.values() for name in book["rows"]})
    table = {}
    for name in students:
        entry = {"parts": {}, "total": 0.0, "feedback": []}
        for part in rubric.parts:
            row = books[part.name]["rows"].get(name)
            got = points(row, books[part.name]["settings"]) if row else 0.0
            entry["parts"][part.name] = {"points": got, "verdict": row["verdict"] if row else "not graded"}
            entry["total"] = round(entry["total"] + got, 4)
            if row:
                entry["feedback"].append(feedback(row, part, got, rubric.show))
        table[name] = entry
    summary = {"name": rubric.name, "total": rubric.total, "parts": [vars(p) | {"fn": list(p.fn or [])}
                                                                      for p in rubric.parts],
               "students": table, "mistakes": {p.name: _mistakes(books[p.name]) for p in rubric.parts}}
    _export(summary, Path(out))
    return summary


def _mistakes(book: dict) -> list:
    from comparisons.grading.gradebook import class_summary
    return [[m, n] for m, n, _ in class_summary(book)["mistakes"]]


def _export(summary: dict, out: Path) -> None:
    """OUT/gradebook.json (the assignment), gradebook.csv and gradebook-lms.csv (a column per
    part and the total), gradebook.html, and OUT/feedback/STUDENT.txt (what each student sees)."""
    import csv
    import html
    import io
    import json

    from comparisons import atomic
    from comparisons.grading import text

    parts = [p["name"] for p in summary["parts"]]
    atomic.write_text(out / "gradebook.json", json.dumps(summary, indent=1, sort_keys=True) + "\n")
    for name, with_verdicts in (("gradebook.csv", True), ("gradebook-lms.csv", False)):
        buffer = io.StringIO()
        w = csv.writer(buffer, lineterminator="\n")
        w.writerow(["student", *(c for p in parts for c in ([p, f"{p} verdict"] if with_verdicts else [p])), "total"])
        for student, e in sorted(summary["students"].items()):
            shown = text.csv_cell(text.clean(Path(student).stem if student.endswith((".py", ".ipynb")) else student,
                                             text.FIELD_MAX)[0])
            cells = [c for p in parts for c in ([e["parts"][p]["points"], e["parts"][p]["verdict"]] if with_verdicts
                                                else [e["parts"][p]["points"]])]
            w.writerow([shown, *cells, e["total"]])
        atomic.write_text(out / name, buffer.getvalue())
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    for student, e in summary["students"].items():
        body = f"{summary['name']}: {e['total']:g} of {summary['total']:g} points\n\n" + "\n".join(e["feedback"]) + "\n"
        atomic.write_text(out / "feedback" / f"{text.clean(Path(student).stem, 200)[0]}.txt", body)
    x = html.escape
    rows = "".join(f"<tr><td>{x(s)}</td>" + "".join(f"<td>{e['parts'][p]['points']:g} ({x(e['parts'][p]['verdict'])})"
                                                   f"</td>" for p in parts) + f"<td><b>{e['total']:g}</b></td></tr>"
                   for s, e in sorted(summary["students"].items()))
    mistakes = "".join(f"<h3>{x(p)}</h3><ul>" + "".join(f"<li>{n} x <b>{x(m)}</b></li>" for m, n in ms) + "</ul>"
                       for p, ms in summary["mistakes"].items() if ms)
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{x(summary['name'])}</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:72em;margin:2em auto}td,th{border:1px solid #ccc;"
            "padding:.3em .6em}table{border-collapse:collapse}</style></head><body>"
            f"<h1>{x(summary['name'])}: {len(summary['students'])} submissions, {summary['total']:g} points</h1>"
            "<table><tr><th>student</th>" + "".join(f"<th>{x(p)}</th>" for p in parts) + "<th>total</th></tr>"
            f"{rows}</table><h2>The class's mistakes, per part</h2>{mistakes or '<p>None catalogued.</p>'}"
            "<p>Each part's own gradebook: parts/PART/gradebook.html.</p></body></html>\n")
    atomic.write_text(out / "gradebook.html", page)
