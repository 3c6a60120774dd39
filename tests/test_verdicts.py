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


# --- 5. deeplearning.ai's cell functions, checked on their own -----------------------------------

def test_dlai_rnn_cells_are_detected_and_checked_over_time(course, tmp_path, capsys):
    import wild
    path = course("student/rnn.ipynb", wild.notebook(wild.dlai_cells()))
    code, out, err = run(["check", str(path), "--path", str(tmp_path / "course"), "--cases", "6"], capsys)
    assert code == 0, out + err
    assert "== deeplearning-ai-step: rnn_cell_forward, rnn_cell_backward ==\nAGREES: 6 of 6" in out
    # tanh' of a_prev in the cell: caught by the cell's own check, on the cell's name
    wrong = [c.replace("(1 - a_next ** 2) * da_next", "(1 - a_prev ** 2) * da_next") for c in wild.dlai_cells()]
    path = course("student/rnn_bug.ipynb", wild.notebook(wrong))
    code, out, err = run(["check", str(path), "--convention", "deeplearning-ai-step", "--path",
                          str(tmp_path / "course"), "--cases", "6"], capsys)
    assert code == 1 and out.startswith("DISAGREES"), out + err


def test_dlai_lstm_cells_agree_and_a_cell_slip_is_caught_where_a_dropped_carry_is_not_the_cells(
        course, tmp_path, capsys):
    course_dir = str(tmp_path / "course")
    right = course("student/lstm.ipynb", wild_notebook(gated_wild.dlai_lstm_cells()))
    code, out, err = run(["check", str(right), "--path", course_dir, "--cases", "6"], capsys)
    assert code == 0, out + err
    assert "== deeplearning-ai-lstm-step: lstm_cell_forward, lstm_cell_backward ==\nAGREES: 6 of 6" in out
    # dc_prev without its tanh' path: the cell's own slip
    slip = [c.replace("dc_prev = dc_next * ft + ot * (1 - np.square(np.tanh(c_next))) * ft * da_next",
                      "dc_prev = dc_next * ft") for c in gated_wild.dlai_lstm_cells()]
    assert slip != gated_wild.dlai_lstm_cells()
    code, out, err = run(["check", str(course("student/slip.ipynb", wild_notebook(slip))), "--convention",
                          "deeplearning-ai-lstm-step", "--path", course_dir, "--cases", "6"], capsys)
    assert code == 1 and out.startswith("DISAGREES"), out + err
    # the dropped carry lives in lstm_backward: the cells are right, and their check says so
    dropped = course("student/dropped.ipynb", wild_notebook(gated_wild.dlai_lstm_cells("hidden_carry_dropped")))
    code, out, err = run(["check", str(dropped), "--path", course_dir, "--cases", "6", "--json"], capsys)
    checks = {c["convention"]: c for c in json.loads(out)["checks"]}
    assert checks["deeplearning-ai-lstm-step"]["ok"] and not checks["deeplearning-ai-lstm"]["ok"]


def wild_notebook(cells):
    import wild
    return wild.notebook(cells)


# --- 3. cells written as classes ------------------------------------------------------------------

CLASS_FILES = {
    "class-gru": ("gru_cell.py", gated_wild.gru_cell_785_source),
    "class-gru-2019": ("gru.py", gated_wild.gru_cell_2019_source),
    "class-lstm": ("lstm_cell.py", lambda bug=None: gated_wild.LSTM_CELL_CLASS),
    "karpathy-lstm": ("lstm.py", gated_wild.karpathy_lstm_source),
}


@pytest.mark.parametrize("convention", sorted(CLASS_FILES))
def test_a_right_class_is_detected_by_its_methods_and_attributes_and_agrees(convention, write, capsys):
    name, source = CLASS_FILES[convention]
    code, out, err = run(["check", str(write(name, source())), "--cases", "6"], capsys)
    assert code == 0, out + err
    assert out.startswith("AGREES: 6 of 6")
    assert f"convention detected: {convention} (" in out
    not_checked = [line for line in out.splitlines() if "functions not checked" in line]
    assert not any("__init__" in line for line in not_checked), out   # the check runs the constructor


