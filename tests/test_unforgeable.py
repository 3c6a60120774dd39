"""Issue 40: a gradebook no student can forge. What a sandboxed child hands back is the
student's answer (arrays) and nothing else; the grader decides every other fact itself.

Each class of attack the issue measured has a hostile submission of its own here
(tests/forged.py), graded by the command in a process of its own, its effect judged from
outside: the gradebook's rows and files, the grader's disk, its terminal output. The
control for each is the same wrong derivation unforged: a forgery must get exactly the
verdict the honest wrong file gets, or a failing one where it sent no answer at all."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import forged
import hostile
from comparisons.grading import sandbox

ROOT = Path(__file__).resolve().parents[1]
isolated = pytest.mark.skipif(not sandbox.protections().isolated,
                              reason=f"no sandbox here: {sandbox.protections().text()}")
quota = pytest.mark.skipif("disk quota" not in sandbox.protections().held,
                           reason=f"no disk quota here: {sandbox.protections().text()}")
SECRET_ENV = "BPTT_XVAL_TEST_SECRET"
SECRET = "hunter2-environ-9f3a"


def grade(folder, out, *extra, env=None, convention="cs231n", tmp=None):
    """``bptt-xval grade`` in a process of its own: (exit code, output, gradebook rows)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), SECRET_ENV: SECRET, **(env or {})}
    if tmp is not None:
        environment["TMPDIR"] = str(tmp)
    run = subprocess.run([sys.executable, "-m", "comparisons.cli", "grade", str(folder), "--convention", convention,
                          "--cases", "3", "--out", str(out), "--workers", "2", *extra],
                         capture_output=True, text=True, timeout=600, env=environment)
    book = Path(out) / "gradebook.json"
    rows = json.loads(book.read_text())["rows"] if book.is_file() else {}
    return run.returncode, run.stdout + run.stderr, rows


def honest_class(folder: Path, n: int) -> dict:
    """``n`` honest submissions, right and wrong in turn; name -> source."""
    sources = {}
    for i in range(n):
        source = hostile.SOURCE.replace("ATTACK", "    pass")
        if i % 3 == 1:
            source = source.replace("da.dot(Wh.T)", "da.dot(Wh)")           # transposed recurrence
        elif i % 3 == 2:
            source = source.replace("da = dnext_h * (1 - next_h ** 2)", "da = dnext_h")  # no tanh'
        sources[f"student{i:02d}.py"] = source
    for name, source in sources.items():
        (folder / name).write_text(source)
    return sources


HOSTILE = {
    "forge_names.py": forged.NAMES_NO_GRADIENTS,
    "forge_clip.py": forged.OWN_CLIP,
    "forge_status.py": forged.STATUS_AGREE,
    "forge_drop.py": forged.DROP_GRADIENTS,
    "forge_list.py": forged.RECORD_IS_A_LIST,
    "forge_npy.py": forged.NOT_A_ZIP,
    "forge_bomb.py": forged.BOMB,
    "forge_huge.py": forged.HUGE_FIELD,
    "=HYPERLINK(1).py": forged.FORMULA_REASON,
    "x.py: agree\r[9\u22159] forged\x1b[2K.py": forged.RIGHT.replace("ATTACK", "    pass"),
}
#: what a forgery must get: the unforged wrong file's verdict where the arrays still went,
#: a failing verdict where they did not
EXPECTED = {"forge_names.py": "disagree", "forge_clip.py": "disagree", "forge_status.py": "bad_output",
            "forge_drop.py": "bad_output", "forge_list.py": "bad_output", "forge_npy.py": "bad_output",
            "forge_bomb.py": "bad_output", "forge_huge.py": "bad_output", "=HYPERLINK(1).py": "raised"}
COMPARED = ("verdict", "cases_agreed", "cases_run", "parameter", "step", "diagnosis", "detail", "smallest_case")


@pytest.fixture(scope="module")
def fifty(tmp_path_factory):
    """A class of 50 (40 honest, 10 hostile) graded, and the honest class's three sources
    (right, transposed recurrence, no tanh') graded alone: every honest row of the 50 must be
    its source's row alone (each submission is graded on the same cases, so the control needs
    each source once, not 40 times)."""
    base = tmp_path_factory.mktemp("fifty")
    mixed, alone = base / "mixed", base / "alone"
    mixed.mkdir()
    alone.mkdir()
    honest = honest_class(mixed, 40)
    honest_class(alone, 3)
    for name, source in HOSTILE.items():
        (mixed / name).write_text(source)
    (base / "tmp").mkdir()
    graded = grade(mixed, base / "out-mixed", tmp=base / "tmp")
    control = grade(alone, base / "out-alone")
    return {"base": base, "honest": honest, "graded": graded, "control": control}


