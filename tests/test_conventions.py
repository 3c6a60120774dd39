"""Issue 13: min-char-rnn, cs231n / EECS 498 and deeplearning.ai code, checked as it is.

The user's code is loaded from a file, as ``bptt-xval check FILE --convention`` loads it
(tests/styles.py holds the example derivations, written for these tests).
"""

import numpy as np
import pytest

import styles
from comparisons import check_derivation
from comparisons import conventions
from comparisons.check.cases import draw_cases, make_problem, CaseSpace
from comparisons.cli import load_module, main
from reference import torch_autograd


@pytest.fixture
def user_file(tmp_path):
    def write(source, name="student.py"):
        path = tmp_path / name
        path.write_text(source)
        return path
    return write


def module_of(user_file, source):
    return load_module(str(user_file(source)))


# --- min-char-rnn ---------------------------------------------------------------------------

def test_min_char_rnn_correct_agrees(user_file):
    student = module_of(user_file, styles.min_char_source())
    result = check_derivation(conventions.min_char_rnn(student.lossFun), cases=16, seed=1)
    assert result.ok, result.summary()
    assert "h0" in result.not_checked and result.space["inputs"] == "one_hot"
    assert "not checked: h0" in result.summary()


def test_min_char_rnn_batch_is_looped_over(user_file):
    student = module_of(user_file, styles.min_char_source())
    result = check_derivation(conventions.min_char_rnn(student.lossFun), cases=10, seed=2,
                              sizes={"B": (2, 4)}, h0=("vector", "batch"))
    assert result.ok, result.summary()


def test_min_char_rnn_forgotten_equals_is_b_h_identically_zero(user_file):
    student = module_of(user_file, styles.min_char_source("no_equals"))
    result = check_derivation(conventions.min_char_rnn(student.lossFun), cases=12, seed=3, shrink_failures=False)
    assert not result.ok and len(result.failures) == result.cases_run
    for f in result.failures:
        assert f.parameters == ["b_h"] and f.patterns["b_h"] == "identically zero", f.describe()
        assert f.diagnosis == ["zero_gradient"], f.describe()


def test_min_char_rnn_faithful_clip_agrees_and_says_so(user_file):
    student = module_of(user_file, styles.min_char_source("clip"))
    fn = conventions.min_char_rnn(student.lossFun)
    assert fn.clip == 5.0
    result = check_derivation(fn, cases=40, seed=4, shrink_failures=False)
    assert result.ok, result.summary()
    assert "clipped at ±5, as min-char-rnn does" in result.summary()


def test_min_char_rnn_clip_does_not_hide_a_wrong_derivation(user_file):
    source = styles.min_char_source("clip").replace("dbh += dhraw", "dbh + dhraw")
    fn = conventions.min_char_rnn(module_of(user_file, source).lossFun)
    result = check_derivation(fn, cases=12, seed=3, shrink_failures=False)
    assert not result.ok and all(f.parameters == ["b_h"] for f in result.failures)


def test_min_char_rnn_strict_clip_fails_exactly_the_clipped_cases(user_file):
    student = module_of(user_file, styles.min_char_source("clip"))
    fn = conventions.min_char_rnn(student.lossFun, strict_clip=True)
    result = check_derivation(fn, cases=40, seed=4, shrink_failures=False)
    failing = {f.case_id: f for f in result.failures}
    space = CaseSpace.make(**{k: v for k, v in fn.case_space.items()
                              if k in ("sizes", "h0", "inputs", "params", "tie_D_O")}, loss="cross_entropy")
    clipped = 0
    for case in draw_cases(40, 4, hidden="tanh", loss="cross_entropy", reduction="sum", space=space):
        params, xs, ys = make_problem(case)
        exact = torch_autograd.loss_and_grads(params, xs, ys, **case.config())
        needs_clip = max(np.max(np.abs(g)) for k, g in exact.grads.items() if k != "h0") > 5
        clipped += needs_clip
        assert (case.id in failing) == needs_clip, case
        if needs_clip:
            f = failing[case.id]
            assert "clipped_gradients" in f.diagnosis and "c = 5" in f.notes["clipped_gradients"], f.describe()
    assert 0 < clipped < 40


def test_min_char_rnn_globals_restored_also_after_a_raise(user_file):
    student = module_of(user_file, styles.min_char_source().replace(
        "    return loss,", "    if len(inputs) > 3:\n        raise RuntimeError('long')\n    return loss,"))
    before = {k: student.__dict__[k] for k in ("Wxh", "Whh", "Why", "bh", "by", "vocab_size")}
    result = check_derivation(conventions.min_char_rnn(student.lossFun), cases=8, seed=0)
    assert any(f.status == "raised" and "long" in f.reason for f in result.failures)
    assert {k: student.__dict__[k] for k in ("Wxh", "Whh", "Why", "bh", "by", "vocab_size")} == before
    del student.__dict__["vocab_size"]      # a global that was not there stays absent
    conventions.min_char_rnn(student.lossFun)(*make_problem(draw_cases(1, 0, loss="cross_entropy",
                                              space=CaseSpace.make(inputs="one_hot", tie_D_O=True, sizes={"T": 2},
                                                                   loss="cross_entropy"))[0]), loss="cross_entropy",
                                              reduction="sum")
    assert "vocab_size" not in student.__dict__


# --- cs231n and EECS 498 ------------------------------------------------------------------------