@pytest.mark.parametrize("convention, bug, diagnosis", [
    ("class-gru", "z_carry_dropped", "update_carry_dropped"),
    ("class-gru", "reset_dropped_in_dWnh", None),
    ("class-gru-2019", "reset_dropped_in_dWh", None),
    ("class-gru-2019", "carry_through_z", None),
    ("karpathy-lstm", "forget_carry_dropped", "cell_carry_dropped"),
])
def test_a_wrong_class_is_caught_and_named(convention, bug, diagnosis, write, capsys):
    name, source = CLASS_FILES[convention]
    code, out, err = run(["check", str(write(name, source(bug))), "--cases", "8", "--json"], capsys)
    assert code == 1, out + err
    result = json.loads(out)
    assert result["failures"] and {f["status"] for f in result["failures"]} == {"disagree"}
    if diagnosis:
        assert any(f["diagnosis"] == [diagnosis] for f in result["failures"]), result["failures"]


def test_a_2019_gru_cell_written_for_a_flat_delta_gets_one_and_agrees(write, capsys):
    # the course handed delta as (1, H); a cell whose products only fit (H,) is handed that
    code, out, err = run(["check", str(write("gru.py", gated_wild.gru_cell_2019_source("flat_delta"))),
                          "--cases", "6"], capsys)
    assert code == 0 and out.startswith("AGREES: 6 of 6"), out + err


def test_a_2019_gru_cell_whose_forward_is_pytorchs_is_told_so_not_judged(write, capsys):
    code, out, err = run(["check", str(write("gru.py", gated_wild.gru_cell_2019_source("pytorch_forward"))),
                          "--cases", "4"], capsys)
    assert code == 2, out + err
    assert "torch.nn.GRUCell's equations without biases" in err and "DISAGREES" not in out


def test_the_2019_mapping_carries_every_bias_and_negates_z_exactly():
    """The suite's gru_d2l parameters through the 2019 layout and back: the weights handed to
    the cell and the gradients read from it are exact moves (a negation, a column), so the
    styled 2019 class's gradients equal the suite's own gru_d2l derivation (manual.gated) to
    rounding, biases included."""
    import numpy as np

    from comparisons.measure.styled import candidates
    from manual.gated import CELLS

    rng = np.random.default_rng(7)
    T, B, D, H, O = 4, 2, 3, 5, 2
    params = {"W_ih": rng.normal(size=(3 * H, D)) / np.sqrt(D), "W_hh": rng.normal(size=(2 * H, H)) / np.sqrt(H),
              "W_hc": rng.normal(size=(H, H)) / np.sqrt(H), "b": 0.3 * rng.normal(size=3 * H),
              "W_hy": rng.normal(size=(O, H)) / np.sqrt(H), "b_y": 0.1 * rng.normal(size=O)}
    xs, ys = rng.normal(size=(T, B, D)), rng.uniform(-1, 1, size=(T, B, O))
    got = candidates()["class-gru-2019"](params, xs, ys, reduction="sum")
    want = CELLS["gru_d2l"](params, xs, ys, reduction="sum")
    assert abs(got.loss - want.loss) <= 1e-12 * abs(want.loss)
    for k in ("W_ih", "W_hh", "W_hc", "b"):
        assert np.abs(want.grads[k]).max() > 1e-3, k       # a bias the mapping dropped would read as zero
        np.testing.assert_allclose(got.grads[k], want.grads[k], rtol=1e-10, atol=1e-13, err_msg=k)


def test_a_class_of_other_weights_is_not_taken_for_a_gru(write, capsys):
    source = ("import numpy as np\n\nclass Linear:\n    def __init__(self, d, h):\n        self.W = np.zeros((h, d))\n"
              "    def forward(self, x, h):\n        return self.W @ x\n    def backward(self, delta):\n"
              "        return delta\n")
    code, out, err = run(["check", str(write("linear.py", source)), "--cases", "2"], capsys)
    assert code == 2 and "defines no function of a known convention" in err


# --- 4. by role, not by name ----------------------------------------------------------------------