@isolated
def test_fifty_with_ten_hostile_grade_every_honest_row_as_without_them(fifty):
    code, output, rows = fifty["graded"]
    _, _, alone = fifty["control"]
    assert code == 0, output
    assert len(rows) == 50, sorted(rows)
    assert len(alone) == 3, sorted(alone)
    for i, name in enumerate(sorted(fifty["honest"])):
        control = alone[f"student{i % 3:02d}.py"]                   # honest_class: the source of i % 3
        assert {k: rows[name][k] for k in COMPARED} == {k: control[k] for k in COMPARED}, name
    assert {alone[n]["verdict"] for n in alone} == {"agree", "disagree"}         # the control has both


@isolated
def test_a_forged_wrong_derivation_gets_the_verdict_the_unforged_one_gets(fifty):
    _, _, rows = fifty["graded"]
    _, _, alone = fifty["control"]
    unforged = alone["student01.py"]                       # the same transposed recurrence, honest
    assert unforged["verdict"] == "disagree" and unforged["diagnosis"] == "transposed_recurrence"
    for name, verdict in EXPECTED.items():
        assert rows[name]["verdict"] == verdict, (name, rows[name]["verdict"], rows[name]["detail"])
        assert "FORGING" in rows[name]["stdout"], name                      # the forgery did run
    for name in ("forge_names.py", "forge_clip.py"):
        assert {k: rows[name][k] for k in ("parameter", "step", "diagnosis")} == \
               {k: unforged[k] for k in ("parameter", "step", "diagnosis")}
    assert "does not take" in rows["forge_bomb.py"]["detail"] or "shape" in rows["forge_bomb.py"]["detail"]
    assert "returned no" in rows["forge_drop.py"]["detail"] or "no answer" in rows["forge_drop.py"]["detail"]


@isolated
def test_malformed_and_huge_answers_leave_small_files_and_every_row(fifty):
    base = fifty["base"]
    for name in ("gradebook.json", "gradebook.csv", "gradebook.html"):
        assert (base / "out-mixed" / name).stat().st_size < 2 * 2 ** 20, name      # a 30 MB reason, a 2 GB bomb
    _, output, rows = fifty["graded"]
    assert rows["forge_huge.py"]["verdict"] == "bad_output"
    assert len(rows["forge_huge.py"]["detail"]) < 5000


@isolated
def test_names_and_reasons_cannot_inject_into_the_terminal_or_a_spreadsheet(fifty):
    base = fifty["base"]
    _, output, rows = fifty["graded"]
    # the progress lines: no raw carriage return or escape, so no line can be redrawn
    assert "\r" not in output and "\x1b" not in output
    forged_line = [line for line in output.splitlines() if "forged" in line]
    assert forged_line and all("\\r" in line and "\\x1b" in line for line in forged_line), forged_line
    with open(base / "out-mixed" / "gradebook.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 50                                   # a bare \r split no row in two
    raw = (base / "out-mixed" / "gradebook.csv").read_text()
    assert "\r" not in raw and "\x1b" not in raw
    for r in table:
        for key, cell in r.items():
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), (key, cell)
            assert not (cell.startswith("-") and not cell.lstrip("-").replace(".", "").isdigit()), (key, cell)
    formula = [r for r in table if "HYPERLINK" in r["file"]][0]
    assert formula["file"].startswith("'=") and formula["detail"].startswith("'=HYPERLINK")
    escaped = [r for r in table if "forged" in r["file"]][0]
    assert "control characters escaped in file" in escaped["notes"]
    assert escaped["verdict"] == "agree"                     # its arithmetic is honest
    assert "<script" not in (base / "out-mixed" / "gradebook.html").read_text().lower()


@isolated
def test_nothing_of_a_submission_is_left_on_the_graders_disk(fifty):
    assert _left(fifty["base"] / "tmp") == []


def _left(tmp: Path) -> list:
    """What the grade left in its TMPDIR (Dask's own scratch folder aside)."""
    return [str(p) for p in tmp.rglob("*") if "dask-scratch-space" not in p.parts][:5]


