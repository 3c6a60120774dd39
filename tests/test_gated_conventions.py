"""Issue 26: the LSTM and GRU halves of the assignments, checked as each course writes them
(tests/gated_wild.py holds the files): correct versions agree, each classic mistake is caught
and named, a file with an RNN and an LSTM gets both checked, the grader takes them; the
stacked references are the per-case ones."""

import numpy as np
import pytest

import gated_wild
import wild
from comparisons import loading
from comparisons.check import gated
from comparisons.check.cases import Case
from comparisons.check.cells import REFERENCES, builtin_cells, make_cell_problem
from comparisons.cli import convention_check, main

SIZES = {"T": (1, 6), "B": (1, 3), "D": (1, 3), "H": (1, 4)}
CASES = 4


def check(path, convention, **options):
    loaded = loading.load(str(path), paths=options.pop("paths", ()))
    fn = convention_check(loaded, str(path), convention, None)
    return gated.check_convention(fn, cases=CASES, seed=3, sizes=SIZES, **options)


# --- every convention agrees when right ----------------------------------------------------------

SOURCES = {
    "cs231n-lstm": ("rnn_layers.py", gated_wild.cs231n_lstm_source),
    "cs231n-lstm-step": ("rnn_layers.py", gated_wild.cs231n_lstm_source),
    "gru": ("gru_layers.py", gated_wild.gru_source),
    "min-char-rnn-lstm": ("min_char_lstm.py", gated_wild.min_char_lstm_source),
}


@pytest.mark.parametrize("convention", sorted(SOURCES))
def test_right_versions_agree(convention, write):
    name, source = SOURCES[convention]
    result = check(write(name, source()), convention)
    assert result.ok, result.summary()
    assert {"torch", "jax"} <= set(result.references)


def test_min_char_lstm_keeping_the_gists_names_agrees_and_its_gate_order_is_measured(write):
    path = write("min_char_stacked.py", gated_wild.MIN_CHAR_LSTM_STACKED)
    loaded = loading.load(str(path))
    fn = convention_check(loaded, str(path), "min-char-rnn-lstm", None)
    result = gated.check_convention(fn, cases=CASES, seed=4, sizes={"T": (2, 6), "D": (2, 4), "H": (1, 4)})
    assert result.ok, result.summary()
    assert fn.layout() == "ifog"                        # i, f, o, g as the file slices a


def test_deeplearning_ai_lstm_notebook_agrees_and_its_dropped_carry_is_named(write):
    helpers = write("helpers/rnn_utils.py", wild.RNN_UTILS).parent
    right = check(write("lstm.ipynb", wild.notebook(gated_wild.dlai_lstm_cells())), "deeplearning-ai-lstm",
                  paths=(str(helpers),))
    assert right.ok, right.summary()
    wrong = check(write("lstm_bug.ipynb", wild.notebook(gated_wild.dlai_lstm_cells("hidden_carry_dropped"))),
                  "deeplearning-ai-lstm", paths=(str(helpers),))
    assert not wrong.ok
    assert any(f.diagnosis == ["hidden_carry_dropped"] for f in wrong.failures), wrong.summary()


# --- each classic mistake caught and named --------------------------------------------------------

@pytest.mark.parametrize("bug", [b for b in gated_wild.CS231N_BUGS if b])
def test_cs231n_lstm_mistakes_are_named(bug, write):
    result = check(write("rnn_layers.py", gated_wild.cs231n_lstm_source(bug)), "cs231n-lstm")
    assert not result.ok
    named = [f for f in result.failures if f.diagnosis]
    assert named and all(f.diagnosis == [bug] for f in named), result.summary()
    assert all(f.shrunk is not None for f in result.failures)


def test_the_step_pair_is_checked_over_time_not_at_t_1(write):
    # the bug sits in the step (c_t for c_{t-1}): the chained harness sees it at T > 1 too
    result = check(write("rnn_layers.py", gated_wild.cs231n_lstm_source("c_t_for_c_prev")), "cs231n-lstm-step")
    assert not result.ok and any(f.case.T > 1 for f in result.failures)
    # a dropped carry lives in lstm_backward: the step pair itself is right
    assert check(write("carry.py", gated_wild.cs231n_lstm_source("cell_carry_dropped")), "cs231n-lstm-step").ok


