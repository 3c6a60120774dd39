"""Checks for the graders courses already run: Otter-Grader's tests and nbgrader's
autograder cells call them on the notebook's own functions, and get points per part.

Otter-Grader (exception-based test files, ``OK_FORMAT = False``): ``bptt-xval otter-tests
--rubric R.toml --out tests/`` writes one test file per part, its points split over a few
test cases, each checking its own block of cases; a student's ``grader.check("lstm")``
then reads, in the notebook, which blocks agree::

    from otter.test_files import test_case
    from comparisons.grading.courses import otter_check
    OK_FORMAT = False
    name = "lstm"
    points = 10

    @test_case(points=5)
    def lstm_block_1(env):
        otter_check(env, "cs231n-lstm", block=1, cases=10, seed=0)

nbgrader (an autograder test cell; nbgrader takes a number the cell evaluates to as its
partial credit)::

    from comparisons.grading.courses import points
    points(globals(), "cs231n-lstm", 10)       # the share of cases that agree, times 10

The functions are found in the namespace by the convention's names (``lstm_forward``,
``lstm_backward``; a class's ``forward``/``backward``), as ``bptt-xval check`` finds them in a
file, and checked the same way: the same cases, references, tolerances and verdicts.
"""

from __future__ import annotations

import inspect


def adapter(env: dict, convention: str, fn=None):
    """The convention's adapter around the namespace's functions (``fn``: their names)."""
    from comparisons.conventions import CONVENTIONS, FITS

    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {sorted(CONVENTIONS)}; got {convention!r}")
    make, names, _ = CONVENTIONS[convention]
    names = tuple(fn or names)
    if convention in FITS:          # a class: the first of the namespace's classes that fits
        for value in env.values():
            if inspect.isclass(value) and all(callable(getattr(value, n, None)) for n in names):
                instance = value.__new__(value)
                methods = [getattr(instance, n) for n in names]
                if FITS[convention](*methods):
                    return make(*methods)
        raise NameError(f"{convention}: no class with {' and '.join(names)} of that layout is defined")
    missing = [n for n in names if not callable(env.get(n))]
    if missing:
        raise NameError(f"{convention}: {', '.join(missing)} is not defined (run the cell that defines it)")
    return make(*(env[n] for n in names))


def check_part(env: dict, convention: str, *, cases: int = 20, seed: int = 0, fn=None):
    """``bptt-xval check``'s verdict (a CheckResult) on the namespace's functions."""
    from comparisons.check.checker import check_derivation
    from comparisons.check.gated import check_convention

    f = adapter(env, convention, fn)
    if getattr(f, "cell", None) is not None:
        return check_convention(f, cases=cases, seed=seed)
    return check_derivation(f, cases=cases, seed=seed)


def otter_check(env: dict, convention: str, *, block: int = 1, cases: int = 10, seed: int = 0, fn=None) -> None:
    """An Otter test case's body: passes where every conclusive case of its block agrees,
    else fails with the verdict's summary (the first wrong gradient, step and diagnosis)."""
    result = check_part(env, convention, cases=cases, seed=seed * 1000 + block, fn=fn)
    if not result.ok:
        raise AssertionError(result.summary())


def points(env: dict, convention: str, worth: float, *, cases: int = 20, seed: int = 0, fn=None) -> float:
    """nbgrader's partial credit: ``worth`` times the share of conclusive cases that agree."""
    try:
        result = check_part(env, convention, cases=cases, seed=seed, fn=fn)
    except NameError:
        return 0.0
    judged = result.cases_run - len(result.inconclusive)
    return round(worth * result.agreed / judged, 4) if judged else 0.0


OTTER_TEST = '''"""Otter-Grader test for part {name!r} ({convention}), written by bptt-xval otter-tests."""
from otter.test_files import test_case

from comparisons.grading.courses import otter_check

OK_FORMAT = False

name = {name!r}
points = {points!r}
{cases}'''

OTTER_CASE = '''

@test_case(points={points!r}, hidden=False)
def {name}_block_{block}(env):
    otter_check(env, {convention!r}, block={block}, cases={cases}, seed={seed}{fn})
'''


def write_otter_tests(rubric, folder, blocks: int = 5) -> list:
    """One Otter test file per part of ``rubric`` in ``folder``: ``blocks`` test cases each,
    its points split evenly (a part not split, ``partial = false``, is one case)."""
    from pathlib import Path

    from comparisons import atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for part in rubric.parts:
        n = blocks if part.partial else 1
        per = max(1, rubric.cases // n)
        body = "".join(OTTER_CASE.format(points=round(part.points / n, 6), name=part.name.replace("-", "_"),
                                         block=k, convention=part.convention, cases=per, seed=rubric.seed,
                                         fn=f", fn={list(part.fn)!r}" if part.fn else "")
                       for k in range(1, n + 1))
        path = folder / f"{part.name}.py"
        atomic.write_text(path, OTTER_TEST.format(name=part.name, convention=part.convention, points=part.points,
                                                  cases=body))
        written.append(path)
    return written
