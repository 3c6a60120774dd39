"""Old module names, kept importable after the modules moved into folders.

``import comparisons.cases`` returns ``comparisons.check.cases`` itself (one module object,
so ``isinstance`` and monkeypatching see the same classes and globals), without a file
per old name. A meta-path finder answers only for the names below; everything else is
left to Python's own finders.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: old name (under ``comparisons``) -> where the module lives now
MOVED = {
    **{name: f"check.{name}" for name in (
        "cases", "strategies", "tolerances", "tf32", "compare", "outputs", "backends",
        "checker", "diagnosis", "reproducer", "conventions", "cells")},
    "report_data": "report.data", "figures": "report.figures",
    "studies": "report.studies", "evidence": "report.evidence",
    "bench": "measure.bench", "soak": "measure.soak", "resolve": "measure.resolve",
    "grade_child": "grading.child",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, package: str):
        self.targets = {f"{package}.{old}": f"{package}.{new}" for old, new in MOVED.items()}

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.targets:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(self.targets[spec.name])
        spec.loader_state = module.__spec__     # the import system overwrites it next
        return module

    def exec_module(self, module):
        # The import system has just stamped the alias's spec on the real module; give
        # the module its own back, so reloads and pickles still name where it lives.
        module.__spec__ = module.__spec__.loader_state


def install(package: str) -> None:
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias(package))