def test_a_renamed_min_char_lstm_with_a_wcc_candidate_is_found_by_its_role(write, capsys):
    import re
    source = re.sub(r"\bWc\b", "Wcc", gated_wild.min_char_lstm_source())
    source = re.sub(r"\bdWc\b", "dWcc", source).replace("lossFun(", "lossfn(")
    assert "Wcc" in source and "lossFun" not in source
    code, out, err = run(["check", str(write("char_lstm.py", source)), "--cases", "4"], capsys)
    assert code == 0, out + err
    assert "convention detected: min-char-rnn-lstm (lossfn)" in out


def test_a_keyword_with_a_default_is_never_the_lstms_cprev(write, capsys):
    import wild
    source = wild.min_char_py2_source().replace("def lossFun(inputs, targets, hprev):",
                                                "def lossFun(inputs, targets, hprev, loss_function='softmax'):")
    assert "loss_function='softmax'" in source
    code, out, err = run(["check", str(write("char_rnn.py", source)), "--cases", "4"], capsys)
    assert code == 0, out + err
    assert "convention detected: min-char-rnn (lossFun)" in out and "min-char-rnn-lstm" not in out


def test_a_renamed_min_char_rnn_is_detected_and_its_file_func_advice_runs(write, capsys):
    import wild
    source = wild.min_char_py2_source().replace("lossFun", "compute_loss_and_gradients")
    path = write("char_rnn.py", source)
    code, out, err = run(["check", str(path), "--cases", "4"], capsys)
    assert code == 0 and "min-char-rnn (compute_loss_and_gradients)" in out, out + err
    code, out, err = run(["check", f"{path}:compute_loss_and_gradients", "--cases", "4"], capsys)
    assert code == 2
    advice = err.split("bptt-xval check ", 1)[1].split()
    code, out, err = run(["check", *advice, "--cases", "4"], capsys)      # the advice, as printed, runs
    assert code == 0, out + err


# --- 8. loading where SIGALRM and fork do not exist (Windows) -------------------------------------

def test_check_works_and_a_hang_is_stopped_without_sigalrm_or_fork(write, capsys, monkeypatch):
    import signal
    from comparisons import loading
    monkeypatch.delattr(signal, "SIGALRM", raising=False)
    monkeypatch.delattr(signal, "setitimer", raising=False)
    monkeypatch.delattr(os, "fork", raising=False)
    path = write("rnn_layers.py", gated_wild.cs231n_lstm_source())
    code, out, err = run(["check", str(path), "--convention", "cs231n-lstm", "--cases", "3"], capsys)
    assert code == 0, out + err
    hang = write("hang.py", "N = max(i for i in range(10 ** 12))\n")
    with pytest.raises(loading.LoadError, match="did not finish in 1 s"):
        loading.load(str(hang), timeout=1.0)
    # and where something set SIGINT aside (a library, a parent process that ignores it), the
    # timer's interrupt still arrives, and SIGINT is left as it was found
    monkeypatch.setattr(signal, "getsignal", signal.getsignal)
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(loading.LoadError, match="did not finish in 1 s"):
            loading.load(str(hang), timeout=1.0)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_template_left_unwritten_is_not_written_with_its_line_not_bad_output(write, capsys):
    import wild
    text = wild.dlai_cells()
    blank = [c.replace(c[c.index("    (a_next, a_prev, xt, parameters) = cache"):],
                       "    ### START CODE HERE ###\n    dxt = None\n    da_prev = None\n    dWax = None\n"
                       "    dWaa = None\n    dba = None\n    ### END CODE HERE ###\n"
                       "    gradients = {'dxt': dxt, 'da_prev': da_prev, 'dWax': dWax, 'dWaa': dWaa, 'dba': dba}\n"
                       "    return gradients") if c.startswith("def rnn_cell_backward") else c for c in text]
    assert blank != text
    path = write("course/rnn_utils.py", wild.RNN_UTILS).parent
    nb = write("student/rnn.ipynb", wild.notebook(blank))
    code, out, err = run(["check", str(nb), "--path", str(path), "--cases", "3"], capsys)
    assert code == 1, out + err
    assert "NOT WRITTEN: rnn_cell_backward (rnn.ipynb, cell 7, line 1) is the course's template" in out
    assert "BAD OUTPUT" not in out and "RAISES" not in out


# --- 6. a course's helper module left behind ------------------------------------------------------

