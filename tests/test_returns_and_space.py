"""Issue 12: any honest return, a narrowed case space, dL/dx, more diagnosed mistakes.

The example derivations below are written the way people write them (a loop over t,
plain tuples, no h0, clipping, a forgotten `=`), not the way our contract does.
"""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comparisons import check_derivation
from comparisons.check.cases import CaseSpace, draw_cases
from comparisons.cli import main
from comparisons.check.strategies import cases as case_strategy
from reference import jax_grad, torch_autograd


def bptt(params, xs, ys, *, hidden="tanh", output="identity", loss="squared_error",
         reduction="mean", truncate=None, mistake=None):
    """A tanh RNN's BPTT as a student writes it: one loop forward, one loop back, a plain
    tuple at the end. Handles the contract's default configuration only."""
    Wxh, Whh, bh, Why, by = (params[k] for k in ("W_xh", "W_hh", "b_h", "W_hy", "b_y"))
    T, B, _ = xs.shape
    H = Whh.shape[0]
    hs = {-1: np.broadcast_to(params.get("h0", np.zeros(H)), (B, H))}
    ys_hat, loss_value = {}, 0.0
    for t in range(T):
        hs[t] = np.tanh(xs[t] @ Wxh.T + hs[t - 1] @ Whh.T + bh)
        ys_hat[t] = hs[t] @ Why.T + by
        loss_value += 0.5 * np.sum((ys_hat[t] - ys[t]) ** 2) / (T * B)
    dWxh, dWhh, dbh = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(bh)
    dWhy, dby = np.zeros_like(Why), np.zeros_like(by)
    dhnext = np.zeros((B, H))
    dh_all = np.zeros((T + 1, B, H))
    dx = np.zeros_like(xs)
    for t in reversed(range(T)):
        dy = (ys_hat[t] - ys[t]) / (T if mistake == "batch_sum" else T * B)
        dWhy += dy.T @ hs[t]
        dby += dy.sum(0)
        dh = dy @ Why + dhnext
        dh_all[t + 1] = dh
        dhraw = (1 - hs[t] ** 2) * dh
        if mistake == "no_equals":
            dbh + dhraw.sum(0)          # noqa: B018 - the bug under test: `+` where `+=` was meant
        else:
            dbh += dhraw.sum(0)
        dWxh += dhraw.T @ xs[t]
        dWhh += dhraw.T @ hs[t - 1]
        dx[t] = dhraw @ (Whh if mistake == "dx_with_Whh" else Wxh)
        dhnext = dhraw @ Whh
    dh_all[0] = dhnext
    grads = {"W_xh": dWxh, "W_hh": dWhh, "b_h": dbh, "W_hy": dWhy, "b_y": dby}
    if "h0" in params:
        grads["h0"] = dhnext if params["h0"].ndim == 2 else dhnext.sum(0)
    if mistake == "clip":
        for k in grads:
            np.clip(grads[k], -0.05, 0.05, out=grads[k])
    if mistake == "triple":
        return loss_value, grads, dh_all
    return loss_value, grads, dh_all, dx


def plain_triple(params, xs, ys, **config):
    return bptt(params, xs, ys, mistake="triple", **config)


def plain_quadruple(params, xs, ys, **config):
    return bptt(params, xs, ys, **config)


def no_h0(params, xs, ys, **config):
    """min-char-rnn treats hprev as a constant: no h0 in, no h0 gradient out."""
    if "h0" in params:
        raise TypeError("no_h0() takes no initial state")
    loss, grads, dh, dx = bptt(params, xs, ys, **config)
    return loss, grads, dh


def with_mistake(name):
    def fn(params, xs, ys, **config):
        return bptt(params, xs, ys, mistake=name, **config)
    fn.__name__ = f"bptt_{name}"
    return fn


# --- returns ---------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [plain_triple, plain_quadruple])
def test_plain_tuples_are_checked_like_gradients(fn):
    result = check_derivation(fn, cases=16, seed=3)
    assert result.ok, result.summary()


def test_plain_tuple_failure_is_diagnosed_like_gradients():
    result = check_derivation(with_mistake("batch_sum"), cases=10, seed=3, sizes={"B": (2, 4)},
                              shrink_failures=False)
    assert not result.ok
    assert all("forgotten_1_over_B" in f.diagnosis for f in result.failures), result.summary()


