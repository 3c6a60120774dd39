"""Grading a class (``bptt-xval grade``): a folder of cs231n-style submissions, correct,
mistaken and hostile, graded in one run; every one gets the right verdict, and the
grader's own process and files are untouched."""

import csv
import os
from pathlib import Path

import pytest

from comparisons.cli import main
from comparisons.grading.gradebook import COLUMNS, VERDICTS, class_summary, grade, make_plan, parse_size
from comparisons.measure import classroom
from comparisons.measure.classroom import CHEAT
from styles import cs231n_source

GOOD = cs231n_source()


def _first(body: str) -> str:
    """The correct submission with ``body`` run first thing in rnn_backward."""
    return classroom.run_first(GOOD, body)


# file -> (its source, the verdict it must get, a diagnosis it must carry or None)
CLASS = {
    "alice.py": (GOOD, "agree", None),
    "bob.py": (GOOD.replace("dz.dot(Wh.T)", "dz.dot(Wh)"), "disagree", "transposed_recurrence"),
    "carol.py": (cs231n_source("no_carry"), "disagree", "no_recurrent_carry"),
    "dave.py": (_first("while True:\n    pass"), "timeout", None),
    # top-level work is never run (a script's sys.exit, a broken function nobody calls)
    "erin.py": ("import sys\nsys.exit(3)\n" + GOOD, "agree", None),
    "frank.py": (_first("import os\nos._exit(4)"), "exited", None),
    "grace.py": (_first("import ctypes\nctypes.string_at(0)"), "crashed", None),
    "hank.py": (_first("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)"), "crashed", None),
    "heidi.py": (_first("big = np.ones(50 * 2**30 // 8)"), "out_of_memory", None),
    "ivan.py": (GOOD + "\ndef unfinished(:\n    pass\n", "agree", None),
    "ivy.py": (GOOD.replace("def rnn_backward(dh, cache):", "def rnn_backward(dh, cache:"), "import_error", None),
    "judy.py": (_first("print('x' * 100_000)"), "agree", None),
    "ken.py": (_first("open('scratch.txt', 'w').write('notes')"), "agree", None),
    "leo.py": (_first("raise NotImplementedError('TODO')"), "raised", None),
    "mia.py": (GOOD.replace("    return dx, dprev_h, dWx, dWh, db", "    return None"), "bad_output", None),
    "nick.py": ("import numpy as np\n", "import_error", None),          # no rnn_forward at all
    # wrong, and patches the suite in its own process to agree with itself: no use, the
    # grader judges in its own process
    "oscar.py": (CHEAT + GOOD.replace("dz.dot(Wh.T)", "dz.dot(Wh)"), "disagree", "transposed_recurrence"),
}
TIMEOUT = 8.0


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    for name, (source, _, _) in CLASS.items():
        (folder / name).write_text(source)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    cwd_before = sorted(os.listdir("."))
    out = tmp_path_factory.mktemp("gradebook")
    plan = make_plan("cs231n", cases=12, seed=5, timeout=TIMEOUT, memory=parse_size("1GB"))
    lines = []
    book = grade(folder, out, plan, workers=4, progress=lines.append)
    return folder, out, plan, book, before, cwd_before, lines


@pytest.mark.parametrize("name", sorted(CLASS))
def test_every_submission_gets_its_verdict(graded, name):
    _, _, _, book, *_ = graded
    row = book["rows"][name]
    _, verdict, diagnosis = CLASS[name]
    assert row["verdict"] == verdict, row
    if diagnosis:
        assert diagnosis in row["diagnosis"].split(";"), row
        assert row["smallest_case"].startswith("Case(") and row["parameter"]
    if verdict == "agree":
        assert row["cases_agreed"] == row["cases_run"] > 0
    assert row["seconds"] <= TIMEOUT + 5


