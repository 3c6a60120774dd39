"""check_cell: any recurrent cell, its forward step written once against xp, its hand
derivation checked against torch, JAX and finite differences of that very step."""

import gc
import os

import numpy as np
import pytest

from comparisons.check.cells import (NotArrayAPI, builtin_cells, check_builtin, check_cell, elman_step, gru_step,
                               lstm_step, make_cell_problem, mgu_step)
from comparisons.check.cases import Case

# few distinct shapes: JAX compiles its reference once per shape
SIZES = {"T": (1, 6), "B": 2, "D": 3, "H": (2, 3), "O": 2}


@pytest.mark.parametrize("name", ["elman", "lstm", "gru", "indrnn", "mgu"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_builtin_derivations_agree(name, dtype):
    result = check_builtin(name, cases=6, seed=1, dtype=dtype, sizes=SIZES)
    assert result.ok, result.summary()
    assert set(result.references) >= {"jax", "torch"}


def gru_by_hand(params, xs, ys, *, output="identity", loss="squared_error", reduction="mean",
                truncate=None, bug=None):
    """A GRU backward pass as a course solution writes it: gates by name, one loop back in
    time, the bugs public solutions have behind ``bug``."""
    T, N, _ = xs.shape
    Wi, Wh, bi, bh = params["W_ih"], params["W_hh"], params["b_ih"], params["b_hh"]
    H = Wh.shape[1]
    sig = lambda v: 1 / (1 + np.exp(-v))
    h = [np.zeros((N, H))]
    cache = []
    for t in range(T):
        gi, gh = xs[t] @ Wi.T + bi, h[-1] @ Wh.T + bh
        r = sig(gi[:, :H] + gh[:, :H])
        z = sig(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        h.append((1 - z) * n + z * h[-1])
        cache.append((r, z, n, gh))
    w = np.full(T, 1 / T) if reduction == "mean" else np.ones(T)
    out = [h[t + 1] @ params["W_hy"].T + params["b_y"] for t in range(T)]
    L = sum(w[t] * 0.5 * ((out[t] - ys[t]) ** 2).sum(-1).mean() for t in range(T))
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dh_all = np.zeros((T + 1, N, H))
    dh_next = np.zeros((N, H))
    for t in reversed(range(T)):
        dy = w[t] * (out[t] - ys[t]) / N
        grads["W_hy"] += dy.T @ h[t + 1]
        grads["b_y"] += dy.sum(0)
        dh = dy @ params["W_hy"] + dh_next
        dh_all[t + 1] = dh
        r, z, n, gh = cache[t]
        dn = dh * (1 - z) * (1 - n ** 2)
        dz = dh * (h[t] - n) * z * (1 - z)
        dr = 0 * dn if bug == "no_reset_path" else dn * gh[:, 2 * H:] * r * (1 - r)
        dgi = np.concatenate([dr, dz, dn], 1)
        dgh = np.concatenate([dr, dz, dn * r], 1)
        grads["W_ih"] += dgi.T @ xs[t]
        h_used = h[t + 1] if bug == "h_t_not_h_prev" else h[t]
        grads["W_hh"] += dgh.T @ h_used
        grads["b_ih"] += dgi.sum(0)
        grads["b_hh"] += dgh.sum(0)
        dh_next = dh * z + dgh @ Wh
    dh_all[0] = dh_next
    return L, grads, dh_all


def test_a_course_style_gru_agrees():
    result = check_cell(gru_step, gru_by_hand, param_shapes=builtin_cells()["gru"].param_shapes,
                        cases=8, seed=2, sizes=SIZES, reduction="mean")
    assert result.ok, result.summary()


@pytest.mark.parametrize("bug, parameter, named", [("no_reset_path", None, "reset_path_missing"),
                                                   ("h_t_not_h_prev", "W_hh", "off_by_one_hidden_state")])
def test_planted_gru_mistakes_are_caught_located_and_shrunk(bug, parameter, named):
    def wrong(params, xs, ys, **config):
        return gru_by_hand(params, xs, ys, bug=bug, **config)

    result = check_cell(gru_step, wrong, param_shapes=builtin_cells()["gru"].param_shapes, cases=6, seed=4,
                        sizes=SIZES)
    assert not result.ok
    f = result.failures[0]
    assert f.status == "disagree"
    if parameter:              # only the weight gradient is off: dL/dh_t agrees at every step
        assert parameter in f.parameters and f.step is None and "dL_dh" not in f.parameters
    else:                      # the carried error is off: located in time
        assert f.step is not None and 0 <= f.step <= f.case.T and "dL_dh" in f.parameters
    assert f.shrunk is not None and f.shrunk.T <= f.case.T and f.shrunk.H <= f.case.H
    assert f.diagnosis == [named], f.describe()


def test_transposed_recurrence_in_elman_is_caught():
    from comparisons.check.diagnosis import mistaken_loss_and_grads

    def wrong(params, xs, ys, **config):
        return mistaken_loss_and_grads("transposed_recurrence", params, xs, ys, **config)

    result = check_cell(elman_step, wrong, param_shapes=builtin_cells()["elman"].param_shapes, cases=6, seed=5,
                        sizes={**SIZES, "H": 3, "T": (3, 6)})
    assert not result.ok
    assert result.failures[0].steps.get("dL_dh") is not None


def test_a_step_that_calls_numpy_directly_is_a_clear_error():
    def numpy_step(xp, p, x_t, state):
        (h,) = state
        return (np.tanh(x_t @ p["W"].T + h @ p["U"].T),)

    with pytest.raises(NotArrayAPI, match=r"calls np\.tanh \(line 3 of numpy_step\) directly; write it against xp"):
        check_cell(numpy_step, lambda *a, **k: None, param_shapes={"W": ("H", "D"), "U": ("H", "H")}, cases=2)


def test_the_same_step_on_three_namespaces():
    import array_api_compat
    import jax.numpy as jnp
    import torch

    for name, step in (("lstm", lstm_step), ("gru", gru_step), ("elman", elman_step), ("mgu", mgu_step)):
        cell = builtin_cells()[name]
        case = Case(seed=3, T=1, B=2, D=3, H=4, O=2)
        params, xs, _ = make_cell_problem(case, cell.param_shapes)
        state = tuple(np.full((2, 4), 0.1 * (i + 1)) for i in range(len(cell.state)))
        ref = step(array_api_compat.array_namespace(xs), params, xs[0], state)
        as_torch = step(array_api_compat.array_namespace(torch.zeros(1)),
                        {k: torch.tensor(v) for k, v in params.items()}, torch.tensor(xs[0]),
                        tuple(torch.tensor(s) for s in state))
        import jax
        with jax.enable_x64(True):
            as_jax = step(jnp, {k: jnp.asarray(v) for k, v in params.items()}, jnp.asarray(xs[0]),
                          tuple(jnp.asarray(s) for s in state))
            as_jax = [np.asarray(a) for a in as_jax]
        for a, b, c in zip(ref, as_torch, as_jax):
            np.testing.assert_allclose(b.numpy(), a, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(c, a, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(param_shapes={}), TypeError, "param_shapes"),
    (dict(param_shapes={"W": ("H", "Q")}), ValueError, "'D', 'H'"),
    (dict(param_shapes={"W_hy": ("H", "H")}), ValueError, "output layer"),
    (dict(param_shapes={"W": ("H", "D")}, state="h"), ValueError, "state"),
    (dict(param_shapes={"W": ("H", "D")}, loss="hinge"), ValueError, "loss"),
    (dict(param_shapes={"W": ("H", "D")}, cases=0), ValueError, "cases"),
    (dict(param_shapes={"W": ("H", "D")}, dtype="float16"), ValueError, "dtype"),
])
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        check_cell(elman_step, lambda *a, **k: None, **kwargs)


LEAKY = '''
import numpy as np

# a leaky tanh RNN, h_t = (1 - a) h_{t-1} + a tanh(W x_t + U h_{t-1} + b), as its author wrote it
param_shapes = {"W": ("H", "D"), "U": ("H", "H"), "b": ("H",)}
ALPHA = 0.5


def step(xp, p, x, state):
    (h,) = state
    return ((1 - ALPHA) * h + ALPHA * xp.tanh(x @ p["W"].T + h @ p["U"].T + p["b"]),)


def loss_and_grads(params, xs, ys, *, output="identity", loss="squared_error", reduction="mean", truncate=None):
    T, B, _ = xs.shape
    W, U, b, V, c = (params[k] for k in ("W", "U", "b", "W_hy", "b_y"))
    h = [np.zeros((B, U.shape[0]))]
    s = []
    for t in range(T):
        s.append(np.tanh(xs[t] @ W.T + h[-1] @ U.T + b))
        h.append((1 - ALPHA) * h[-1] + ALPHA * s[-1])
    w = 1.0 / T if reduction == "mean" else 1.0
    y = [h[t + 1] @ V.T + c for t in range(T)]
    L = sum(w * 0.5 * ((y[t] - ys[t]) ** 2).sum(-1).mean() for t in range(T))
    g = {k: np.zeros_like(v) for k, v in params.items()}
    dh = np.zeros((T + 1, B, U.shape[0]))
    carry = np.zeros((B, U.shape[0]))
    for t in reversed(range(T)):
        dy = w * (y[t] - ys[t]) / B
        g["W_hy"] += dy.T @ h[t + 1]
        g["b_y"] += dy.sum(0)
        dh[t + 1] = dy @ V + carry
        da = dh[t + 1] * ALPHA * (1 - s[t] ** 2)
        g["W"] += da.T @ xs[t]
        g["U"] += da.T @ h[t]
        g["b"] += da.sum(0)
        carry = dh[t + 1] * (1 - ALPHA) + da @ U
    dh[0] = carry
    return L, g, dh
'''


def test_cli_check_cell_on_a_users_own_cell(tmp_path, capsys):
    from comparisons.cli import main

    path = tmp_path / "leaky.py"
    path.write_text(LEAKY)
    argv = ["check-cell", str(path), "--cases", "6", "--sizes", "B=2,D=3,H=3,O=2,T=1:5"]
    assert main(argv) == 0, capsys.readouterr()
    assert "AGREES: 6 of 6" in capsys.readouterr().out
    path.write_text(LEAKY.replace("carry = dh[t + 1] * (1 - ALPHA) + da @ U", "carry = da @ U"))
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "DISAGREES" in out and "dL/dh_t first departs" in out
    path.write_text(LEAKY.replace("xp.tanh(", "np.tanh("))
    assert main(argv) == 2
    assert "calls np.tanh" in capsys.readouterr().err


def test_mgu_gate_without_recurrence_is_caught_and_located():
    """A derivation that treats the gate as input-only (as if U_f were 0: the gate's
    recurrent path ignored, forward and backward) is caught, and located in time."""
    from manual import mgu

    source_fn = mgu.loss_and_grads

    def wrong(params, xs, ys, **config):
        g = source_fn({**params, "U_f": np.zeros_like(params["U_f"])}, xs, ys, **config)
        return g.loss, {**g.grads}, g.dL_dh
    result = check_cell(mgu_step, wrong, param_shapes=builtin_cells()["mgu"].param_shapes, cases=6, seed=7,
                        sizes={**SIZES, "T": (3, 6)})
    assert not result.ok and result.failures[0].step is not None


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="counts memory maps through Linux's /proc")
def test_repeated_checks_free_their_jax_executables():
    """JAX compiles a cell once per case shape; kept alive, the executables' memory maps pile
    up until LLVM cannot allocate and the process segfaults (seen after seven 120-case
    calls). Each call frees its own: a second call leaves the map count where the first did."""
    pytest.importorskip("jax")
    from comparisons.check.cells import check_builtin

    def maps():
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)

    check_builtin("elman", cases=6, seed=5, dtype="both", references=("jax",), shrink_failures=False)
    gc.collect()
    after_first = maps()
    check_builtin("elman", cases=6, seed=6, dtype="both", references=("jax",), shrink_failures=False)
    gc.collect()
    # without freeing, 6 new shapes add ~40 maps each
    assert maps() - after_first < 100


