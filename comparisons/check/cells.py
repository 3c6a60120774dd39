"""Any recurrent cell: the user writes one forward step, once, and checks a hand-derived BPTT
against autodiff of that very step.

    comparisons.check_cell(step, fn, *, param_shapes, state=("h",), output="identity",
                           loss="squared_error", reduction="mean", cases=100, seed=0,
                           dtype="float64", sizes=None) -> CheckResult

``step(xp, params, x_t, state) -> state`` is written against the array-API namespace
``xp`` (``array_api_compat``: NumPy, torch or jax.numpy), ``state`` a tuple of (B, H)
arrays named by ``state``; its first entry h_t feeds the contract's output layer and loss
(``cell_loss``, written once against ``xp`` too). The references differentiate ``step``
itself: torch autograd through a loop of it, ``jax.vjp`` through ``lax.scan`` of it (x64,
jitted), and float64 central differences through the NumPy step. ``fn(params, xs, ys, *,
output, loss, reduction, truncate)`` is the candidate; its dL_dh is dL/dh_t (T+1, B, H)
for the first state entry (the total derivative, as autograd gives it for the h_t node).

Cases are drawn as for Elman (``comparisons.check.cases.draw_cases``: shapes, regimes, dtypes);
every H x H block of a parameter gets the regime's spectral radius, as ``cases.py`` sets
W_hh's, and parameters declared ``recurrent`` (a vector u multiplying h_{t-1}) get it as
their largest magnitude. Tolerances are the checker's C (u + u64) sqrt(n), n counting the
cell's stacked gates in H, times a scale per compared quantity: the largest reference value
(for dL/dh_t, the largest of the later steps'), or, where larger, the magnitude Monte Carlo
arithmetic measures for the case (``comparisons.check.montecarlo``: torch's loop of the
step rerun with every rounding perturbed), which carries rounding through the cell's real
recurrence as ``comparisons.check.tolerances`` does analytically for Elman. A case whose
measured error growth reaches a tenth of the gradients' size is inconclusive
("ill-conditioned beyond"), as in ``check_derivation``; without torch, the classical scale.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap

import numpy as np

from bptt_xval.model import BackendUnavailable, Gradients, check_option, LOSS, OUTPUT, REDUCTION, step_weights
from comparisons.check.cases import Case, CaseSpace, draw_in_dtypes

# the cells themselves and what check_cell shares with the stacked LSTM and GRU: below both
from comparisons.check.cell_model import (GATED_LAYOUTS, STATE_NAME_CHARS, Cell, _affine, _gate,  # noqa: F401
                                          _gated, _gates, _resolve, _sigmoid, _targets, _theta, builtin_cells,
                                          cell_loss, elman_step, finite_differences_hold, gru_d2l_step, gru_step,
                                          indrnn_step, lstm_step, make_cell_problem, mgu_step, rounding_terms)
from comparisons.check.cell_model import _builtin  # noqa: F401,E402


class NotArrayAPI(TypeError):
    """The step calls NumPy (or another library) directly: torch and JAX cannot differentiate it."""


def _namespace(array):
    import array_api_compat

    return array_api_compat.array_namespace(array)


def not_array_api(step) -> str | None:
    """The first direct library call in ``step``'s source (``np.tanh``, ``numpy.exp``,
    ``torch.sigmoid``, ``math.exp``), as "np.tanh (line 3)", or None when it only uses xp."""
    try:
        source = textwrap.dedent(inspect.getsource(step))
    except (OSError, TypeError):
        return None                                          # no source: the run will tell
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in ("np", "numpy", "torch", "jnp", "jax", "math", "scipy"):
            return f"{node.value.id}.{node.attr} (line {node.lineno} of {getattr(step, '__name__', 'step')})"
    return None


# --- the references ---------------------------------------------------------------------------

def _numpy_forward(step, params, xs, n_state):
    xp = _namespace(xs)
    T, B, _ = xs.shape
    H = params["W_hy"].shape[1]
    state = tuple(np.zeros((B, H), xs.dtype) for _ in range(n_state))
    hs = [state[0]]
    for t in range(T):
        state = tuple(step(xp, params, xs[t], state))
        hs.append(state[0])
    return np.stack(hs)


def numpy_loss(step, params, xs, ys, *, n_state, output, loss, reduction):
    """L by the NumPy step (float64 in, float64 out)."""
    hs = _numpy_forward(step, params, xs, n_state)
    T, O = xs.shape[0], params["W_hy"].shape[0]
    w = step_weights(reduction, T, xs.dtype)[:, None]
    return float(cell_loss(_namespace(xs), hs[1:], params["W_hy"], params["b_y"],
                           _targets(ys, loss, O, xs.dtype), output=output, loss=loss, w=w[:, 0]))


def _output_rounding(torch, rounding, target, w, output, loss):
    """For a Monte Carlo run: a hook on z_t's gradient adding the rounding error of
    dL/dz_t = w_t / B (theta(z_t) - y_t) theta'(z_t) (squared error) or w_t / B (p_t - y_t)
    (cross-entropy) as a derivation computes it, u U(-1, 1) times its terms: w_t / B
    (|o| + |y|) (|theta'| + 2), since theta' = 1 - o^2 or o (1 - o) from a rounded o errs by
    2u absolute, not relatively (cells soak seed 1562306193: an IndRNN whose output sigmoid
    saturated, dL/dz_t exactly 0 in float32 where it is 1e-12, while torch's graph of
    1 / (1 + exp(-z)) stays relatively accurate and so its perturbed runs never showed it)."""
    u, generator = rounding

    def on_z(z):
        with torch.no_grad():
            terms = rounding_terms(torch, z, target, output, loss) * (w[:, None, None] / z.shape[1])
            delta = torch.rand(z.shape, generator=generator, dtype=z.dtype) * 2 - 1
            noise = u * delta * terms
        if z.requires_grad:
            z.register_hook(lambda g: g + noise)
        return z
    return on_z


def torch_reference(step, params, xs, ys, *, n_state, output, loss, reduction, rounding=None) -> Gradients:
    """torch autograd through a loop of ``step`` (float64). ``rounding``: (u, generator) in
    a Monte Carlo run (``comparisons.check.montecarlo``): the output layer's derivative is
    given its rounding error as a derivation computes it (:func:`_output_rounding`)."""
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailable(f"torch: {exc}") from None
    from reference.torch_autograd import exact

    with exact():
        P = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        x = torch.tensor(xs, requires_grad=True)
        xp = _namespace(x)
        T, B, _ = xs.shape
        H, O = params["W_hy"].shape[1], params["W_hy"].shape[0]
        state = tuple(torch.zeros((B, H), dtype=x.dtype, requires_grad=True) for _ in range(n_state))
        hs = [state[0]]
        for t in range(T):
            state = tuple(step(xp, P, x[t], state))
            hs.append(state[0])
        target = torch.tensor(_targets(ys, loss, O, xs.dtype))
        w = torch.tensor(step_weights(reduction, T, xs.dtype))
        on_z = None if rounding is None else _output_rounding(torch, rounding, target, w, output, loss)
        L = cell_loss(xp, torch.stack(hs[1:]), P["W_hy"], P["b_y"], target, output=output, loss=loss, w=w,
                      on_z=on_z)
        keys = list(P)
        out = torch.autograd.grad(L, [P[k] for k in keys] + [x] + hs, allow_unused=True)
        grab = lambda g, like: np.zeros(tuple(like.shape)) if g is None else g.detach().numpy().copy()
        grads = {k: grab(g, P[k]) for k, g in zip(keys, out)}
        dL_dh = np.stack([grab(g, h) for g, h in zip(out[len(keys) + 1:], hs)])
        return Gradients(float(L.detach()), grads, dL_dh, grab(out[len(keys)], x))


@functools.lru_cache(maxsize=16)
def _jax_compiled(step, n_state, output, loss, reduction):
    import jax
    import jax.numpy as jnp
    from jax import lax

    def L(params, eps, xs, target, w):
        def body(state, inputs):
            x_t, eps_t = inputs
            state = tuple(step(jnp, params, x_t, state))
            h = state[0] + eps_t                       # dL/deps_t = dL/dh_t
            return (h,) + state[1:], h

        B, H = eps.shape[1:]
        init = tuple(jnp.zeros((B, H), xs.dtype) for _ in range(n_state))
        init = (init[0] + eps[0],) + init[1:]
        _, hs = lax.scan(body, init, (xs, eps[1:]))
        return cell_loss(jnp, hs, params["W_hy"], params["b_y"], target, output=output, loss=loss, w=w)

    return jax.jit(jax.value_and_grad(L, argnums=(0, 1, 2)))


def jax_reference(step, params, xs, ys, *, n_state, output, loss, reduction) -> Gradients:
    """``jax.value_and_grad`` (reverse mode: jax.vjp) through ``lax.scan`` of ``step``, x64."""
    try:
        import jax
    except ImportError as exc:
        raise BackendUnavailable(f"jax: {exc}") from None
    from reference.jax_grad import scope

    T, B, _ = xs.shape
    H, O = params["W_hy"].shape[1], params["W_hy"].shape[0]
    with scope():
        value, (g, g_eps, g_xs) = jax.device_get(_jax_compiled(step, n_state, output, loss, reduction)(
            params, np.zeros((T + 1, B, H), xs.dtype), xs, _targets(ys, loss, O, xs.dtype),
            step_weights(reduction, T, xs.dtype)))
    return Gradients(float(value), {k: np.array(v) for k, v in g.items()}, np.array(g_eps), np.array(g_xs))


def numeric_reference(step, params, xs, ys, *, n_state, output, loss, reduction) -> Gradients:
    """float64 central differences of L through the NumPy step (no dL_dh)."""
    from reference.numeric import differentiate

    def evaluate(batch):
        n = len(next(iter(batch.values())))
        return np.array([numpy_loss(step, {k: v[i] for k, v in batch.items()}, xs, ys, n_state=n_state,
                                    output=output, loss=loss, reduction=reduction) for i in range(n)])

    L0, grads = differentiate(params, evaluate, analytic=False, row_cost=xs.size * 8)
    return Gradients(L0, grads, None)


def cell_magnitudes(step, params, xs, ys, case: Case, reference: Gradients, config: dict) -> dict:
    """The size each compared quantity's rounding error is measured against, on this case:
    Monte Carlo arithmetic through torch's loop of ``step`` (``comparisons.check.montecarlo``),
    never below the classical scale the checker used before (the largest |reference| value;
    per step, the largest of the later steps', as errors of later steps arrive at their own
    size), so it only ever widens a tolerance where the recurrence measurably grows the error."""
    from comparisons.check import montecarlo
    from comparisons.check.tolerances import later_steps_scale

    M = montecarlo.magnitudes(reference, lambda rounding: torch_reference(step, params, xs, ys, **config,
                                                                          rounding=rounding),
                              case.dtype, case.seed)
    for target in ("dL_dh", "dL_dx"):
        ref = getattr(reference, target)
        if target in M and ref is not None:
            M[target] = np.maximum(M[target], later_steps_scale(np.abs(ref).reshape(len(ref), -1).max(1)))
    return M


REFERENCES = {"torch": torch_reference, "jax": jax_reference, "numeric": numeric_reference}
# central differences cost (parameters x steps) forward steps in Python: only small cases
NUMERIC_MAX_WORK = 4_000


# --- the check ----------------------------------------------------------------------------------

def _validate(step, fn, param_shapes, state, output, loss, reduction, cases, seed, dtype):
    if not callable(step):
        raise TypeError(f"step: expected a callable step(xp, params, x_t, state); got {type(step).__name__}")
    if not callable(fn):
        raise TypeError(f"fn: expected a callable with the loss_and_grads signature; got {type(fn).__name__}")
    if not isinstance(param_shapes, dict) or not param_shapes:
        raise TypeError(f"param_shapes: expected a dict name -> shape in 'D' and 'H'; got {param_shapes!r}")
    for name, shape in param_shapes.items():
        if name in ("W_hy", "b_y"):
            raise ValueError(f"param_shapes: {name!r} is the output layer's, added by the checker")
        if not isinstance(shape, tuple) or not shape:
            raise ValueError(f"param_shapes[{name!r}]: expected a tuple such as ('H', 'D'); got {shape!r}")
        _resolve(shape, 2, 3)
    if isinstance(state, str) or not isinstance(state, tuple) or not state \
            or not all(isinstance(s, str) and s and set(s) <= STATE_NAME_CHARS for s in state):
        raise ValueError(f"state: expected a tuple of names, h_t first, e.g. ('h', 'c'); got {state!r}")
    check_option("output", output, OUTPUT)
    check_option("loss", loss, LOSS)
    check_option("reduction", reduction, REDUCTION)
    if loss == "cross_entropy" and output != "identity":
        raise ValueError(f"output: loss='cross_entropy' applies softmax to z_t itself, so output must be "
                         f"'identity'; got {output!r}")
    if isinstance(cases, bool) or not isinstance(cases, (int, np.integer)) or cases < 1:
        raise ValueError(f"cases: expected a positive int; got {cases!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int; got {seed!r}")
    if dtype not in ("float64", "float32", "both"):
        raise ValueError(f"dtype: expected 'float64', 'float32' or 'both'; got {dtype!r}")
    direct = not_array_api(step)
    if direct is not None:
        raise NotArrayAPI(f"step: calls {direct} directly; write it against xp (xp.{direct.split('.')[1].split()[0]}) "
                          f"so that torch and JAX can differentiate the very same step")


def check_cell_case(step, fn, case: Case, refs: dict, *, param_shapes, state=("h",), recurrent=(),
                    output="identity", loss="squared_error", reduction="mean"):
    """One case of :func:`check_cell` (its arguments, validated there; ``refs`` name ->
    reference from REFERENCES): the ``Outcome``, with "inconclusive" decided from the case
    and the references alone."""
    from comparisons.check.checker import ILL_CONDITIONED, KINK_ROUNDING, Outcome, _exception_line, _read_only
    from comparisons.check.compare import compare
    from comparisons.check.outputs import BadOutput, NonFiniteOutput, as_gradients
    from comparisons.check.tolerances import case_tolerance

    config = dict(n_state=len(state), output=output, loss=loss, reduction=reduction)
    # n counts the cell's stacked gates: an LSTM step sums 4H-long products
    tol_case = case.replace(H=_gates(param_shapes) * case.H)
    params, xs, ys = make_cell_problem(case, param_shapes, recurrent)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    xs64 = xs.astype(np.float64)
    ys64 = ys if loss == "cross_entropy" else ys.astype(np.float64)
    n_params = sum(v.size for v in params.values())
    results = {}
    with np.errstate(all="ignore"):
        for name, ref in refs.items():
            if name == "numeric" and n_params * case.T > NUMERIC_MAX_WORK:
                continue
            try:
                results[name] = ref(step, p64, xs64, ys64, **config)
            except (NotArrayAPI, BackendUnavailable):
                raise
            except Exception as exc:     # the user's step failed under this namespace
                raise NotArrayAPI(f"step: failed under {name} ({_exception_line(exc)}); write it "
                                  f"against xp only (array_api_compat namespaces)") from exc
    finite = all(np.isfinite(r.loss) and all(np.all(np.isfinite(g)) for g in r.grads.values())
                 for r in results.values())
    if not finite:
        return Outcome(case, "inconclusive", reason="reference not finite: the float64 references overflow")
    limit = float(np.finfo(case.dtype).max) * 1e-3
    if any(abs(r.loss) > limit or any(np.max(np.abs(g), initial=0) > limit for g in r.grads.values())
           for r in results.values()):
        return Outcome(case, "inconclusive", reason=f"{case.dtype} overflows on this case")
    magnitude = None
    if "torch" in results:
        magnitude = cell_magnitudes(step, p64, xs64, ys64, case, results["torch"], config)
        rtol = case_tolerance(tol_case).rtol
        if rtol * magnitude["amplification"] >= ILL_CONDITIONED:
            return Outcome(case, "inconclusive", reason=(
                f"ill-conditioned beyond {case.dtype}: the recurrence can grow a rounding error "
                f"{magnitude['amplification']:.3g} times beyond the gradients' size"))
        if magnitude.get("kink", np.inf) <= KINK_ROUNDING * rtol:
            # cells soak seed 1562306193: IndRNN's float32 ReLU took the other branch at a
            # pre-activation within its rounding of 0, dL/dh_t 0.4% off 24 steps back
            return Outcome(case, "inconclusive", reason=(
                f"at a kink in {case.dtype}: a branch of the step (a ReLU, a comparison, a max) is "
                f"decided by a quantity within its own rounding error of 0 ({magnitude['kink']:.2g} "
                f"of it), so either branch is right"))
    if not finite_differences_hold(results, tol_case, magnitude):
        del results["numeric"]       # torch and JAX judge this case alone
    inputs = _read_only({"xs": xs, "ys": ys, **params})
    xs_ro, ys_ro = inputs.pop("xs"), inputs.pop("ys")
    try:
        with np.errstate(all="ignore"):
            got = fn(inputs, xs_ro, ys_ro, output=output, loss=loss, reduction=reduction, truncate=None)
        got = as_gradients(got, params, tuple(params), (case.T, case.B, case.D, case.H), np.dtype(case.dtype))
    except NonFiniteOutput as exc:
        return Outcome(case, "non_finite", reason=str(exc))
    except BadOutput as exc:
        return Outcome(case, "bad_output", reason=str(exc))
    except (Exception, SystemExit) as exc:
        import traceback
        return Outcome(case, "raised", reason=_exception_line(exc), traceback=traceback.format_exc())
    comparisons = []
    for name, r in results.items():
        c = compare(got, r, name, tol_case, magnitude, kind="central" if name == "numeric" else "autodiff")
        comparisons.append(c)
    status = "agree" if all(c.ok for c in comparisons) else "disagree"
    return Outcome(case, status, comparisons, result=got, references=results)


def check_cell(step, fn, *, param_shapes, state=("h",), output="identity", loss="squared_error",
               reduction="mean", cases=100, seed=0, dtype="float64", sizes=None, recurrent=(),
               references=("torch", "jax", "numeric"), shrink_failures=True):
    """Check ``fn``, a hand-derived BPTT of the cell whose forward step is ``step``
    (module docstring), on ``cases`` random problems. Returns ``CheckResult`` as
    ``check_derivation`` does: failures name the parameter, the first departing step of
    dL/dh_t, the error sizes and the smallest failing case. ``recurrent``: names of vector
    parameters that multiply h_{t-1} elementwise (IndRNN's u): they get the regime's size."""
    from comparisons.check.checker import CheckResult, shrink_with, undiagnosed_failure

    _validate(step, fn, param_shapes, state, output, loss, reduction, cases, seed, dtype)
    from comparisons.check import backends

    unknown = [name for name in references if name not in REFERENCES]
    if unknown:
        raise ValueError(f"references: expected names from {tuple(REFERENCES)}; got {unknown}")
    found, skipped = backends.available(tuple(references))      # a missing library is a skip
    refs = {name: REFERENCES[name] for name in references if name in found}
    if not refs:
        raise BackendUnavailable(f"references: none available ({skipped})")
    from comparisons.check import gated

    if gated.is_fast(step) and not recurrent and "torch" in refs:
        # a built-in gated cell: the same checks on references stacked across cases
        return gated.check_gated(step, fn, param_shapes=param_shapes, state=state, output=output, loss=loss,
                                 reduction=reduction, cases=cases, seed=seed, dtype=dtype, sizes=sizes,
                                 references=tuple(n for n in references if n in found),
                                 shrink_failures=shrink_failures)
    space = CaseSpace.make(sizes, "none", None, None, False, loss=loss)
    drawn = draw_in_dtypes(cases, seed, dtype, space=space, output=output, loss=loss, reduction=reduction)
    run = functools.partial(check_cell_case, step, fn, refs=refs, param_shapes=param_shapes, state=state,
                            recurrent=recurrent, output=output, loss=loss, reduction=reduction)

    failures, inconclusive, ids = [], {}, []
    for case in drawn:
        outcome = run(case)
        if outcome.status == "inconclusive":
            ids.append(case.id)
            inconclusive.setdefault(outcome.reason.split(":")[0], []).append(case.id)
            continue
        if not outcome.failed:
            continue
        f = undiagnosed_failure(outcome)
        if shrink_failures and f.status in ("disagree", "non_finite", "raised"):
            f.shrunk = shrink_with(lambda c: run(c).failed, case, space)
        failures.append(f)
    # JAX compiles the cell once per case shape and keeps every executable while its jitted
    # function lives: a few hundred varied cases later LLVM runs out of memory maps and the
    # process segfaults (seen: seven check_cell calls of 120 cases in one process). Dropping
    # this call's functions frees them; the user's own JAX caches are left alone.
    _jax_compiled.cache_clear()
    return CheckResult(not failures, failures, len(drawn), ids, skipped, sorted(refs), {},
                       space.to_dict(), [], inconclusive)


def check_builtin(name: str, **kwargs):
    """``check_cell`` of a built-in cell's own derivation."""
    cell = _builtin()[name]
    return check_cell(cell.step, kwargs.pop("fn", cell.derivation), param_shapes=cell.param_shapes,
                      state=cell.state, recurrent=cell.recurrent, **kwargs)


def other_cells_study(seed: int = 0, cases: int = 6) -> dict:
    """The report's "Other cells": each built-in cell's derivation checked (both dtypes),
    and ||dL/dh_t|| across time at a matched spectral radius (every H x H block at 0.9,
    IndRNN's u at 0.45-0.9), a loss at the last step only: gating keeps the gradient
    alive where Elman's vanishes; for the LSTM also ||dL/dc_t||, the cell state's."""
    sizes = {"T": (2, 8), "B": 2, "D": 3, "H": 4, "O": 2}
    out = {}
    for name, cell in _builtin().items():
        result = check_builtin(name, cases=cases, seed=seed, dtype="both", sizes=sizes)
        case = Case(seed=seed * 1000 + 77, T=40, B=1, D=3, H=8, O=2, regime="near_edge", reduction="last")
        params, xs, ys = make_cell_problem(case, cell.param_shapes, cell.recurrent)
        from comparisons.check import backends

        autodiff = [REFERENCES[n] for n in ("torch", "jax") if n in backends.available(("torch", "jax"))[0]]
        norms, cell_norms = [], []
        if autodiff:
            r = autodiff[0](cell.step, params, xs, ys, n_state=len(cell.state), output="identity",
                            loss="squared_error", reduction="last")
            norms = [float(np.linalg.norm(r.dL_dh[t])) for t in range(case.T + 1)]
        if name == "lstm" and "torch" in backends.available(("torch",))[0]:
            # the cell state's error, dL/dc_t, by torch autograd of the same step: the
            # constant error carousel (c_t = f c_{t-1} + ...: dL/dc_{t-1} = f dL/dc_t + ...)
            from comparisons.check import gated

            p64 = {k: v.astype(np.float64) for k, v in params.items()}
            s = gated.stack([case], [(p64, xs.astype(np.float64), ys.astype(np.float64))], cell.param_shapes)
            _, _, _, states = gated.torch_stacked(cell.step, s, len(cell.state), "identity", "squared_error")
            cell_norms = [float(np.linalg.norm(states[1][0, t])) for t in range(case.T + 1)]
        out[name] = {"agree": bool(result.ok), "cases": result.cases_run, "references": result.references,
                     "failures": [f.describe() for f in result.failures[:2]], "dL_dh_norms": norms,
                     **({"dL_dc_norms": cell_norms} if cell_norms else {})}
    return out