@pytest.mark.parametrize("torch", [False, True])
def test_cs231n_correct_agrees_in_numpy_and_torch(user_file, torch):
    student = module_of(user_file, styles.cs231n_source(torch=torch))
    fn = conventions.cs231n(student.rnn_forward, student.rnn_backward)
    for dtype in ("float64", "float32"):
        result = check_derivation(fn, cases=10, seed=5, dtype=dtype, output="sigmoid")
        assert result.ok, result.summary()
        assert "dL_dx" not in result.not_checked          # dx is compared as dL/dx


def test_cs231n_step_pair_checked_as_T_1(user_file):
    student = module_of(user_file, styles.cs231n_source())
    result = check_derivation(conventions.cs231n_step(student.rnn_step_forward, student.rnn_step_backward),
                              cases=10, seed=6)
    assert result.ok, result.summary()
    assert result.space["sizes"] == {"T": [1, 1]}


@pytest.mark.parametrize("torch", [False, True])
def test_cs231n_without_carry_is_diagnosed(user_file, torch):
    student = module_of(user_file, styles.cs231n_source("no_carry", torch=torch))
    result = check_derivation(conventions.cs231n(student.rnn_forward, student.rnn_backward), cases=12, seed=7,
                              shrink_failures=False)
    disagreeing = [f for f in result.failures if f.status == "disagree"]
    assert disagreeing and len(result.failures) == len(disagreeing)
    for f in disagreeing:
        assert "no_recurrent_carry" in f.diagnosis, f.describe()


@pytest.mark.parametrize("torch", [False, True])
def test_cs231n_writing_into_dh_fails_saying_so(user_file, torch):
    student = module_of(user_file, styles.cs231n_source("writes_dh", torch=torch))
    result = check_derivation(conventions.cs231n(student.rnn_forward, student.rnn_backward), cases=6, seed=8)
    assert not result.ok
    assert all(f.status == "raised" and "wrote into" in f.reason and "dh" in f.reason for f in result.failures), \
        result.summary()


# --- deeplearning.ai -----------------------------------------------------------------------------------

def test_deeplearning_ai_correct_agrees(user_file):
    student = module_of(user_file, styles.dlai_source())
    result = check_derivation(conventions.deeplearning_ai(student.rnn_forward, student.rnn_backward),
                              cases=10, seed=9, dtype="both")
    assert result.ok, result.summary()


def test_deeplearning_ai_wrong_keys_is_a_clean_failure(user_file):
    student = module_of(user_file, styles.dlai_source("wrong_keys"))
    result = check_derivation(conventions.deeplearning_ai(student.rnn_forward, student.rnn_backward),
                              cases=4, seed=9)
    assert not result.ok and result.common_failure()[0] == "bad_output"
    assert "'dWa'" in result.common_failure()[1] and "dWax" in result.common_failure()[1]


def test_deeplearning_ai_crash_inside_is_raised_not_a_crash(user_file):
    student = module_of(user_file, styles.dlai_source().replace('g["dxt"], g["da_prev"]', 'g["dx_t"], g["da_prev"]'))
    result = check_derivation(conventions.deeplearning_ai(student.rnn_forward, student.rnn_backward),
                              cases=4, seed=9)
    status, reason = result.common_failure()
    assert status == "raised" and reason.startswith("KeyError: 'dx_t' (at student.py, line ")


# --- the command line -------------------------------------------------------------------------------------

@pytest.mark.parametrize("convention,source,code", [
    ("min-char-rnn", styles.min_char_source(), 0),
    ("min-char-rnn", styles.min_char_source("no_equals"), 1),
    ("cs231n", styles.cs231n_source(), 0),
    ("cs231n", styles.cs231n_source("no_carry"), 1),
    ("deeplearning-ai", styles.dlai_source(), 0),
])
def test_cli_convention(user_file, capsys, convention, source, code):
    assert main(["check", str(user_file(source)), "--convention", convention, "--cases", "6"]) == code
    out = capsys.readouterr().out
    assert ("AGREES" if code == 0 else "DISAGREES") in out


def test_cli_convention_with_other_names(user_file, capsys):
    source = styles.cs231n_source().replace("def rnn_forward", "def forward").replace("def rnn_backward", "def backward")
    path = user_file(source)
    assert main(["check", str(path), "--convention", "cs231n", "--cases", "4"]) == 2
    assert "no function 'rnn_forward'" in capsys.readouterr().err
    assert main(["check", str(path), "--convention", "cs231n", "--fn", "forward,backward", "--cases", "4"]) == 0


@pytest.mark.parametrize("source,message", [
    ("open('input.txt').read()\n", "has no function 'lossFun'"),          # not run: nothing to check
    ("import sys\nsys.exit(3)\n", "has no function 'lossFun'"),
    ("def lossFun(:\n", "line 1: `def lossFun(:`: SyntaxError"),
])
def test_cli_file_without_the_function_is_one_line_exit_2(user_file, capsys, source, message):
    assert main(["check", str(user_file(source)), "--convention", "min-char-rnn"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_fn_without_convention_is_usage(user_file, capsys):
    assert main(["check", f"{user_file(styles.cs231n_source())}:rnn_forward", "--fn", "x"]) == 2
    assert "--fn: only with --convention" in capsys.readouterr().err


def test_adapters_reject_what_is_not_a_function():
    with pytest.raises(TypeError, match="lossFun"):
        conventions.min_char_rnn(None)
    with pytest.raises(TypeError, match="rnn_backward"):
        conventions.cs231n(print, 3)
    with pytest.raises(ValueError, match="arrays"):
        conventions.cs231n(print, print, arrays="cupy")