# The first false-alarm sample of check_cell (seed 1600236585, benchmarks/results/
# cells-soak-seed1600236585.txt), its shrunk cases: the suite's own correct Elman derivation
# flagged where saturated units' rounded phi' = 1 - h^2 closes a real gradient path, where
# an edge-regime recurrence grows the error, and where a float32 b_h sum cancels. Each
# disagrees under the classical scale alone and agrees with the Monte Carlo magnitudes.
FORMER_CELL_FALSE_ALARMS = [
    (Case(seed=982452617, T=1, B=1, D=2, H=1, O=1, regime="saturated", dtype="float64"), {}),
    (Case(seed=246427816, T=1, B=2, D=2, H=1, O=1, regime="saturated", dtype="float32"), {}),
    (Case(seed=1402368087, T=21, B=4, D=3, H=1, O=2, regime="edge", dtype="float64",
          loss="cross_entropy", reduction="sum"), dict(loss="cross_entropy", reduction="sum")),
    (Case(seed=1536007596, T=34, B=4, D=2, H=1, O=2, regime="contractive", dtype="float32",
          output="tanh", reduction="last"), dict(output="tanh", reduction="last")),
    (Case(seed=246427816, T=2, B=2, D=2, H=1, O=1, regime="generic", dtype="float32",
          output="tanh", reduction="last"), dict(output="tanh", reduction="last")),
]


