"""Issue 42: an assignment graded as courses run it, every part and its points in one run
(docs/rubrics/ holds the three courses' rubrics; tests/gated_wild.py the files)."""

import csv
import json
import subprocess
import sys
import os
from pathlib import Path

import pytest

import gated_wild
from comparisons.grading import rubric as rubrics

ROOT = Path(__file__).resolve().parents[1]


def grade(folder, out, *extra):
    run = subprocess.run([sys.executable, "-m", "comparisons.cli", "grade", str(folder), "--out", str(out),
                          "--workers", "2", *extra], capture_output=True, text=True, timeout=900,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return run.returncode, run.stdout + run.stderr


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    (folder / "alice.py").write_text(gated_wild.cs231n_lstm_source())
    (folder / "bob.py").write_text(gated_wild.cs231n_lstm_source("cell_carry_dropped"))
    (folder / "carol.py").write_text(gated_wild.cs231n_lstm_in_place_source())
    text = (ROOT / "docs/rubrics/cs231n-a3.toml").read_text().replace("cases = 50", "cases = 4")
    rubric = tmp_path_factory.mktemp("rubric") / "rubric.toml"
    rubric.write_text(text)
    out = tmp_path_factory.mktemp("out")
    code, printed = grade(folder, out, "--rubric", str(rubric))
    return code, printed, out


def test_every_part_of_every_submission_gets_its_points_in_one_run(graded):
    code, printed, out = graded
    assert code == 0, printed
    book = json.loads((out / "gradebook.json").read_text())
    assert book["total"] == 35
    got = {s: {p: e["parts"][p]["points"] for p in e["parts"]} | {"total": e["total"]}
           for s, e in book["students"].items()}
    assert got["alice.py"] == {"rnn_step": 5, "rnn": 10, "lstm_step": 10, "lstm": 10, "total": 35}
    assert got["carol.py"]["total"] == 35                 # writes into dnext_c: a note, never points off
    # bob's dropped carry lives in lstm_backward: the step pair is right, the sequence all or nothing
    assert got["bob.py"]["lstm_step"] == 10 and got["bob.py"]["lstm"] == 0 and got["bob.py"]["total"] == 25
    assert book["mistakes"]["lstm"] == [["cell_carry_dropped", 1]]


def test_the_lms_csv_and_each_students_feedback(graded):
    _, printed, out = graded
    rows = list(csv.reader((out / "gradebook-lms.csv").read_text().splitlines()))
    assert rows[0] == ["student", "rnn_step", "rnn", "lstm_step", "lstm", "total"]
    assert {r[0]: float(r[-1]) for r in rows[1:]} == {"alice": 35, "bob": 25, "carol": 35}
    bob = (out / "feedback" / "bob.txt").read_text()
    assert "lstm: 0 of 10 points" in bob and "diagnosis: cell_carry_dropped" in bob
    assert "smallest failing case" in bob and "tolerance" not in bob          # detail is not shown
    for part in ("rnn_step", "rnn", "lstm_step", "lstm"):
        assert (out / "parts" / part / "gradebook.html").is_file()
    import sqlite3
    db = sqlite3.connect(out / "gradebook.sqlite")
    assert db.execute("SELECT COUNT(*) FROM rows").fetchone()[0] == 12      # 3 students x 4 parts


@pytest.mark.parametrize("text, message", [
    ("[[part]]\nconvention = 'cs231n'\npoints = -1\n", "points: expected a positive number"),
    ("[[part]]\nconvention = 'nope'\n", "convention: expected one of"),
    ("[[part]]\nconvention = 'cs231n'\nweight = 2\n", "unknown key(s) ['weight']"),
    ("[assignment]\nshow = ['references']\n[[part]]\nconvention = 'cs231n'\n", "show: expected some of"),
    ("[assignment]\nname = 'x'\n", "expected one or more [[part]] tables"),
    ("[[part]\n", "is not valid TOML"),
])
def test_a_bad_rubric_is_one_line_naming_the_key(tmp_path, text, message, capsys):
    from comparisons.cli import main
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "a.py").write_text(gated_wild.cs231n_lstm_source())
    (tmp_path / "r.toml").write_text(text)
    assert main(["grade", str(tmp_path / "class"), "--rubric", str(tmp_path / "r.toml"), "--out",
                 str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("name", ["cs231n-a3.toml", "deeplearning-ai-week1.toml", "11-785-hw3p1-gru.toml"])
def test_the_documented_rubrics_parse(name):
    r = rubrics.load(ROOT / "docs" / "rubrics" / name)
    assert r.parts and r.total > 0