def _torch_out(params, xs, ys, **config):
    """EECS 498 style: the gradients stay torch tensors (one even still requires grad)."""
    import torch
    loss, grads, dh, dx = bptt(params, xs, ys, **config)
    out = {k: torch.from_numpy(v) for k, v in grads.items()}
    out["W_hh"] = out["W_hh"].clone().requires_grad_(True)
    return torch.tensor(loss), out, torch.from_numpy(dh), torch.from_numpy(dx)


def _jax_out(params, xs, ys, **config):
    import jax.numpy as jnp
    loss, grads, dh, dx = bptt(params, xs, ys, **config)
    with __import__("jax").enable_x64(True):
        return loss, {k: jnp.asarray(v) for k, v in grads.items()}, jnp.asarray(dh), dx


@pytest.mark.parametrize("fn", [_torch_out, _jax_out])
def test_tensors_and_arrays_of_other_libraries_are_checked_as_numpy(fn):
    result = check_derivation(fn, cases=8, seed=3)
    assert result.ok, result.summary()


@pytest.mark.parametrize("fn,reason", [
    (lambda p, x, y, **c: None, "returned None"),
    (lambda p, x, y, **c: list(bptt(p, x, y, **c)), "returned a list"),
    (lambda p, x, y, **c: {"loss": 1.0}, "returned a dict"),
    (lambda p, x, y, **c: bptt(p, x, y, **c) + (None, None, None), "tuple of 7 items"),
    (lambda p, x, y, **c: (1.0, bptt(p, x, y, **c)[1]), "tuple of 2 items"),
    (lambda p, x, y, **c: bptt(p, x, y, **c)[:1] + ({k: v.tolist() for k, v in bptt(p, x, y, **c)[1].items()},)
     + bptt(p, x, y, **c)[2:], "expected an array (NumPy, torch, JAX or CuPy); got list"),
    (lambda p, x, y, **c: ("1.0",) + bptt(p, x, y, **c)[1:], "loss: expected a float"),
    (lambda p, x, y, **c: bptt(p, x, y, **c)[:1] + ([1, 2],) + bptt(p, x, y, **c)[2:],
     "grads: expected a dict"),
    (lambda p, x, y, **c: bptt(p, x, y, **c)[:3] + (np.zeros(4),), "dL_dx: expected shape"),
])
def test_anything_else_is_a_bad_output_said_once(fn, reason):
    result = check_derivation(fn, cases=5, seed=1)
    assert not result.ok and all(f.status == "bad_output" for f in result.failures)
    common = result.common_failure()
    assert common is not None and reason in common[1], result.summary()
    summary = result.summary()
    assert summary.count(reason) == 2   # once at the top, once in the one case shown
    # nothing to shrink: a bad return value does not depend on the case's size
    assert all(f.shrunk is None for f in result.failures)


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=3),
                    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner, inner)
                    | st.tuples(inner, inner, inner, inner) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=8))
def test_fuzzed_returns_never_crash_the_checker(value):
    result = check_derivation(lambda p, x, y, **c: value, cases=2, seed=0, references=("torch",))
    assert not result.ok
    assert result.summary() and json.dumps(result.to_dict(), default=str)


# --- the case space --------------------------------------------------------------------

def test_missing_h0_gradient_is_named_and_narrowing_fixes_it():
    wide = check_derivation(no_h0, cases=12, seed=0)
    assert not wide.ok
    summary = wide.summary()
    assert "h0='none'" in summary and "raised" in summary
    narrow = check_derivation(no_h0, cases=12, seed=0, h0="none")
    assert narrow.ok, narrow.summary()
    assert all(c.h0 == "none" for c in draw_cases(40, 0, space=CaseSpace.make(h0="none")))


def test_params_leaves_a_gradient_out_and_says_so():
    def without_h0_grad(params, xs, ys, **config):
        loss, grads, dh, dx = bptt(params, xs, ys, **config)
        grads.pop("h0", None)
        return loss, grads, dh, dx
    assert not check_derivation(without_h0_grad, cases=8, seed=2).ok    # never passed silently
    result = check_derivation(without_h0_grad, cases=8, seed=2, params=("W_xh", "W_hh", "b_h", "W_hy", "b_y"))
    assert result.ok and "h0" in result.not_checked
    assert "not checked: h0" in result.summary()


def test_not_returned_dL_dx_is_named():
    result = check_derivation(plain_triple, cases=4, seed=0)
    assert result.ok and "dL_dx" in result.not_checked and "dL_dh" not in result.not_checked