@pytest.mark.parametrize("case,config", FORMER_CELL_FALSE_ALARMS, ids=[c.id for c, _ in FORMER_CELL_FALSE_ALARMS])
def test_former_cell_false_alarms_are_not_flagged(case, config, monkeypatch):
    from comparisons.check import montecarlo
    from comparisons.check.cells import REFERENCES, check_cell_case

    cell = builtin_cells()["elman"]
    outcome = check_cell_case(cell.step, cell.derivation, case, dict(REFERENCES), param_shapes=cell.param_shapes,
                              **config)
    assert outcome.status in ("agree", "inconclusive"), [(c.reference, c.failing()) for c in outcome.comparisons]
    # the very case is one the classical scale flags: this test can fail
    monkeypatch.setattr(montecarlo, "magnitudes", lambda *args, **kwargs: {"amplification": 0.0, "kink": np.inf})
    classical = check_cell_case(cell.step, cell.derivation, case, dict(REFERENCES), param_shapes=cell.param_shapes,
                                **config)
    assert classical.status == "disagree"


def test_monte_carlo_arithmetic_perturbs_the_backward_pass():
    """The perturbed runs differ from the exact one by about u, in dL/dh_t too (the backward
    pass's own operations are perturbed), and replay exactly from the same seed."""
    from comparisons.check import montecarlo
    from comparisons.check.cells import torch_reference

    cell = builtin_cells()["lstm"]
    case = Case(seed=5, T=6, B=2, D=3, H=4, O=2, regime="generic")
    params, xs, ys = make_cell_problem(case, cell.param_shapes)
    config = dict(n_state=2, output="identity", loss="squared_error", reduction="mean")
    run = lambda rounding=None: torch_reference(cell.step, params, xs, ys, **config, rounding=rounding)
    exact = run()
    M = montecarlo.magnitudes(exact, run, "float32", seed=3)
    again = montecarlo.magnitudes(exact, run, "float32", seed=3)
    for name in params:
        size = float(np.max(np.abs(exact.grads[name])))
        assert 0.1 * size < M[name] < 1e3 * size, (name, M[name], size)
        assert M[name] == again[name]
    assert np.all(M["dL_dh"][1:] > 0) and M["amplification"] < 1e3
    # a float64 candidate's roundings are 2^29 times smaller: the magnitudes, in units of u, alike
    M64 = montecarlo.magnitudes(exact, run, "float64", seed=3)
    assert 0.01 < M64["W_hh"] / M["W_hh"] < 100


