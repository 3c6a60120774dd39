"""A class's folder of untrusted submissions graded: ``gradebook`` plans, runs and tallies;
each submission runs in a process of its own (``child``), never in the grader's."""

import importlib

# ``from comparisons.grading import grade`` (the name docs/api.md gives) still works, from
# when grading was one module; looked up lazily so that a submission's own process
# (``child``) never imports the grader.
_FROM_BEFORE_THE_MOVE = dict.fromkeys(
    ["COLUMNS", "VERDICTS", "Plan", "class_summary", "grade", "make_plan", "parse_size",
     "render_html", "submissions", "write_csv"], "gradebook")


def __getattr__(name):
    if name in _FROM_BEFORE_THE_MOVE:
        return getattr(importlib.import_module(f"{__name__}.{_FROM_BEFORE_THE_MOVE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
