"""The report: what it shows, computed (``data``, ``studies``, ``evidence``), drawn
(``figures``) and written as report.{json,md,html} (``build``, ``templates/``)."""

import importlib

# ``from comparisons.report import write_report`` still works, from when the report was
# one module; looked up lazily so that importing a submodule does not build the report.
_FROM_BEFORE_THE_MOVE = {"write_report": "build"}


def __getattr__(name):
    if name in _FROM_BEFORE_THE_MOVE:
        return getattr(importlib.import_module(f"{__name__}.{_FROM_BEFORE_THE_MOVE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