@pytest.mark.parametrize("space,check", [
    (dict(sizes={"B": 1, "T": (2, 60)}), lambda c: c.B == 1 and 2 <= c.T <= 60),
    (dict(sizes={"H": 3}, h0=("vector", "batch")), lambda c: c.H == 3 and c.h0 != "none"),
    (dict(inputs="one_hot"), lambda c: c.inputs == "one_hot"),
])
def test_each_case_space_control(space, check):
    result = check_derivation(plain_quadruple, cases=10, seed=4, **space)
    assert result.ok, result.summary()
    drawn = draw_cases(40, 4, space=CaseSpace.make(**space))
    assert all(check(c) for c in drawn)
    # the space keeps the default mixture's variety where the bounds allow it
    assert len({c.T for c in drawn}) > 3


def test_one_hot_inputs_are_one_hot_rows():
    from comparisons.check.cases import make_problem
    for case in draw_cases(10, 1, space=CaseSpace.make(inputs="one_hot")):
        xs = make_problem(case)[1]
        assert set(np.unique(xs)) <= {0.0, 1.0} and np.all(xs.sum(-1) == 1)


@pytest.mark.parametrize("bad,message", [
    (dict(sizes={"Q": 1}), "sizes: unknown size 'Q'"),
    (dict(sizes={"T": (5, 2)}), "sizes['T']"),
    (dict(sizes={"T": 0}), "sizes['T']"),
    (dict(h0="sometimes"), "h0: expected"),
    (dict(inputs="sparse"), "inputs: expected"),
    (dict(params=("W_hh", "V")), "params: expected"),
    (dict(params="W_hh"), "params: expected a list"),
    (dict(loss="cross_entropy", sizes={"O": 1}), "two classes"),
])
def test_bad_case_space_is_a_typed_error_naming_the_argument(bad, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("[", r"\[").replace("(", r"\(")):
        check_derivation(plain_quadruple, cases=1, **bad)


@settings(max_examples=30, deadline=None)
@given(case_strategy(sizes={"B": 1, "T": (2, 9)}, h0="none", inputs="one_hot", hidden="tanh"))
def test_strategies_expose_the_same_narrowed_spaces(case):
    assert case.B == 1 and 2 <= case.T <= 9 and case.h0 == "none" and case.inputs == "one_hot"


# --- dL/dx ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("truncate", [None, 2])
def test_dL_dx_agrees_across_backends(dtype, truncate):
    from manual import rnn
    from conftest import small_problem
    params, xs, ys = small_problem(T=6, dtype=dtype, h0="batch")
    results = [m.loss_and_grads(params, xs, ys, truncate=truncate) for m in (rnn, torch_autograd, jax_grad)]
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for r in results:
        assert r.dL_dx.shape == xs.shape and r.dL_dx.dtype == dtype
        np.testing.assert_allclose(r.dL_dx, results[1].dL_dx, atol=tol * np.abs(results[1].dL_dx).max())
    # dL/dx_t = W_xh^T e_t: a nonzero input gradient at every step
    assert np.all(np.abs(results[0].dL_dx).reshape(6, -1).max(1) > 0)


def test_wrong_dL_dx_is_caught_per_step_and_diagnosed():
    result = check_derivation(with_mistake("dx_with_Whh"), cases=8, seed=6, sizes={"D": 3, "H": 3},
                              shrink_failures=False)
    assert not result.ok
    for f in result.failures:
        assert f.parameters == ["dL_dx"] and f.steps["dL_dx"] == f.case.T, f.describe()
        assert "dx_wrong_weight" in f.diagnosis, f.describe()


# --- the newly catalogued mistakes ---------------------------------------------------------

def test_forgotten_equals_is_zero_gradient_of_b_h():
    result = check_derivation(with_mistake("no_equals"), cases=8, seed=7, shrink_failures=False)
    assert not result.ok
    for f in result.failures:
        assert f.parameters == ["b_h"] and f.patterns["b_h"] == "identically zero"
        assert f.diagnosis == ["zero_gradient"] and "b_h" in f.notes["zero_gradient"], f.describe()


def test_clipping_is_diagnosed_with_its_c_and_only_clipped_cases_fail():
    result = check_derivation(with_mistake("clip"), cases=16, seed=8, shrink_failures=False)
    failing = {f.case_id for f in result.failures}
    for case in draw_cases(16, 8):
        exact = torch_autograd.loss_and_grads(*_problem(case), **case.config())
        clipped = max(np.max(np.abs(g)) for g in exact.grads.values()) > 0.05
        assert (case.id in failing) == clipped
    assert failing
    for f in result.failures:
        assert "clipped_gradients" in f.diagnosis and "c = 0.05" in f.notes["clipped_gradients"]


