"""Issue 41: a right file is never told it fails. A verdict is about the gradients: a write
into an array the course's own loop never reads again is a note, judged on copies; a
convention guessed from names is tried on one small case before it is used; and the files
real courses hand out (classes, cell functions, several files, helpers left out, templates
left unwritten) reach a verdict on their gradients. The files are in tests/wild.py and
tests/gated_wild.py, written in each course's style for these tests."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gated_wild
from comparisons.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- 1. writes into the caller's arrays ---------------------------------------------------------

def test_a_right_lstm_step_that_adds_into_dnext_c_agrees_with_a_note(write, capsys):
    path = write("rnn_layers.py", gated_wild.cs231n_lstm_in_place_source())
    code, out, err = run(["check", str(path), "--convention", "cs231n-lstm-step", "--cases", "8"], capsys)
    assert code == 0, out + err
    assert out.startswith("AGREES: 8 of 8")
    assert "note: lstm_step_backward writes into dnext_c, which the caller owns" in out
    assert "RAISES" not in out and "InputModified" not in out


def test_strict_inputs_fails_the_same_write(write, capsys):
    path = write("rnn_layers.py", gated_wild.cs231n_lstm_in_place_source())
    code, out, err = run(["check", str(path), "--convention", "cs231n-lstm-step", "--cases", "4",
                          "--strict-inputs"], capsys)
    assert code == 1, out + err
    assert "InputModified: lstm_step_backward wrote into dnext_c" in out and "--strict-inputs" in out


def test_a_wrong_step_that_writes_is_still_caught_and_named(write, capsys):
    # judged on copies: the write hides nothing of what its gradients get wrong
    path = write("rnn_layers.py", gated_wild.cs231n_lstm_in_place_source("c_t_for_c_prev"))
    code, out, err = run(["check", str(path), "--convention", "cs231n-lstm-step", "--cases", "8", "--json"], capsys)
    assert code == 1, out + err
    result = json.loads(out)
    assert result["failures"] and all(f["status"] == "disagree" for f in result["failures"])
    assert any("writes into dnext_c" in n for n in result["notes"])


def test_a_sequence_backward_writing_into_the_dh_it_is_handed_still_fails(write, capsys):
    # the course's caller reads dh again (its numeric check reuses it): there the write stays the failure
    source = gated_wild.cs231n_lstm_source().replace(
        "lstm_step_backward(dh[:, t, :] + dprev_h,", "lstm_step_backward(dh[:, t, :].__iadd__(dprev_h),")
    assert "__iadd__" in source
    code, out, err = run(["check", str(write("rnn_layers.py", source)), "--convention", "cs231n-lstm", "--cases", "3"],
                         capsys)
    assert code == 1, out + err
    assert "wrote into its upstream gradient dh" in out


def test_grade_notes_the_write_in_its_column_and_agrees(write, tmp_path):
    folder = tmp_path / "class"
    write("class/writes.py", gated_wild.cs231n_lstm_in_place_source())
    write("class/clean.py", gated_wild.cs231n_lstm_source())
    for strict in (False, True):
        out = tmp_path / f"book{strict}"
        run_ = subprocess.run([sys.executable, "-m", "comparisons.cli", "grade", str(folder), "--convention",
                               "cs231n-lstm-step", "--cases", "3", "--out", str(out), "--workers", "2",
                               *(["--strict-inputs"] if strict else [])],
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert run_.returncode == 0, run_.stdout + run_.stderr
        rows = json.loads((out / "gradebook.json").read_text())["rows"]
        assert rows["clean.py"]["verdict"] == "agree" and rows["clean.py"]["writes"] == ""
        if strict:
            assert rows["writes.py"]["verdict"] == "raised", rows["writes.py"]
        else:
            assert rows["writes.py"]["verdict"] == "agree", rows["writes.py"]
            assert "writes into dnext_c" in rows["writes.py"]["writes"]