def _links_class(tmp_path):
    instructor = tmp_path / "instructor"
    instructor.mkdir()
    (instructor / "key.py").write_text("# SECRET-INSTRUCTOR-51c2\n")
    folder = tmp_path / "class"
    folder.mkdir()
    zed = folder / "zed.py"
    zed.write_text(hostile.SOURCE.replace("ATTACK", "    pass") + "\n# SECRET-ZED-7d1c\n")
    mallory = folder / "mallory"
    mallory.mkdir()
    (mallory / "solution.py").write_text(hostile.SOURCE.replace("ATTACK", "    pass"))
    (mallory / "notes.py").symlink_to(instructor / "key.py")
    (mallory / "helper.py").symlink_to(zed)
    (mallory / "environ.py").symlink_to("/proc/self/environ")
    (mallory / "cmdline.py").symlink_to("/proc/self/cmdline")
    (mallory / "mem.py").symlink_to("/proc/self/mem")
    (mallory / "theirs").symlink_to(instructor, target_is_directory=True)
    os.mkfifo(mallory / "pipe.py")
    (folder / "copied.py").symlink_to(zed)                     # a classmate's file, linked at the top
    (folder / "devnull.py").symlink_to("/dev/zero")
    return folder


def test_collecting_follows_no_link_and_reads_no_device_or_fifo(tmp_path):
    """Links to the instructor's file, a classmate's, /proc/self/{environ,cmdline,mem}, a
    device and a FIFO: none is read (the grader would read them as itself), each is listed
    with why, and the class is graded. Sandbox or not: collecting is the grader's own step."""
    folder = _links_class(tmp_path)
    code, output, rows = grade(folder, tmp_path / "out")
    assert code == 0, output
    assert set(rows) == {"zed.py", "mallory/"}, sorted(rows)
    files = "".join((tmp_path / "out" / n).read_text() for n in ("gradebook.json", "gradebook.csv", "gradebook.html"))
    for secret in ("SECRET-INSTRUCTOR", SECRET):
        assert secret not in files, secret
    assert "SECRET-ZED" not in json.dumps(rows["mallory/"])
    assert rows["mallory/"]["verdict"] == "agree" and rows["zed.py"]["verdict"] == "agree"
    notes = rows["mallory/"]["notes"]
    for name in ("notes.py", "helper.py", "environ.py", "mem.py", "theirs/", "pipe.py"):
        assert name in notes, (name, notes)
    assert "symbolic link" in notes and "FIFO" in notes
    book = json.loads((tmp_path / "out" / "gradebook.json").read_text())
    assert "symbolic link" in book["skipped"]["copied.py"] and "symbolic link" in book["skipped"]["devnull.py"]


def test_the_collector_refuses_links_fifos_and_too_much(tmp_path):
    from comparisons.grading import collect

    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "link.py").symlink_to(tmp_path / "a.py")
    os.mkfifo(tmp_path / "fifo.py")
    with pytest.raises(collect.Refused, match="symbolic link"):
        collect.read_regular(tmp_path / "link.py")
    with pytest.raises(collect.Refused, match="FIFO"):
        collect.read_regular(tmp_path / "fifo.py")            # O_NONBLOCK: no hang
    assert collect.read_regular(tmp_path / "a.py") == b"x = 1\n"
    files, refused = collect.read_tree(tmp_path, (".py",))
    assert set(files) == {"a.py"} and {r for r, _ in refused} == {"link.py", "fifo.py"}
    many = tmp_path / "many"
    many.mkdir()
    for i in range(5):
        (many / f"m{i}.py").write_text("pass\n")
    with pytest.raises(collect.Refused, match="more than 3"):
        collect.read_tree(many, (".py",), max_files=3)
    with pytest.raises(collect.Refused, match="MB of sources"):
        collect.read_tree(many, (".py",), max_bytes=10)


@isolated
def test_the_childs_interpreter_is_isolated_and_limited_before_student_code(tmp_path):
    """A folder with its own json.py never has it run in place of the standard library's,
    and the address-space limit holds from the first line the student's code runs."""
    folder = tmp_path / "class"
    (folder / "amy").mkdir(parents=True)
    for name, source in forged.shadowed_stdlib_folder().items():
        (folder / "amy" / name).write_text(source)
    code, output, rows = grade(folder, tmp_path / "out", "--memory", "1GB")
    row = rows["amy/"]
    assert code == 0, output
    assert row["verdict"] == "agree", row
    assert "GOT shadowed json" not in row["stdout"], row["stdout"]
    assert f"LIMIT {2**30}" in row["stdout"], row["stdout"]