@pytest.mark.parametrize("bug", ["update_gate_sign", "reset_path_missing"])
def test_gru_mistakes_are_named(bug, write):
    result = check(write("gru_layers.py", gated_wild.gru_source(bug)), "gru")
    assert not result.ok
    assert any(f.diagnosis == [bug] for f in result.failures), result.summary()


def test_min_char_lstm_dropped_cell_carry_is_named_and_its_clip_noted(write):
    result = check(write("min_char_lstm.py", gated_wild.min_char_lstm_source("cell_carry_dropped")),
                   "min-char-rnn-lstm")
    assert not result.ok
    assert any(f.diagnosis == ["cell_carry_dropped"] for f in result.failures), result.summary()
    assert any("clipped at ±5" in n for n in result.notes)


# --- one command, RNN and LSTM; the grader --------------------------------------------------------

def test_a_file_with_rnn_and_lstm_gets_both_checked(write, capsys):
    path = write("rnn_layers.py", gated_wild.cs231n_lstm_source("gate_order_swapped"))
    code = main(["check", str(path), "--cases", "4", "--sizes", "H=1:4,B=1:2"])
    out = capsys.readouterr().out
    assert code == 1                                         # the LSTM half is wrong
    for convention in ("cs231n:", "cs231n-step:", "cs231n-lstm:", "cs231n-lstm-step:"):
        assert f"== {convention}" in out
    verdicts = [line.split(":")[0] for line in out.splitlines() if line.split(":")[0] in ("AGREES", "DISAGREES")]
    assert verdicts == ["AGREES", "AGREES", "DISAGREES", "DISAGREES"], out
    assert "gate_order_swapped" in out and "temporal_affine_forward" in out   # named as not checked


def test_grading_a_class_of_lstm_submissions(tmp_path, capsys):
    import csv

    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "alice.py").write_text(gated_wild.cs231n_lstm_source())
    (folder / "bob.py").write_text(gated_wild.cs231n_lstm_source("tanh_prime_of_h"))
    code = main(["grade", str(folder), "--convention", "cs231n-lstm", "--cases", "6", "--out", str(tmp_path / "out"),
                 "--workers", "1"])
    assert code == 0, capsys.readouterr()
    rows = {r["file"]: r for r in csv.DictReader(open(tmp_path / "out" / "gradebook.csv"))}
    assert rows["alice.py"]["verdict"] == "agree"
    assert rows["bob.py"]["verdict"] == "disagree" and rows["bob.py"]["diagnosis"] == "tanh_prime_of_h"


# --- the stacked references are the per-case ones ------------------------------------------------

