"""Issue 42: the graders courses already run. Otter-Grader (the real package) runs the test
files ``bptt-xval otter-tests`` writes, on a notebook's own functions, and gives points per
part; nbgrader's autograder cell gets its partial credit as a number."""

import sys
from pathlib import Path

import pytest

import gated_wild
from comparisons import loading
from comparisons.cli import main
from comparisons.grading import courses

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tests_dir(tmp_path_factory):
    pytest.importorskip("otter")
    folder = tmp_path_factory.mktemp("assignment") / "tests"
    rubric = folder.parent / "rubric.toml"
    rubric.write_text((ROOT / "docs/rubrics/cs231n-a3.toml").read_text().replace("cases = 50", "cases = 8"))
    assert main(["otter-tests", "--rubric", str(rubric), "--out", str(folder), "--blocks", "2"]) == 0
    return folder


def namespace(tmp_path, source):
    path = tmp_path / "student.py"
    path.write_text(source)
    return vars(loading.load(str(path)).module)


def test_otter_grades_a_right_notebook_full_marks_on_every_part(tests_dir, tmp_path, monkeypatch):
    import otter
    monkeypatch.chdir(tmp_path)            # otter.Notebook logs to .OTTER_LOG in the working folder
    grader = otter.Notebook(tests_dir=str(tests_dir))
    env = namespace(tmp_path, gated_wild.cs231n_lstm_source())
    for part, worth in (("rnn_step", 5), ("rnn", 10), ("lstm_step", 10), ("lstm", 10)):
        result = grader.check(part, global_env=env)
        assert (result.score, result.possible) == (worth, worth), str(result)


def test_otter_names_the_wrong_part_and_its_mistake(tests_dir, tmp_path, monkeypatch):
    import otter
    monkeypatch.chdir(tmp_path)
    grader = otter.Notebook(tests_dir=str(tests_dir))
    env = namespace(tmp_path, gated_wild.cs231n_lstm_source("cell_carry_dropped"))
    assert grader.check("lstm_step", global_env=env).score == 10
    wrong = grader.check("lstm", global_env=env)
    assert wrong.score == 0 and "cell_carry_dropped" in str(wrong)


def test_nbgraders_cell_gets_partial_credit_as_a_number(tmp_path):
    right = namespace(tmp_path, gated_wild.cs231n_lstm_source())
    assert courses.points(right, "cs231n-lstm", 10, cases=6) == 10.0
    wrong = namespace(tmp_path, gated_wild.cs231n_lstm_source("cell_carry_dropped"))
    got = courses.points(wrong, "cs231n-lstm", 10, cases=6)
    assert 0 <= got < 10
    assert courses.points({}, "cs231n-lstm", 10) == 0.0            # the functions never defined
