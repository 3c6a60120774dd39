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


# --- 2. a detected convention is proven before it is used ----------------------------------------

def test_an_lstm_for_one_sequence_is_checked_without_a_batch_axis(write, capsys):
    path = write("lstm_one.py", gated_wild.lstm_one_sequence_source())
    code, out, err = run(["check", str(path), "--cases", "6"], capsys)
    assert code == 0, out + err
    assert out.count("AGREES: 6 of 6") == 2
    assert "lstm_forward takes one sequence without a batch axis (x (3, 5), h0 (4,)): checked with B = 1" in out


def test_its_mistake_is_still_caught_in_that_layout(write, capsys):
    path = write("lstm_one.py", gated_wild.lstm_one_sequence_source("dh0_zero"))
    code, out, err = run(["check", str(path), "--convention", "cs231n-lstm", "--cases", "6", "--json"], capsys)
    assert code == 1, out + err
    result = json.loads(out)
    assert {f["status"] for f in result["failures"]} == {"disagree"}
    assert all(f["parameter"] == "h0" for f in result["failures"]), result["failures"]


def test_a_layout_that_fits_neither_way_is_said_with_exit_2_never_disagrees(write, capsys):
    path = write("layer.py", "import numpy as np\n\n"
                             "def lstm_forward(x, h0, Wx, Wh, b):\n"
                             "    D, T = x.shape[-2:]\n"        # axes the other way round, one sequence or not
                             "    return np.zeros((T, D, 2, 2)), None\n\n"
                             "def lstm_backward(dh, cache):\n    return None\n")
    code, out, err = run(["check", str(path), "--cases", "4"], capsys)
    assert code == 2, out + err
    assert "DISAGREES" not in out + err and "RAISES" not in out + err
    assert "has the cs231n-lstm convention's name and arity but not its layout" in err
    assert "on x (2, 3, 5), h0 (2, 4)" in err and "on x (3, 5), h0 (4,)" in err


def test_a_backward_that_raises_in_a_fitting_layout_is_the_derivations_own(write, capsys):
    # the forward takes the layout: the backward's error is the code's, and the verdict says it
    source = gated_wild.cs231n_lstm_source().replace("dx = da.dot(Wx.T)", "dx = da.dot(Wx)")
    code, out, err = run(["check", str(write("rnn_layers.py", source)), "--cases", "3"], capsys)
    assert code == 1, out + err
    assert "RAISES ValueError" in out and "not its layout" not in out + err


def test_a_single_sequence_adapter_refuses_a_batch():
    from comparisons import conventions
    from conftest import small_problem
    import numpy as np

    fn = conventions.cs231n(lambda x, h0, Wx, Wh, b: (np.zeros((3, 4)), None), lambda dh, c: None, batch=False)
    params, xs, ys = small_problem(B=2)
    with pytest.raises(ValueError, match="single-sequence layout takes one sequence"):
        fn(params, xs, ys)
