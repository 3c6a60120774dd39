"""gated_mc: the gated cells' Monte Carlo runs in NumPy are torch's, operation for operation."""

import collections

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from comparisons.check import gated, gated_mc, montecarlo
from comparisons.check.cases import CaseSpace, draw_cases
from comparisons.check.cells import builtin_cells, make_cell_problem


def _stack(cell, n, seed, dtype="float64", loss="squared_error", sizes=None):
    c = builtin_cells()[cell]
    space = CaseSpace.make(sizes, "none", None, None, False, loss=loss)
    cases = draw_cases(n, seed, dtype=dtype, space=space, output="identity", loss=loss, reduction="mean")
    arrays = []
    for case in cases:
        p, x, y = make_cell_problem(case, c.param_shapes)
        arrays.append(({k: v.astype(np.float64) for k, v in p.items()}, x.astype(np.float64),
                       y if loss == "cross_entropy" else y.astype(np.float64)))
    return c, cases, arrays


@pytest.mark.parametrize("cell", gated_mc.CELLS)
@pytest.mark.parametrize("loss", ["squared_error", "cross_entropy"])
def test_unperturbed_engine_is_torch_autograd(cell, loss):
    c, cases, arrays = _stack(cell, 6, 5, loss=loss)
    s = gated.stack(cases, arrays, c.param_shapes)
    want = gated.torch_stacked(c.step, s, len(c.state), "identity", loss, copies=2)
    got = gated_mc.run(cell, s, 2, "identity", loss)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
    for k, g in want[1].items():
        np.testing.assert_allclose(got[1][k], g, rtol=1e-11, atol=1e-15 * np.abs(g).max(), err_msg=k)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-11, atol=1e-15 * np.abs(want[2]).max())
    for a, b in zip(got[3], want[3]):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-15 * np.abs(b).max())


