"""docs/api.md is the reference a fresh clone has: every name it documents must exist."""

import importlib
import re
from pathlib import Path

import pytest

from comparisons.cli import build_parser

API = (Path(__file__).parents[1] / "docs" / "api.md").read_text()
DOCUMENTED = re.findall(r"^## `([\w.]+)`", API, flags=re.M)


def test_the_page_documents_the_public_names():
    assert {"comparisons.check_derivation", "comparisons.CheckResult", "comparisons.Failure",
            "comparisons.assert_derivation", "bptt_xval.model.Gradients"} <= set(DOCUMENTED)


@pytest.mark.parametrize("dotted", DOCUMENTED)
def test_every_documented_name_is_importable(dotted):
    module, _, name = dotted.rpartition(".")
    assert hasattr(importlib.import_module(module), name), f"docs/api.md documents {dotted}, which is gone"


def test_every_documented_subcommand_exists():
    documented = set(re.findall(r"^bptt-xval (\w[\w-]*)", API, flags=re.M))
    parser = build_parser()
    commands = set(next(a for a in parser._actions if a.dest == "command").choices)
    assert documented and documented <= commands


def test_documented_mistakes_are_the_catalog():
    from comparisons.check.diagnosis import MISTAKES
    section = API.split("## `comparisons.check.diagnosis.MISTAKES`")[1].split("\n## ")[0]
    assert set(re.findall(r"`(\w+)`", section)) - {"mistaken_loss_and_grads"} >= set(MISTAKES)