def test_details_say_what_happened(graded):
    rows = graded[3]["rows"]
    assert "SIGSEGV" in rows["grace.py"]["detail"] and "SIGSEGV" in rows["hank.py"]["detail"]
    assert "code 4" in rows["frank.py"]["detail"]
    assert "sys.exit(3)" in rows["erin.py"]["loading"] and "not run" in rows["erin.py"]["loading"]
    assert "SyntaxError" in rows["ivan.py"]["loading"] and "def unfinished(:" in rows["ivan.py"]["loading"]
    assert "SyntaxError" in rows["ivy.py"]["detail"] and "ivy.py" in rows["ivy.py"]["detail"]
    assert "/tmp" not in rows["ivy.py"]["detail"]
    assert "NotImplementedError: TODO" in rows["leo.py"]["detail"]
    assert "50.0 GiB" in rows["heidi.py"]["detail"]
    # a megabyte of prints is kept short, and said so
    assert len(rows["judy.py"]["stdout"]) < 70_000 and "more bytes not kept" in rows["judy.py"]["stdout"]


def test_the_graders_files_are_untouched(graded):
    import sys

    folder, _, _, _, before, cwd_before, _ = graded
    assert not [m for m in sys.modules if m.startswith("_bptt_xval_user_")]   # never imported here
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before      # no scratch.txt, no .pyc
    assert sorted(os.listdir(".")) == cwd_before


def test_gradebook_csv_and_html(graded):
    _, out, plan, book, *_ = graded
    with open(out / "gradebook.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS
    assert sorted(r["file"] for r in rows) == sorted(CLASS)
    assert all(r["verdict"] in VERDICTS for r in rows)
    page = (out / "gradebook.html").read_text()
    assert "<script" not in page and "http" not in page                   # self-contained
    assert "transposed_recurrence</b>: 2 students carried the error back with W_hh" in page
    assert f"seed {plan.seed}" in page and "5 of 17 agree with the references" in page
    summary = class_summary(book)
    assert summary["verdicts"]["agree"] == sum(v == "agree" for _, v, _ in CLASS.values())


def test_a_rerun_resumes_and_force_regrades(graded, tmp_path):
    folder, out, plan, book, *_ = graded
    lines = []
    again = grade(folder, out, plan, workers=2, progress=lines.append)
    assert lines[0].startswith(f"resuming: {len(CLASS)} of {len(CLASS)}")
    assert {k: r["verdict"] for k, r in again["rows"].items()} == {k: r["verdict"] for k, r in book["rows"].items()}
    # a changed submission is regraded, the others are not
    copy = tmp_path / "class"
    copy.mkdir()
    (copy / "alice.py").write_text(GOOD)
    (copy / "bob.py").write_text(CLASS["bob.py"][0])
    grade(copy, tmp_path / "book", plan, workers=2, progress=lambda line: None)
    (copy / "bob.py").write_text(GOOD)                                     # bob fixed his code
    lines = []
    fixed = grade(copy, tmp_path / "book", plan, workers=2, progress=lines.append)
    assert lines[0].startswith("resuming: 1 of 2") and fixed["rows"]["bob.py"]["verdict"] == "agree"
    lines = []
    grade(copy, tmp_path / "book", plan, workers=2, force=True, progress=lines.append)
    assert not lines[0].startswith("resuming")


def test_cli_grade(tmp_path, capsys):
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "a.py").write_text(GOOD)
    (folder / "b.py").write_text(CLASS["bob.py"][0])
    assert main(["grade", str(folder), "--convention", "cs231n", "--cases", "6", "--timeout", "20",
                 "--out", str(tmp_path / "out")]) == 0             # written: 0 whatever the verdicts
    printed = capsys.readouterr().out
    assert "1 of 2 agree; 1 disagree" in printed and "1 x transposed_recurrence" in printed
    assert (tmp_path / "out" / "gradebook.html").is_file()


