"""Issue 27: a submission cannot touch anything outside itself. Hostile submissions
(tests/hostile.py), each a correct cs231n pair plus one attempt, graded together by the
command in a process of its own (so its command line names the class folder, as a real
grader's does); every effect checked from outside."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import hostile
from comparisons.grading import sandbox

ROOT = Path(__file__).resolve().parents[1]
isolated = pytest.mark.skipif(not sandbox.protections().isolated,
                              reason=f"no sandbox here: {sandbox.protections().text()}")


def grade(folder, out, *extra, env=None):
    """``bptt-xval grade`` in a process of its own; (exit code, output, gradebook rows)."""
    run = subprocess.run([sys.executable, "-m", "comparisons.cli", "grade", str(folder), "--convention", "cs231n",
                          "--cases", "3", "--out", str(out), "--workers", "2", *extra],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    book = out / "gradebook.json"
    rows = json.loads(book.read_text())["rows"] if book.is_file() else {}
    return run.returncode, run.stdout + run.stderr, rows


class Listener:
    """A TCP listener on the host's 127.0.0.1, counting connections."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self.open = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.open:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self.open = False
        self.thread.join()
        self.socket.close()


def alive_with(marker: str) -> list:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


def answer_key_files() -> list:
    import manual.rnn
    import reference.torch_autograd
    from comparisons.check import diagnosis, gated_mistakes

    files = [m.__file__ for m in (manual.rnn, reference.torch_autograd, diagnosis, gated_mistakes)]
    # and the installed copies, wherever pip put them (the sandbox masks them)
    for site in sandbox._site_folders():
        for relative in ("manual/rnn.py", "manual/gated.py", "reference/torch_autograd.py"):
            if (Path(site) / relative).is_file():
                files.append(str(Path(site) / relative))
    return files


def hostile_class(tmp_path, listener, marker):
    instructor = tmp_path / "instructor"
    instructor.mkdir()
    notes = instructor / "notes.txt"
    notes.write_text("the grades")
    folder = tmp_path / "class"
    folder.mkdir()
    out = tmp_path / "gradebook"
    out.mkdir()
    zed = folder / "zed.py"                               # an honest classmate, graded last
    zed.write_text(hostile.submission("pass") + "\n# SECRET-ZED-7d1c\n")
    late = tmp_path / "late.txt"
    for name, source in {
        "a_delete.py": hostile.delete(notes),
        "b_parent.py": hostile.read_classmates_via_parent(),
        "c_read.py": hostile.read_file(zed),
        "d_append.py": hostile.append_to(zed),
        "e_gradebook.py": hostile.write_into(out),
        "f_answer_key.py": hostile.answer_key(answer_key_files()),
        "g_connect.py": hostile.connect(listener.port),
        "h_daemon.py": hostile.daemon(marker, late),
    }.items():
        (folder / name).write_text(source)
    return folder, out, {"notes": notes, "zed": zed, "zed_source": zed.read_text(), "late": late}


@isolated
def test_no_hostile_submission_has_an_effect_outside_itself(tmp_path):
    listener, marker = Listener(), f"bptt-xval-daemon-{uuid.uuid4().hex}"
    try:
        folder, out, things = hostile_class(tmp_path, listener, marker)
        code, output, rows = grade(folder, out)
        left_alive = alive_with(marker)
    finally:
        listener.close()
    assert code == 0, output
    assert things["notes"].read_text() == "the grades"                      # not deleted
    assert things["zed"].read_text() == things["zed_source"]                # a classmate's file unchanged
    assert not (out / "planted.txt").exists()                               # the gradebook folder untouched
    assert listener.accepted == 0                                           # no connection to 127.0.0.1
    assert not left_alive                                                   # nothing outlived the grade
    time.sleep(3.5)
    assert not things["late"].exists()                                      # ... nor wrote after it
    printed = {name: row["stdout"] for name, row in rows.items()}
    assert not any("SECRET-ZED" in text for name, text in printed.items() if name != "zed.py"), printed
    assert str(folder) not in printed["b_parent.py"], printed["b_parent.py"]
    assert "GOT import" not in printed["f_answer_key.py"] and "GOT read" not in printed["f_answer_key.py"], \
        printed["f_answer_key.py"]
    assert "BLOCKED import manual.rnn" in printed["f_answer_key.py"]
    for name in ("a_delete.py", "c_read.py", "d_append.py", "e_gradebook.py", "g_connect.py"):
        assert "GOT" not in printed[name] and "BLOCKED" in printed[name], (name, printed[name])
    # every attempt was caught inside the submission: the honest arithmetic still grades
    assert {row["verdict"] for row in rows.values()} == {"agree"}, {n: r["verdict"] for n, r in rows.items()}
    assert all(row["sandbox"].startswith("bubblewrap: files, network, processes, ipc") for row in rows.values())
    assert "Sandbox: bubblewrap: files, network" in (out / "gradebook.html").read_text()
    assert "sandbox" in (out / "gradebook.csv").read_text().splitlines()[0]