def _problem(case):
    from comparisons.check.cases import make_problem
    return make_problem(case)


def test_unmatched_failure_still_says_how_it_is_off():
    def half_W_hy(params, xs, ys, **config):
        loss, grads, dh, dx = bptt(params, xs, ys, **config)
        grads["W_hy"] = -grads["W_hy"]
        return loss, grads, dh, dx
    f = check_derivation(half_W_hy, cases=3, seed=0, sizes={"O": 2}).failures[0]
    assert f.patterns["W_hy"].startswith("sign flipped"), f.describe()
    assert "diagnosis: matches none" in f.describe()


# --- the command line ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def mine(tmp_path_factory):
    """A user's file: the student derivations above, standing alone."""
    import inspect
    path = tmp_path_factory.mktemp("user") / "mine.py"
    path.write_text("import numpy as np\n\n" + inspect.getsource(bptt) + inspect.getsource(no_h0)
                    + "\n\ndef mine(params, xs, ys, **config):\n    return bptt(params, xs, ys, **config)\n")
    return path


def test_cli_checks_a_derivation_that_omits_h0(mine, capsys):
    assert main(["check", f"{mine}:no_h0", "--cases", "8", "--h0", "none"]) == 0
    assert main(["check", f"{mine}:no_h0", "--cases", "8"]) == 1
    out = capsys.readouterr().out
    assert "h0" in out and "--h0 none" in out


def test_cli_case_space_options(mine, capsys):
    argv = ["check", f"{mine}:mine", "--cases", "6", "--sizes", "B=1,T=2:9", "--inputs", "one-hot",
            "--params", "W_xh,W_hh,b_h,W_hy,b_y", "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["space"]["sizes"] == {"B": [1, 1], "T": [2, 9]} and data["space"]["inputs"] == "one_hot"
    assert "h0" in data["not_checked"]


@pytest.mark.parametrize("argv,message", [
    (["check", "{mine}:mine", "--sizes", "B"], "NAME=N"),
    (["check", "{mine}:mine", "--sizes", "B=x"], "NAME=N"),
    (["check", "{mine}:mine", "--sizes", "Q=1"], "unknown size"),
    (["check", "{mine}:mine", "--h0", "maybe"], "h0: expected"),
    (["check", "{mine}:mine", "--params", "W"], "params: expected"),
    (["check", "{mine}:mine", "--reproducers", "/proc/forbidden"], "--reproducers: cannot write"),
    (["report", "--out", "/proc/forbidden"], "--out: cannot write"),
    (["bench", "--out", "/proc/forbidden/x"], "--out: cannot write"),
    (["replay", "/nowhere/repro.json", "--fn", "{mine}:mine"], "no such file"),
])
def test_cli_bad_paths_and_options_are_one_line_exit_2(mine, capsys, argv, message):
    argv = [a.replace("{mine}", str(mine)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_unreadable_reproducer_is_exit_2(mine, tmp_path, capsys):
    bad = tmp_path / "repro-x.json"
    bad.write_text("{not json")
    assert main(["replay", str(bad), "--fn", f"{mine}:mine"]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_cli_ctrl_c_in_check_exits_130(mine, monkeypatch, capsys, tmp_path):
    import comparisons.check.checker as checker

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(checker, "check_case", interrupted)
    out = tmp_path / "repro"
    assert main(["check", f"{mine}:mine", "--cases", "2", "--reproducers", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not any(out.iterdir())       # nothing half-written


@settings(max_examples=40, deadline=None)
@given(argv=st.lists(st.sampled_from(["--sizes", "--h0", "--inputs", "--params", "--cases", "--seed", "--dtype",
                                 "B=1", "T=0:3", "none", "one-hot", "W_hh", "-1", "0", "3", "float16", "x=y",
                                 ":", ",", "--hidden", "relu"]), max_size=6))
def test_fuzzed_cli_arguments_never_give_a_traceback(mine, argv):
    import contextlib
    import io
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(["check", f"{mine}:mine", "--cases", "1", *argv])
    assert code in (0, 1, 2)
    assert "Traceback" not in err.getvalue()
    if code == 2:
        assert err.getvalue().count("\n") == 1