@isolated
@quota
def test_a_submission_writes_within_its_quota_and_leaves_nothing(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "hog.py").write_text(forged.disk_hog(200, 10_000))
    (tmp_path / "tmp").mkdir()
    code, output, rows = grade(folder, tmp_path / "out", tmp=tmp_path / "tmp")
    printed = rows["hog.py"]["stdout"]
    assert code == 0, output
    assert "BLOCKED big" in printed and "BLOCKED files after" in printed, printed
    assert int(printed.split("BLOCKED big")[1].split()[0]) <= sandbox.DISK_BYTES // 2**20
    assert int(printed.split("BLOCKED files after")[1].split()[0]) < sandbox.DISK_FILES
    assert rows["hog.py"]["verdict"] == "agree"
    assert _left(tmp_path / "tmp") == []


@isolated
def test_forbid_import_makes_the_engine_unimportable_and_says_so(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "static.py").write_text(forged.STATIC_TORCH)
    (folder / "dynamic.py").write_text(forged.DYNAMIC_TORCH)
    (folder / "plain.py").write_text(forged.RIGHT.replace("ATTACK", "    pass"))
    code, output, rows = grade(folder, tmp_path / "out", "--forbid-import", "torch,jax")
    assert code == 0, output
    assert rows["static.py"]["verdict"] == "import_error"
    assert "torch" in rows["static.py"]["detail"] and "--forbid-import" in rows["static.py"]["detail"]
    assert rows["static.py"]["engines"] == "torch"
    assert "BLOCKED torch" in rows["dynamic.py"]["stdout"] and "GOT torch" not in rows["dynamic.py"]["stdout"]
    assert "forbids" in rows["dynamic.py"]["stdout"]
    assert rows["plain.py"]["verdict"] == "agree" and rows["plain.py"]["engines"] == ""
    # the control: without the rule, the same dynamic import succeeds and the static one grades
    code, output, rows = grade(folder, tmp_path / "out-free")
    assert "GOT torch" in rows["dynamic.py"]["stdout"], rows["dynamic.py"]["stdout"]
    assert rows["static.py"]["verdict"] == "agree" and rows["static.py"]["engines"] == "torch"


def test_forbid_import_is_a_usage_error_when_malformed(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "a.py").write_text(forged.RIGHT.replace("ATTACK", "    pass"))
    code, output, _ = grade(folder, tmp_path / "out", "--forbid-import", "torch;rm -rf")
    assert code == 2 and "--forbid-import" in output


def test_min_char_clip_is_read_from_code_that_runs_and_never_clips_a_case_to_agree(tmp_path):
    """(d): all-zero gradients behind a dead ``if False: np.clip(d, -1e-300, 1e-300)`` are
    compared unclipped (disagree); the same tiny clip live leaves nothing to judge
    (inconclusive, never agree); min-char-rnn's own clip at 5 still agrees. Same in check."""
    from comparisons.cli import convention_check, load_file
    from comparisons.check.checker import check_derivation
    from comparisons.conventions.min_char import clip_from_source
    from comparisons.loading import source_trees

    folder = tmp_path / "class"
    folder.mkdir()
    for name, source in {"dead.py": forged.DEAD_CLIP, "tiny.py": forged.LIVE_TINY_CLIP,
                         "faithful.py": forged.FAITHFUL_CLIP}.items():
        (folder / name).write_text(source)
    assert clip_from_source(source_trees(folder / "dead.py")) is None
    assert clip_from_source(source_trees(folder / "tiny.py")) == 1e-300
    code, output, rows = grade(folder, tmp_path / "out", convention="min-char-rnn")
    assert code == 0, output
    assert rows["dead.py"]["verdict"] == "disagree", rows["dead.py"]
    assert rows["tiny.py"]["verdict"] == "inconclusive" and "clipped past judging" in rows["tiny.py"]["detail"]
    assert rows["faithful.py"]["verdict"] == "agree", rows["faithful.py"]
    assert "clipped at ±5" in rows["faithful.py"]["loading"]
    for name, ok in (("dead.py", False), ("tiny.py", True), ("faithful.py", True)):
        path = str(folder / name)
        fn = convention_check(load_file(path), path, "min-char-rnn", None)
        result = check_derivation(fn, cases=6, seed=5)
        clipped = [ids for why, ids in result.inconclusive.items() if why.startswith("clipped past judging")]
        if name == "dead.py":
            assert not result.ok and result.failures, result.headline()
        elif name == "tiny.py":
            assert not result.failures and sum(map(len, clipped)) == 6, result.inconclusive
            assert not result.ok and result.headline() == "INCONCLUSIVE"          # never AGREES
        else:
            assert result.ok and not clipped, result.headline()