@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_stacked_references_equal_per_case_references(name):
    cell = builtin_cells()[name]
    cases = [Case(seed=s, T=T, B=B, D=D, H=H, O=O, dtype=d) for s, (T, B, D, H, O, d) in enumerate(
        [(3, 2, 2, 3, 2, "float64"), (7, 1, 3, 1, 1, "float64"), (2, 3, 1, 5, 3, "float32"), (12, 2, 2, 10, 2, "float64")])]
    arrays = []
    for c in cases:
        p, x, y = make_cell_problem(c, cell.param_shapes)
        arrays.append(({k: v.astype(np.float64) for k, v in p.items()}, x.astype(np.float64), y.astype(np.float64)))
    stacked = gated.references(cell.step, cases, arrays, cell.param_shapes, len(cell.state), ("torch", "jax"))
    for (results, magnitude, _), (p, x, y) in zip(stacked, arrays):
        for ref in ("torch", "jax"):
            single = REFERENCES[ref](cell.step, p, x, y, n_state=len(cell.state), output="identity",
                                     loss="squared_error", reduction="mean")
            mine = results[ref]
            assert abs(mine.loss - single.loss) <= 1e-13 * abs(single.loss)
            for k, g in single.grads.items():
                np.testing.assert_allclose(mine.grads[k], g, rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(mine.dL_dh, single.dL_dh, rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(mine.grads["h0"], single.dL_dh[0], rtol=1e-10, atol=1e-14)
        assert magnitude is not None and np.isfinite(magnitude["amplification"])


def test_bad_input_to_a_gated_adapter_names_the_argument(write):
    from comparisons.conventions import cs231n_lstm

    fn = cs231n_lstm(lambda *a: None, lambda *a: None)
    with pytest.raises(KeyError, match="params: expected keys"):
        fn({"W": np.zeros((2, 2))}, np.zeros((1, 1, 1)), np.zeros((1, 1, 1)))
    params, xs, ys = make_cell_problem(Case(seed=0, T=2, B=1, D=1, H=1, O=1), builtin_cells()["lstm"].param_shapes)
    with pytest.raises(ValueError, match="xs: expected finite"):
        fn(params, np.full_like(xs, np.nan), ys)
    with pytest.raises(ValueError, match="truncate"):
        fn(params, xs, ys, truncate=2)


# --- the gated soak's blocks and the gated resolving power ------------------------------------------

def test_a_gated_soak_block_runs_exactly_its_cases_without_false_alarms():
    from comparisons.measure.soak import gated_blocks, run_gated_block

    per_block, n_blocks = gated_blocks(30)
    assert per_block * n_blocks >= 30
    tally = run_gated_block(7, 1, 8, ("torch", "jax"))
    assert tally["cases"] == 8 and tally["false_alarms"] == [], tally
    assert tally["cell"] == "lstm" and max(tally["max_error_over_tolerance"].values()) < 1


def test_gated_resolving_power_catches_large_planted_errors_and_not_rounding_sized_ones():
    from comparisons.measure.resolve import gated_resolving_power

    power = gated_resolving_power("gru", cases=6, seed=2, references=("torch",))
    for dtype, large, small in (("float32", "1e-02", "1e-06"), ("float64", "1e-09", "1e-14")):
        caught = power[dtype]["caught"]
        assert set(caught) == {"W_hh[r]", "W_hh[z]", "W_hh[n]"}
        assert all(shares[large] >= 0.5 for shares in caught.values()), caught
        assert all(shares[small] == 0.0 for shares in caught.values()), caught


def test_an_eecs498_lstm_on_torch_tensors_agrees(write):
    # tensor methods (x.mm) that NumPy arrays lack: the adapter hands torch tensors over
    result = check(write("rnn_lstm_captioning.py", gated_wild.EECS498_LSTM), "cs231n-lstm")
    assert result.ok, result.summary()



def test_a_deeplearning_ai_notebook_with_a_wrong_lstm_is_never_reported_agrees(write, capsys):
    # the four notebooks: the RNN half right, lstm_backward dropping the hidden
    # carry, reported AGREES because only the RNN functions were checked
    helpers = write("course/rnn_utils.py", wild.RNN_UTILS).parent
    write("course/public_tests.py", wild.PUBLIC_TESTS)
    cells = wild.dlai_cells() + gated_wild.dlai_lstm_cells("hidden_carry_dropped")[1:]
    path = write("Building_RNN_Step_by_Step.ipynb", wild.notebook(cells))
    code = main(["check", str(path), "--path", str(helpers), "--cases", "4", "--sizes", "H=1:4,B=1:2"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "== deeplearning-ai: rnn_forward, rnn_backward ==\nAGREES" in out
    assert "== deeplearning-ai-lstm: lstm_forward, lstm_backward ==\nDISAGREES" in out
    assert "hidden_carry_dropped" in out


# --- d2l's GRU: the reset gate before the product ---------------------------------------------------

def test_d2l_gru_from_scratch_agrees_and_is_detected(write):
    path = write("gru_scratch.py", gated_wild.d2l_gru_source())
    loaded = loading.load(str(path))
    from comparisons.conventions import detect
    assert ("d2l-gru", ("gru", "gru_backward")) in detect({k: loaded.function(k) for k in loaded.functions})
    result = check(path, "d2l-gru")
    assert result.ok, result.summary()
    assert {"torch", "jax"} <= set(result.references)


@pytest.mark.parametrize("bug", [b for b in gated_wild.D2L_BUGS if b])
def test_d2l_gru_mistakes_are_named(bug, write):
    result = check(write("gru_scratch.py", gated_wild.d2l_gru_source(bug)), "d2l-gru")
    assert not result.ok
    named = [f for f in result.failures if f.diagnosis]
    assert named and all(f.diagnosis == [bug] for f in named), result.summary()
    assert any("W_hc is d2l's W_hh^T" in n for n in result.notes)