class _Counting(TorchDispatchMode):
    """The rounded ATen operations a run calls (the ones the dispatch mode would perturb)."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name.split("::")[-1]
        if not (func.is_view or name in montecarlo.EXACT) and name != "rand":
            self.n += 1
        return func(*args, **(kwargs or {}))


class _CountingRounding:
    def __init__(self):
        self.n = 0

    def __call__(self, r):
        self.n += 1
        return r

    def times(self, r, n):          # the select_backward sums: one rounded addition per step
        self.n += n > 0
        return r


def _rounded_per_step(cell, T):
    c, cases, arrays = _stack(cell, 1, 3, sizes={"T": (T, T), "B": (3, 3), "H": (2, 2), "D": (5, 5)})
    s = gated.stack(cases, arrays, c.param_shapes)
    with _Counting() as mode:
        gated.torch_stacked(c.step, s, len(c.state), "identity", "squared_error")
    R = _CountingRounding()
    P = {k: v for k, v in s.params.items() if k not in ("W_hy", "b_y")}
    hs, tape = gated_mc.FORWARD[cell](R, P, s.xs)
    gated_mc.BACKWARD[cell](R, P, tape, np.zeros_like(hs))
    return mode.n, R.n


@pytest.mark.parametrize("cell", gated_mc.CELLS)
def test_engine_rounds_as_many_operations_a_step_as_torch(cell):
    """Every step adds the same number of rounded operations in both engines (the output layer,
    the part outside the recurrence, runs in torch in both)."""
    (torch4, numpy4), (torch7, numpy7) = _rounded_per_step(cell, 4), _rounded_per_step(cell, 7)
    assert (torch7 - torch4) == (numpy7 - numpy4)


def _magnitudes(cell, engine, cases, arrays, seed):
    c = builtin_cells()[cell]
    out = []
    for idx in gated._groups(cases):
        s = gated.stack([cases[i] for i in idx], [arrays[i] for i in idx], c.param_shapes)
        u = max(montecarlo.UNIT_ROUNDOFF[cases[idx[0]].dtype], montecarlo.SMALLEST_U)
        ref = gated.torch_stacked(c.step, s, len(c.state), "identity", "squared_error")
        if engine == "numpy":
            runs = gated_mc.run(cell, s, montecarlo.SAMPLES, "identity", "squared_error", u, seed=seed)
        else:
            generator = torch.Generator().manual_seed(seed)
            with montecarlo._mode(u, generator, noise=montecarlo.byte_noise(np.random.default_rng(seed))):
                runs = gated.torch_stacked(c.step, s, len(c.state), "identity", "squared_error",
                                           copies=montecarlo.SAMPLES, rounding=(u, generator))
        N = len(idx)
        for j in range(N):
            reference = gated.unstack(s, j, ref[0][j], *ref[1:])[0]
            draws = [gated.unstack(s, j, runs[0][k * N + j], *runs[1:], row=k * N + j)[0]
                     for k in range(montecarlo.SAMPLES)]
            out.append(montecarlo.from_draws(reference, draws, u))
    return out


@pytest.mark.parametrize("cell", gated_mc.CELLS)
def test_engines_measure_the_same_error_sizes(cell):
    """The NumPy engine's magnitudes are torch's dispatch engine's, in distribution: the median
    log2 ratio of the two over 40 cases is 0 within what eight draws leave (the ratio of two
    independent estimates has a spread of ~0.6 in log2; dropping the select_backward sums' roundings
    moved dL/dx's median by -0.57, a gate's backward rounded once too few moves it by more)."""
    _, cases, arrays = _stack(cell, 24, 77)
    _, cases32, arrays32 = _stack(cell, 16, 78, dtype="float32")
    cases, arrays = cases + cases32, arrays + arrays32
    old = _magnitudes(cell, "dispatch", cases, arrays, 11)
    new = _magnitudes(cell, "numpy", cases, arrays, 12)
    ratios = collections.defaultdict(list)
    for a, b in zip(old, new):
        for k in a:
            if k in ("kink", "amplification"):
                continue
            va, vb = np.atleast_1d(a[k]), np.atleast_1d(b[k])
            ok = (va > 0) & (vb > 0)
            ratios["per step" if k in ("dL_dh", "dL_dx") else "parameters"].extend(np.log2(vb[ok] / va[ok]))
            if k in ("dL_dh", "dL_dx"):
                ratios[k].extend(np.log2(vb[ok] / va[ok]))
    for k, v in ratios.items():
        bound = 0.2 if k == "parameters" else 0.12
        assert abs(np.median(v)) < bound, (k, np.median(v), len(v))


def test_error_sizes_of_gradients_near_the_bottom_of_float64_do_not_underflow():
    # an h0 gradient 200 steps back, 1e-157, whose perturbed runs differ by 1e-169: the
    # squares of those differences underflow to 0, and an error size of 0 was a tolerance no
    # rounding could meet (the class-gru soak's false alarm, seed 639912221)
    from bptt_xval.model import Gradients

    u = 2.0 ** -53
    base = np.array([1.5e-157, -1.3e-158])
    reference = Gradients(1.0, {"h0": base}, None, None)
    draws = [Gradients(1.0, {"h0": base * (1 + k * 1e-12)}, None, None) for k in (-2, -1, 1, 2)]
    size = montecarlo.from_draws(reference, draws, u)["h0"]
    # the spread computed where its squares do not underflow (scaled up by 1e150 first)
    diffs = np.array([d.grads["h0"] - base for d in draws]) * 1e150
    spread = np.max(np.sqrt(np.mean(diffs ** 2, axis=0))) / 1e150
    assert size > 0 and size == pytest.approx(montecarlo.UPPER_CONFIDENCE * spread / u, rel=1e-9, abs=0)
    # and where nothing differs the size is 0, not NaN
    assert montecarlo.from_draws(reference, [reference] * 4, u)["h0"] == 0.0


def test_the_class_gru_soaks_false_alarm_agrees():
    from comparisons.check.cases import Case
    from comparisons.measure.styled import candidates

    case = Case(seed=360614730, T=200, B=4, D=1, H=1, O=3, regime="expansive", h0="none", dtype="float64",
                hidden="tanh", output="identity", loss="squared_error", reduction="last", truncate=None,
                inputs="dense")
    cell = builtin_cells()["gru"]
    outcome = gated.check_gated_cases(cell.step, candidates()["class-gru"], [case], param_shapes=cell.param_shapes,
                                      state=cell.state, output="identity", loss="squared_error", reduction="last",
                                      names=("torch", "jax", "numeric"))[0]
    assert outcome.status == "agree", outcome.worst()