def test_a_notebook_without_its_rnn_utils_uses_the_suites_and_says_so(write, capsys):
    import wild
    path = write("alone/lstm.ipynb", wild.notebook(gated_wild.dlai_lstm_cells()))     # no rnn_utils.py beside it
    code, out, err = run(["check", str(path), "--cases", "4"], capsys)
    assert code == 0, out + err
    assert out.count("AGREES: 4 of 4") == 2
    assert "rnn_utils not found beside the file: the suite's own softmax, sigmoid used in its place" in out
    assert "--path DIR" in out and "--stub rnn_utils" not in out
    # with the course's copy on --path, its own is used and nothing is said
    course = write("course/rnn_utils.py", wild.RNN_UTILS).parent
    code, out, err = run(["check", str(path), "--path", str(course), "--cases", "4"], capsys)
    assert code == 0 and "not found beside the file" not in out, out + err


@pytest.mark.parametrize("importing", gated_wild.MYTORCH_IMPORTS)
def test_an_11785_gru_cell_without_its_mytorch_activations_uses_the_suites_and_agrees(importing, write, capsys):
    """11-785's cells hold activation objects of the course's mytorch (``self.r_act =
    Sigmoid()``); a gru_cell.py kept without mytorch/ used to raise in every case (its
    ``__init__`` failed, so the cell had no ``r_act``): right code told it fails."""
    path = write("hw3/gru_cell.py", gated_wild.gru_cell_785_mytorch_source(importing))
    code, out, err = run(["check", str(path), "--cases", "4"], capsys)
    assert code == 0, out + err
    assert out.startswith("AGREES: 4 of 4") and "convention detected: class-gru" in out
    module = importing.split()[1].lstrip(".")
    assert (f"{module} not found beside the file: the suite's own Activation, Identity, Sigmoid, Tanh, ReLU used "
            f"in its place") in out
    assert "--path DIR, the folder holding the course's activation.py" in out and "--stub" not in out


def test_an_11785_gru_cell_with_its_own_activations_uses_them_and_a_slip_is_still_caught(write, capsys):
    course = write("mytorch/activation.py", gated_wild.MYTORCH_ACTIVATION).parent
    path = write("hw3/gru_cell.py", gated_wild.gru_cell_785_mytorch_source("from activation import *"))
    code, out, err = run(["check", str(path), "--path", str(course), "--cases", "4"], capsys)
    assert code == 0 and "not found beside the file" not in out, out + err
    wrong = write("hw3/wrong.py", gated_wild.gru_cell_785_mytorch_source(bug="reset_dropped_in_dWnh"))
    code, out, err = run(["check", str(wrong), "--cases", "4"], capsys)
    assert code == 1 and out.startswith("DISAGREES") and "Wnh" in out, out + err


