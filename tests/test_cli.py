"""bptt-xval check / replay / report exit codes: 0 agree, 1 disagree, 2 bad usage."""

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from comparisons.cli import main

GOOD = textwrap.dedent("""
    from manual.rnn import loss_and_grads as good
    def wrong(params, xs, ys, **config):
        r = good(params, xs, ys, **config)
        return r._replace(grads={**r.grads, "b_h": r.grads["b_h"] * 1.5})
    def boom(params, xs, ys, **config):
        raise RuntimeError("not derived yet")
""")


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(GOOD)
    return path


def test_check_agree_exits_0(user_file, capsys):
    assert main(["check", f"{user_file}:good", "--cases", "5"]) == 0
    assert "AGREES" in capsys.readouterr().out


def test_check_disagree_exits_1_and_names_parameter(user_file, capsys):
    assert main(["check", f"{user_file}:wrong", "--cases", "3", "--hidden", "sigmoid"]) == 1
    out = capsys.readouterr().out
    assert "DISAGREES" in out and "b_h differs" in out and "smallest failing case" in out


def test_check_raising_derivation_exits_1(user_file, capsys):
    assert main(["check", f"{user_file}:boom", "--cases", "2"]) == 1
    assert "RuntimeError: not derived yet" in capsys.readouterr().out


def test_check_json(user_file, capsys):
    assert main(["check", f"{user_file}:wrong", "--cases", "2", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["failures"][0]["parameter"] == "b_h"


@pytest.mark.parametrize("argv,message", [
    (["check", "nowhere.py:f"], "no such file"),
    (["check", "justaname"], "no such file 'justaname' (expected path/to/file.py"),
    (["check", "{file}:missing"], "no function 'missing'"),
    (["check", "{file}:good", "--hidden", "gelu"], "invalid choice"),
    (["check", "{file}:good", "--cases", "0"], "positive integer"),
    (["check", "{file}:good", "--loss", "cross_entropy", "--output", "tanh"], "output"),
    (["report", "--seed", "-3"], "non-negative"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
    (["replay", "{file}", "--fn", "{file}:good"], "not valid JSON"),
])
def test_bad_usage_exits_2_with_one_line(user_file, capsys, argv, message):
    argv = [a.replace("{file}", str(user_file)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_replay_from_reproducer(user_file, tmp_path, capsys):
    repro = tmp_path / "repro"
    assert main(["check", f"{user_file}:wrong", "--cases", "2", "--reproducers", str(repro)]) == 1
    capsys.readouterr()
    path = sorted(repro.glob("*.json"))[0]
    assert main(["replay", str(path), "--fn", f"{user_file}:wrong"]) == 1
    assert "b_h differs" in capsys.readouterr().out
    assert main(["replay", str(path), "--fn", f"{user_file}:good"]) == 0


def test_cli_as_a_process(user_file):
    """The command in its own process, as a user runs it (the console script where installed)."""
    command = [shutil.which("bptt-xval")] if shutil.which("bptt-xval") else [sys.executable, "-m", "comparisons.cli"]
    proc = subprocess.run(command + ["check", f"{user_file}:wrong", "--cases", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    proc = subprocess.run(command + ["check", "x"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error:")


def test_the_command_exits_fast_yet_cleanly(tmp_path):
    """``console()`` skips the interpreter's teardown (os._exit) but first runs the atexit
    handlers, a user's among them, and flushes what it printed into a pipe; the exit
    code is main()'s."""
    marker = tmp_path / "atexit-ran"
    user = tmp_path / "with_atexit.py"
    user.write_text(textwrap.dedent(f"""
        import atexit, pathlib
        from manual.rnn import loss_and_grads as right
        def good(params, xs, ys, **config):       # top-level calls are never run: register here
            atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text("yes"))
            return right(params, xs, ys, **config)
        def wrong(params, xs, ys, **config):
            r = right(params, xs, ys, **config)
            return r._replace(grads={{**r.grads, "b_h": r.grads["b_h"] * 1.5}})
    """))
    command = [sys.executable, "-c", "from comparisons.cli import console; console()", "check"]
    proc = subprocess.run(command + [f"{user}:good", "--cases", "2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.startswith("AGREES"), proc.stderr
    assert marker.read_text() == "yes"
    proc = subprocess.run(command + [f"{user}:wrong", "--cases", "2"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1 and "b_h differs" in proc.stdout, proc.stderr


def test_ctrl_c_exits_130_with_one_line(monkeypatch, capsys, tmp_path):
    import comparisons.report.build as report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_report", interrupted)
    assert main(["report", "--out", str(tmp_path), "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())