@pytest.mark.parametrize("argv, message", [
    (["grade", "NOPE", "--convention", "cs231n", "--out", "X"], "DIR: no such folder"),
    (["grade", "EMPTY", "--convention", "cs231n", "--out", "X"], "no submission"),
    (["grade", "EMPTY", "--convention", "keras", "--out", "X"], "--convention"),
    (["grade", "EMPTY", "--convention", "cs231n", "--memory", "lots", "--out", "X"], "--memory"),
    (["grade", "EMPTY", "--convention", "cs231n", "--timeout", "0", "--out", "X"], "--timeout"),
    (["grade", "EMPTY", "--convention", "cs231n"], "--out"),
])
def test_cli_grade_bad_usage(tmp_path, capsys, argv, message):
    (tmp_path / "EMPTY").mkdir()
    argv = [str(tmp_path / a) if a in ("NOPE", "EMPTY", "X") else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("text, size", [("2GB", 2 * 2 ** 30), ("512mb", 512 * 2 ** 20), ("1.5G", int(1.5 * 2 ** 30)),
                                        ("1000", 1000), ("3GiB", 3 * 2 ** 30)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1GB", "0", "2XB"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError, match="memory"):
        parse_size(text)


def test_repeated_grades_spawn_every_child_from_the_one_spawner_thread(tmp_path, monkeypatch):
    # issue 27: no thread of the grader forks but the spawner, one child at a time; a class
    # graded three times over on four threads finishes with every row (the CI hang was two
    # Dask threads inside Popen at once)
    import csv
    import subprocess
    import threading

    from comparisons.grading import gradebook

    spawning_threads = []
    real_popen = subprocess.Popen

    def recording(*args, **kwargs):
        # the child's interpreter runs comparisons/grading/child.py (Dask's own IO loop may run a tool at start-up)
        if any(str(a).endswith("comparisons/grading/child.py") for a in args[0]):
            spawning_threads.append(threading.current_thread().name)
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(gradebook.subprocess, "Popen", recording)
    folder = tmp_path / "class"
    folder.mkdir()
    for i in range(6):
        (folder / f"student{i}.py").write_text(__import__('gated_wild').cs231n_lstm_source(None if i % 2 else "tanh_prime_of_h"))
    plan = gradebook.make_plan("cs231n", cases=3, seed=1, timeout=60)
    for round_ in range(3):
        book = gradebook.grade(folder, tmp_path / "out", plan, workers=4, force=True, progress=lambda *a: None)
        assert len(book["rows"]) == 6, round_
    rows = list(csv.DictReader(open(tmp_path / "out" / "gradebook.csv")))
    assert {r["verdict"] for r in rows} == {"agree"}           # the RNN half of every file is right
    assert len(spawning_threads) == 18 and set(spawning_threads) == {"bptt-xval-spawner"}


def test_the_gradebook_is_a_database_and_its_files_are_exported_from_it(graded):
    import json
    import sqlite3
    folder, out, plan, book, *_ = graded
    db = sqlite3.connect(out / "gradebook.sqlite")          # a reader of its own, as while grading runs
    rows = {name: json.loads(row) for name, row in db.execute("SELECT name, row FROM rows")}
    assert set(rows) == set(CLASS)
    assert json.loads(db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()[0]) == \
        plan.fingerprint()
    exported = json.loads((out / "gradebook.json").read_text())
    assert exported["rows"] == rows and exported["settings"] == json.loads(json.dumps(plan.settings))
    lms = list(csv.reader((out / "gradebook-lms.csv").read_text().splitlines()))
    assert lms[0] == ["student", "cs231n", "total"]
    points = {r[0]: float(r[1]) for r in lms[1:]}
    for name, row in rows.items():
        expected = 1.0 if row["verdict"] == "agree" else row["cases_agreed"] / max(row["cases_run"], 1)
        assert points[name.removesuffix(".py")] == pytest.approx(expected, abs=1e-4)


def test_a_row_is_kept_the_moment_it_is_put_whatever_happens_after(tmp_path):
    from comparisons.grading.store import Store
    store = Store(tmp_path / "gradebook.sqlite")
    store.start({"settings": {}, "fingerprint": "abc"}, force=False)
    store.put("alice.py", {"verdict": "agree", "sha256": "1"})
    # no close, no export: the grader dies here; the next run finds alice graded
    again = Store(tmp_path / "gradebook.sqlite")
    assert again.start({"settings": {}, "fingerprint": "abc"}, force=False) == {"alice.py": {"verdict": "agree",
                                                                                          "sha256": "1"}}
    assert again.start({"settings": {}, "fingerprint": "other"}, force=False) == {}