def test_the_suites_11785_activations_serve_both_generations_of_the_hand_out():
    import numpy as np

    from comparisons.course_helpers import ReLU, Sigmoid, Tanh

    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    s, t, r = Sigmoid(), Tanh(), ReLU()
    assert np.array_equal(s(x), s.forward(x)) and np.array_equal(s.state, 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(s.derivative(), s.state * (1 - s.state))
    np.testing.assert_allclose(s.backward(2 * x), 2 * x * s.derivative())
    kept = t(x)
    t(3 * x)                                  # a later step's forward: the kept state still serves
    np.testing.assert_allclose(t.derivative(state=kept), 1 - np.tanh(x) ** 2)
    np.testing.assert_allclose(t.backward(x, state=kept), x * (1 - np.tanh(x) ** 2))
    np.testing.assert_allclose(t.derivative(), 1 - np.tanh(3 * x) ** 2)
    given = x.copy()
    assert np.array_equal(r(given), np.maximum(x, 0)) and np.array_equal(given, x)   # the input left as it was
    assert np.array_equal(r.backward(np.ones(5)), (x > 0).astype(float))


# --- 9. the rest of the assignment: the non-recurrent layers --------------------------------------

def test_every_layer_a_cs231n_file_pairs_with_its_forward_is_checked(write, capsys):
    import wild
    code, out, err = run(["check", str(write("layers.py", wild.cs231n_pieces_source())), "--cases", "30"], capsys)
    assert code == 0, out + err
    for piece in ("affine", "word_embedding", "temporal_affine", "temporal_softmax_loss"):
        assert f"== layer:{piece}:" in out
    assert out.count("AGREES: 30 of 30 cases agree with torch") == 4
    assert "functions not checked" not in out


@pytest.mark.parametrize("bug, piece, wrong", [("embedding_repeats_lost", "word_embedding", "dW differs"),
                                               ("softmax_mask_dropped", "temporal_softmax_loss", "dx differs"),
                                               ("temporal_db_one_axis", "temporal_affine", "db")])
def test_a_layers_classic_slip_is_caught_on_its_gradient(bug, piece, wrong, write, capsys):
    import wild
    code, out, err = run(["check", str(write("layers.py", wild.cs231n_pieces_source(bug))), "--cases", "30",
                          "--json"], capsys)
    assert code == 1, out + err
    checks = {c["convention"]: c for c in json.loads(out)["checks"]}
    assert not checks[f"layer:{piece}"]["ok"]
    assert all(wrong in f["reason"] for f in checks[f"layer:{piece}"]["failures"])
    assert all(c["ok"] for name, c in checks.items() if name != f"layer:{piece}")


# --- 7. several files of one assignment -----------------------------------------------------------

def test_an_assignment_split_across_files_is_checked_every_way_a_student_asks(write, tmp_path, capsys):
    import wild
    for name, text in wild.split_rnn_files().items():
        write(f"hw/{name}", text)
    hw = tmp_path / "hw"
    for argv in ([str(hw / "rnn_backward.py")], [str(hw / "rnn_forward.py"), str(hw / "rnn_backward.py")],
                 [str(hw)]):
        code, out, err = run(["check", *argv, "--cases", "4"], capsys)
        assert code == 0, (argv, out + err)
        assert "cs231n (rnn_forward, rnn_backward)" in out and "cs231n-step (rnn_step_forward, rnn_step_backward)" in out
        assert out.count("AGREES: 4 of 4") == 2


def test_several_files_name_each_ones_loading_and_refuse_a_function_among_them(write, tmp_path, capsys):
    import wild
    for name, text in wild.split_rnn_files().items():
        write(f"hw/{name}", text)
    hw = tmp_path / "hw"
    code, out, err = run(["check", str(hw / "rnn_forward.py:rnn_forward"), str(hw / "rnn_backward.py")], capsys)
    assert code == 2 and "name a function of one file only" in err
    code, out, err = run(["check", str(tmp_path / "empty_dir_that_is_missing")], capsys)
    assert code == 2


def test_python2_tabs_mixed_with_spaces_are_expanded_as_python2_read_them(write):
    from comparisons import loading
    path = write("tabs.py", "import numpy as np\n\ndef lossFun(inputs, targets, hprev):\n\tx = 1\n"
                            "        y = x + 1\n\treturn y\n")
    loaded = loading.load(str(path))
    assert loaded.module.lossFun(None, None, None) == 2
    assert any("tabs in indentation expanded to 8 columns" in r for r in loaded.rewrites)


def test_automagics_and_a_broken_cell_are_named_with_their_reason(write):
    import wild
    from comparisons import loading
    cells = ["# hw", "cd '/content/drive/My Drive/cs231n/assignment3'", "import numpy as np", "pwd",
             "def f(x):\n    return x +", "def g(x):\n    return 2 * x"]
    loaded = loading.load(str(write("nb.ipynb", wild.notebook(cells))))
    said = " ".join(loaded.report_lines())
    assert "cell 2, line 1 `cd '/content/drive/My Drive/cs231n/assignment3'` (an IPython automagic" in said
    assert "cell 4, line 1 `pwd` (an IPython automagic" in said
    assert "cell 5, line 2 `return x +` (SyntaxError" in said
    assert "octal" not in said and loaded.module.g(2) == 4


def test_a_star_args_signature_is_accepted(write, capsys):
    source = gated_wild.cs231n_lstm_source().replace("def lstm_forward(x, h0, Wx, Wh, b):",
                                                     "def lstm_forward(*args):\n    x, h0, Wx, Wh, b = args")
    assert "def lstm_forward(*args):" in source
    code, out, err = run(["check", str(write("rnn_layers.py", source)), "--cases", "3"], capsys)
    assert code == 0 and "cs231n-lstm (lstm_forward, lstm_backward)" in out, out + err
