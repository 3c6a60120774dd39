"""Issue 42: the Gradescope autograder. The zip holds what Gradescope's specification asks
for; run in a folder laid out as Gradescope lays it out (the root configurable), it writes
results.json field by field as specified; a hostile submission cannot raise its own score
there, under the sandbox or, without one, as the unprivileged user."""

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import gated_wild

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = (ROOT / "docs/rubrics/cs231n-a3.toml").read_text().replace("cases = 50", "cases = 3")

# a submission that tries to write its own results and read the instructor's files: its
# gradients are wrong (the cell carry dropped), so an honest grade is 25 of 35
HOSTILE = gated_wild.cs231n_lstm_source("cell_carry_dropped") + '''
import json as _json, os as _os
for _root in ("ROOTDIR", "/autograder"):
    try:
        _os.makedirs(_root + "/results", exist_ok=True)
        with open(_root + "/results/results.json", "w") as _f:
            _json.dump({"score": 1000, "tests": []}, _f)
    except OSError:
        pass
    try:
        STOLEN = open(_root + "/source/rubric.toml").read()
    except OSError:
        STOLEN = None
_LEAK = STOLEN
'''


def layout(tmp_path, source: str) -> Path:
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "source").mkdir()
    (root / "results").mkdir()
    (root / "source" / "rubric.toml").write_text(RUBRIC)
    (root / "submission" / "rnn_layers.py").write_text(source.replace("ROOTDIR", str(root)))
    return root


def gradescope(root, env=None):
    return subprocess.run([sys.executable, "-m", "comparisons.cli", "gradescope", "--rubric",
                           str(root / "source" / "rubric.toml"), "--root", str(root)], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def valid_results(results: dict, total: float) -> None:
    """results.json held to Gradescope's specification, field by field."""
    assert set(results) <= {"score", "execution_time", "output", "output_format", "stdout_visibility", "tests",
                            "visibility", "extra_data", "leaderboard"}
    assert isinstance(results["score"], float) and 0 <= results["score"] <= total
    assert isinstance(results["execution_time"], int) and results["execution_time"] >= 0
    assert isinstance(results["output"], str) and results["stdout_visibility"] in ("hidden", "visible",
                                                                                   "after_due_date", "after_published")
    assert sum(t["max_score"] for t in results["tests"]) == total
    for t in results["tests"]:
        assert set(t) <= {"score", "max_score", "status", "name", "name_format", "number", "output",
                          "output_format", "tags", "visibility", "extra_data"}
        assert isinstance(t["name"], str) and isinstance(t["output"], str)
        assert isinstance(t["score"], float) and 0 <= t["score"] <= t["max_score"]
        assert t["visibility"] in ("hidden", "after_due_date", "after_published", "visible")
    assert results["score"] == pytest.approx(sum(t["score"] for t in results["tests"]))


def test_the_zip_holds_what_gradescope_asks_for(tmp_path):
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(RUBRIC)
    from comparisons.cli import main
    repo = Path(__file__).resolve().parents[1]     # the checkout: an installed wheel has no pyproject.toml
    assert main(["autograder", "--rubric", str(rubric), "--out", str(tmp_path / "autograder.zip"),
                 "--suite", str(repo)]) == 0
    z = zipfile.ZipFile(tmp_path / "autograder.zip")
    names = z.namelist()
    assert {"setup.sh", "run_autograder", "rubric.toml", "bptt-xval/pyproject.toml",
            "bptt-xval/constraints.txt", "bptt-xval/comparisons/grading/gradescope.py"} <= set(names)
    for script in ("setup.sh", "run_autograder"):
        assert z.getinfo(script).external_attr >> 16 & stat.S_IXUSR
        assert z.read(script).startswith(b"#!/usr/bin/env bash")
    assert b"torch==2.13.0" in z.read("bptt-xval/constraints.txt")
    assert b"gradescope --rubric /autograder/source/rubric.toml" in z.read("run_autograder")
    assert not [n for n in names if "__pycache__" in n or n.startswith("bptt-xval/tests")]


def test_no_source_tree_is_a_usage_error_never_a_smaller_zip(tmp_path, capsys):
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(RUBRIC)
    from comparisons.cli import main
    out = tmp_path / "autograder.zip"
    assert main(["autograder", "--rubric", str(rubric), "--out", str(out), "--suite", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--suite" in err and "pyproject.toml" in err
    assert not out.exists()


def test_a_right_submission_gets_full_marks_in_results_json(tmp_path):
    root = layout(tmp_path, gated_wild.cs231n_lstm_source())
    run = gradescope(root)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    valid_results(results, 35)
    assert results["score"] == 35.0
    assert [t["name"] for t in results["tests"]] == ["rnn_step", "rnn", "lstm_step", "lstm"]


@pytest.mark.parametrize("protection", ["sandbox", "unprivileged user"])
def test_a_hostile_submission_cannot_raise_its_score(tmp_path, protection):
    from comparisons.grading import sandbox
    env = {}
    if protection == "sandbox":
        if not sandbox.protections().isolated:
            pytest.skip(f"no sandbox here: {sandbox.protections().text()}")
    else:
        if os.geteuid() != 0:
            pytest.skip("the unprivileged-user fallback is the root grader's")
        env = {"BPTT_XVAL_SANDBOX": "off", "BPTT_XVAL_RUN_AS": "nobody"}
        probe = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "prlimit",
                                "--core=0:0", "--", sys.executable, "-I", "-c", "import numpy"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip(f"nobody cannot run this interpreter ({sys.executable}): {probe.stderr.decode()[-200:]}")
    root = layout(tmp_path, HOSTILE)
    run = gradescope(root, env)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    valid_results(results, 35)
    assert results["score"] == 25.0                      # the honest grade of its wrong gradients
    assert {t["name"]: t["score"] for t in results["tests"]}["lstm"] == 0.0
    said = results["output"]
    assert ("sandbox:" in said) if protection == "sandbox" else ("unprivileged user nobody" in said)


def test_without_a_sandbox_the_child_runs_as_the_named_user_in_a_folder_of_its_own(tmp_path, monkeypatch):
    from comparisons.grading import sandbox
    if os.geteuid() != 0:
        pytest.skip("only root can hand a folder to another user")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "a.py").write_text("x = 1\n")
    monkeypatch.setenv("BPTT_XVAL_RUN_AS", "nobody")
    argv = sandbox.as_user(["python", "-I", "child.py"], tmp_path)
    assert argv[0].endswith("setpriv") and "--reuid=65534" in argv and "--clear-groups" in argv
    assert argv[argv.index("--") + 1:] == ["python", "-I", "child.py"]
    assert (tmp_path / "work" / "a.py").stat().st_uid == 65534
    monkeypatch.delenv("BPTT_XVAL_RUN_AS")
    assert sandbox.as_user(["python"], tmp_path) == ["python"]