def test_a_step_written_with_in_place_sums_is_checked():
    """NumPy-style ``a += ...`` in the step: torch runs it in place (add_), which Monte Carlo
    arithmetic perturbs in place; the correct derivation agrees."""
    from manual.rnn import loss_and_grads

    def step(xp, p, x_t, state):
        (h,) = state
        a = x_t @ p["W_xh"].T
        a += h @ p["W_hh"].T
        a += p["b_h"]
        return (xp.tanh(a),)

    result = check_cell(step, loss_and_grads, param_shapes={"W_xh": ("H", "D"), "W_hh": ("H", "H"), "b_h": ("H",)},
                        cases=8, seed=3, dtype="both", sizes=SIZES)
    assert result.ok, result.summary()


def test_finite_differences_across_a_kink_step_aside():
    """Cells soak seed 2140288438: on an IndRNN case (ReLU) a central difference crossed a
    kink and disagreed with torch and JAX by 144 times its tolerance, flagging the correct
    derivation. Finite differences that disagree with autodiff now leave the case to torch
    and JAX; where they agree (a smooth GRU case), they still judge."""
    from comparisons.check.cells import REFERENCES, check_cell_case

    cells = builtin_cells()
    indrnn = cells["indrnn"]
    case = Case(seed=1491172578, T=34, B=1, D=5, H=5, O=3, regime="near_edge", dtype="float64", reduction="sum")
    outcome = check_cell_case(indrnn.step, indrnn.derivation, case, dict(REFERENCES),
                              param_shapes=indrnn.param_shapes, recurrent=indrnn.recurrent, reduction="sum")
    assert outcome.status == "agree", [(c.reference, c.failing()) for c in outcome.comparisons]
    assert [c.reference for c in outcome.comparisons] == ["torch", "jax"]
    gru = cells["gru"]
    smooth = Case(seed=4, T=5, B=2, D=3, H=3, O=2, regime="generic", dtype="float32")
    outcome = check_cell_case(gru.step, gru.derivation, smooth, dict(REFERENCES), param_shapes=gru.param_shapes)
    assert outcome.status == "agree" and [c.reference for c in outcome.comparisons] == ["torch", "jax", "numeric"]


def test_a_saturated_output_derivative_is_allowed_its_rounding():
    """Cells soak seed 1562306193: an expansive IndRNN whose output sigmoid saturates; the
    derivation's o (1 - o) from a rounded o is exactly 0 in float32 where the exact value is
    1e-12 (an error of at most u, absolute), which torch's relatively accurate graph of
    1 / (1 + exp(-z)) never showed in its perturbed runs: flagged 24 steps back. The output
    layer's derivative now carries that rounding through the recurrence; growing back through
    the expansive recurrence it outgrows the gradients, so no verdict is possible."""
    from comparisons.check.cells import REFERENCES, check_cell_case

    cell = builtin_cells()["indrnn"]
    case = Case(seed=193484245, T=155, B=4, D=5, H=1, O=2, regime="expansive", dtype="float32",
                output="sigmoid", reduction="sum")
    outcome = check_cell_case(cell.step, cell.derivation, case, dict(REFERENCES), param_shapes=cell.param_shapes,
                              recurrent=cell.recurrent, output="sigmoid", reduction="sum")
    assert outcome.status == "inconclusive" and outcome.reason.startswith("ill-conditioned beyond float32")