def test_without_the_sandbox_the_same_attempts_succeed(tmp_path):
    """The test above can fail: with the sandbox turned off, the file is deleted, the
    classmate's copy changed and the answer key imported (what issue 27 found, 7 of 7)."""
    listener, marker = Listener(), f"bptt-xval-daemon-{uuid.uuid4().hex}"
    try:
        folder, out, things = hostile_class(tmp_path, listener, marker)
        code, output, rows = grade(folder, out, env={"BPTT_XVAL_SANDBOX": "off"})
    finally:
        listener.close()
    assert code == 0, output
    assert not things["notes"].exists()
    assert things["zed"].read_text() != things["zed_source"]
    assert (out / "planted.txt").exists()
    assert listener.accepted == 1
    assert "GOT import manual.rnn" in rows["f_answer_key.py"]["stdout"]
    assert all("turned off (BPTT_XVAL_SANDBOX=off)" in row["sandbox"] for row in rows.values())
    for pid in alive_with(marker):
        os.kill(int(pid), 9)


def test_require_sandbox_refuses_to_grade_without_it(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "alice.py").write_text(hostile.submission("pass"))
    code, output, rows = grade(folder, tmp_path / "out", "--require-sandbox", env={"BPTT_XVAL_SANDBOX": "off"})
    assert code == 2 and "--require-sandbox" in output and "turned off" in output, output
    assert rows == {}


@isolated
def test_the_harness_holds_only_what_running_a_candidate_needs():
    """The child imports nothing of the suite beyond the harness (run here, outside any
    sandbox, with the harness alone on its path), and the harness holds no derivation."""
    harness = Path(sandbox.harness()) / "lib"
    names = {str(p.relative_to(harness)) for p in harness.rglob("*.py")}
    for secret in ("manual/rnn.py", "manual/gated.py", "comparisons/check/diagnosis.py",
                   "comparisons/check/gated_mistakes.py", "comparisons/check/gated_mc.py",
                   "comparisons/check/checker.py"):
        assert secret not in names
    assert not any(n.startswith("reference/") for n in names)
    assert {"comparisons/grading/child.py", "comparisons/check/candidate.py", "manual/output.py"} <= names


@pytest.mark.skipif(not sandbox.protections().cgroup, reason="no writable cgroup here")
def test_memory_and_processes_are_limited_for_the_whole_submission(tmp_path):
    """Six processes of 300 MB each fit a 1 GB limit one by one (RLIMIT_AS), not together
    (the submission's cgroup); 400 processes do not fit its 256 tasks."""
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "memory.py").write_text(hostile.many_allocations(6, 300))
    (folder / "forks.py").write_text(hostile.many_processes(400))
    code, output, rows = grade(folder, tmp_path / "out", "--memory", "1GB")
    assert code == 0, output
    assert rows["memory.py"]["stdout"].count("ALLOCATED") < 6, rows["memory.py"]
    started = rows["forks.py"]["stdout"]
    assert "REFUSED after" in started and int(started.split("REFUSED after")[1].split()[0]) < sandbox.PROCESSES, started

    (folder / "forks.py").unlink()                      # (400 unlimited forks: not on a shared machine)
    code, output, rows = grade(folder, tmp_path / "off", "--memory", "1GB", env={"BPTT_XVAL_SANDBOX": "off"})
    assert rows["memory.py"]["stdout"].count("ALLOCATED") == 6, rows["memory.py"]      # the test can fail


@pytest.mark.skipif(not sandbox.protections().cgroup, reason="no writable cgroup here")
def test_a_submissions_cgroup_holds_its_limits_and_is_removed():
    group = sandbox.Cgroup(2**30)
    try:
        files = {str(f): f for f in group.folders}
        text = {name: "".join(p.read_text() for p in f.iterdir() if p.name in (
            "memory.limit_in_bytes", "memory.max", "pids.max", "cpu.cfs_quota_us", "cpu.max")) for name, f in files.items()}
        joined = " ".join(text.values())
        assert str(2**30) in joined and str(sandbox.PROCESSES) in joined and str(sandbox.CPU_PERIOD_US) in joined
    finally:
        folders = list(group.folders)
        group.close()
    assert not any(f.exists() for f in folders)


def test_each_cgroup_version_gets_the_same_three_limits_in_its_own_files():
    from comparisons.grading.sandbox import CPU_PERIOD_US, _limits

    v1 = {(c, f): v for c, f, v, _ in _limits("v1", 2**30, 256)}
    v2 = {(c, f): v for c, f, v, _ in _limits("v2", 2**30, 256)}
    assert v1[("memory", "memory.limit_in_bytes")] == v2[("memory", "memory.max")] == 2**30
    assert v1[("pids", "pids.max")] == v2[("pids", "pids.max")] == 256
    assert v1[("cpu", "cpu.cfs_quota_us")] == v1[("cpu", "cpu.cfs_period_us")] == CPU_PERIOD_US
    assert v2[("cpu", "cpu.max")] == f"{CPU_PERIOD_US} {CPU_PERIOD_US}"          # one core
    # swap only where the kernel accounts it; no memory limit asked, no memory file written
    assert {f for _, f, _, required in _limits("v2", 2**30, 256) if not required} == {"memory.swap.max"}
    assert not any(c == "memory" for c, *_ in _limits("v1", 0, 256) + _limits("v2", 0, 256))
