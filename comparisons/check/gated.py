"""The gated cells at Elman's pace: LSTM and GRU checked with references stacked across cases.

``check_cell`` is general: any user's step, differentiated case by case, its tolerances
measured by Monte Carlo arithmetic (``comparisons.check.montecarlo``) in eight perturbed
torch runs of that one case. Its cost is per operation, not per number: a case of an LSTM
with T = 150 is ~10^4 torch operations, each paying Python's dispatch, eight times over.
For the built-in cells (``cells.lstm_step``, ``cells.gru_step``: every course convention
of issue 26 maps onto one of them) the same three things are computed for a whole group of
cases at once:

- **torch autograd** through one loop of the step over a stack of cases (case axis first,
  ``torch.bmm``-style products), zero-padded to the group's largest sizes. The padding is
  exact, as in ``reference.stacked``: a padded hidden unit has all-zero weights in and out,
  so its gates sit at sigmoid(0), tanh(0) = 0 and its c_t and h_t stay exactly 0 (LSTM:
  c = 0.5 c_prev + 0.5 * 0; GRU: h = 0.5 * 0 + 0.5 h_prev); gate blocks are padded block by
  block, so gate k of a case stays gate k; padded batch rows, steps and cases have weight
  0; padded outputs have a logit of -10^4 (probability exactly 0 in float64) or target
  theta(0).
- **JAX**: ``jax.vjp`` of ``lax.scan`` of the same step, ``vmap``ped over a fixed number of
  cases padded to coarse shape buckets, one compilation per bucket (cached), computed on
  another core while torch runs.
- **Monte Carlo arithmetic** (the tolerance's error sizes): the eight perturbed runs are one
  run of the stack replicated eight times along its case axis (every rounded result r
  becomes r (1 + u delta), delta drawn per entry, so the copies are eight independent
  draws), computed by ``gated_mc``: the recurrence in NumPy, operation for operation as
  torch's autograd rounds it, the output layer in torch under ``check_cell``'s dispatch mode
  (the whole run under that mode, ``engine="dispatch"``, is the same error model ~3 times
  slower). The per-case statistics are ``montecarlo.from_draws``'s, the same as
  ``check_cell``'s.

The verdict rules are ``check_cell_case``'s (the same inconclusive reasons, the same
``compare``); only where the numbers come from differs, and ``tests/test_gated.py`` checks
the stacked references against the per-case ones. The cases' perturbations are drawn per
group (seeded by the group's first case), so a verdict replays from the same call.

``fn`` may return the gradients of the initial state as ``grads["h0"]`` and (LSTM)
``grads["c0"]``, each (B, H): the conventions do (cs231n's ``dh0``); they are compared
with dL/dh_0 and dL/dc_0.
"""

from __future__ import annotations

import functools
import itertools
import threading
from dataclasses import dataclass

import numpy as np

from bptt_xval.model import BackendUnavailable, Gradients, step_weights
from comparisons.check.candidate import INITIAL  # h0, c0: the names of the initial states' gradients
from comparisons.check.cases import Case, CaseSpace, draw_in_dtypes
from comparisons.check.cell_model import stack_loss, stack_rounding

# cases per torch stack (the K = 8 Monte Carlo copies multiply it) and per JAX stack
TORCH_STACK = 64
JAX_STACK = 16
# the complex step evaluates every perturbed copy of the parameters at once (numeric_stacked):
# a third reference wherever (parameters x T x B x gate width) stays under this (~5 ms each;
# measured: 152 of the default mixture's 200 cases, 8% of a check's time)
NUMERIC_FAST_WORK = 400_000


# the stacks themselves (comparisons.check.stacking), under their names here too
from comparisons.check.stacking import Stack, _blocks, _dims, _place, _take, output_shapes, stack, unstack  # noqa: E402,F401


# --- torch: one loop over the stack -----------------------------------------------------------

def torch_stacked(step, s: Stack, n_state: int, output: str, loss: str, copies: int = 1, rounding=None):
    """torch autograd through one loop of ``step`` over the stack (``copies`` times along the
    case axis: the Monte Carlo runs). Returns per copy and case (loss, grads, dL_dx, [dL/d state])."""
    import torch
    import array_api_compat

    from reference.torch_autograd import exact

    rep = lambda a: np.concatenate([a] * copies) if copies > 1 else a
    with exact(threads=1):
        P = {k: torch.tensor(rep(v), requires_grad=True) for k, v in s.params.items()}
        x = torch.tensor(rep(s.xs), requires_grad=True)
        xp = array_api_compat.array_namespace(x)
        N, T, B, _ = x.shape
        H = s.params["W_hy"].shape[-1]
        init = tuple(torch.zeros((N, B, H), dtype=x.dtype, requires_grad=True) for _ in range(n_state))
        trace = [[v] for v in init]
        state = init
        for t in range(T):
            state = tuple(step(xp, P, x[:, t], state))
            for k in range(n_state):
                trace[k].append(state[k])
        hs = torch.stack(trace[0][1:], 1)                                           # (N, T, B, H)
        z = hs @ P["W_hy"].transpose(-1, -2)[:, None] + P["b_y"][:, None, None]
        target, w, w_b = (torch.tensor(rep(a)) for a in (s.target, s.w, s.w_b))
        if rounding is not None:
            z = stack_rounding(torch, rounding, target, w, w_b, output, loss)(z)
        L = stack_loss(torch, z, target, w, w_b, output, loss)
        keys = list(P)
        wrt = [P[k] for k in keys] + [x] + [v for tr in trace for v in tr]
        out = torch.autograd.grad(L.sum(), wrt, allow_unused=True)
        numpy = lambda g, like: (np.zeros(tuple(like.shape)) if g is None else g.detach().numpy())
        grads = {k: numpy(g, P[k]) for k, g in zip(keys, out)}
        dL_dx = numpy(out[len(keys)], x)
        states, at = [], len(keys) + 1
        for tr in trace:
            states.append(np.stack([numpy(g, v) for g, v in zip(out[at:at + len(tr)], tr)], 1))
            at += len(tr)
        return L.detach().numpy(), grads, dL_dx, states


# --- JAX: vmap of lax.scan over a fixed number of cases, compiled per bucket ------------------

@functools.lru_cache(maxsize=32)
def _jax_compiled(step, n_state, output, loss, shape):
    import jax
    import jax.numpy as jnp
    from jax import lax

    from comparisons.check.cell_model import _theta

    def L(params, eps, xs, target, w, w_b):
        def body(state, inputs):
            x_t, eps_t = inputs
            state = tuple(step(jnp, params, x_t, state))
            state = tuple(v + e for v, e in zip(state, eps_t))          # dL/deps = dL/dstate_t
            return state, state[0]

        init = tuple(jnp.zeros(eps.shape[2:], xs.dtype) + eps[k, 0] for k in range(n_state))
        _, hs = lax.scan(body, init, (xs, jnp.moveaxis(eps[:, 1:], 0, 1)))
        z = jnp.matmul(hs, params["W_hy"].T, precision=lax.Precision.HIGHEST) + params["b_y"]
        if loss == "squared_error":
            l = 0.5 * jnp.sum((_theta(jnp, output, z) - target) ** 2, axis=-1)
        else:
            shifted = z - jnp.max(z, axis=-1, keepdims=True)
            l = -jnp.sum((shifted - jnp.log(jnp.sum(jnp.exp(shifted), -1, keepdims=True))) * target, -1)
        return jnp.sum(l * w[:, None] * w_b[None, :])

    grad = jax.value_and_grad(L, argnums=(0, 1, 2))
    return jax.jit(jax.vmap(grad))


def _bucket(n: int, smallest: int) -> int:
    size = smallest
    while size < n:
        size *= 2
    return size


def jax_groups(cases: list) -> list:
    """[(indices, (Tp, Bp, Dp, Hp, Op))]: few padded shapes, as each costs a compilation
    (about a second) while a compiled step costs microseconds. Up to two stacks' worth of
    cases share one shape (a check of 20 cases compiles once); more go narrow (H <= 8)
    and wide apart. Each group's T is padded to the power of two above its longest
    (padded steps are cheap here), B, D, O to the powers of two above all cases'."""
    B, D, O = (_bucket(max(getattr(c, k) for c in cases), 4) for k in "BDO")
    by_width = {}
    for i, c in enumerate(cases):
        by_width.setdefault(len(cases) <= 2 * JAX_STACK or c.H <= 8, []).append(i)
    out = []
    for narrow, idx in sorted(by_width.items()):
        T, H = (_bucket(max(cases[i].T for i in idx), 16), _bucket(max(cases[i].H for i in idx), 8))
        out += [(idx[j:j + JAX_STACK], (T, B, D, H, O)) for j in range(0, len(idx), JAX_STACK)]
    return out


def jax_stacked(step, s: Stack, n_state: int, output: str, loss: str):
    """``jax.vmap(jax.value_and_grad)`` of the scan over the stack's cases (x64, HIGHEST)."""
    import jax

    from reference.jax_grad import scope

    N, T, B, _ = s.xs.shape
    H = s.params["W_hy"].shape[-1]
    shape = (N,) + tuple(s.xs.shape[1:]) + (H, s.target.shape[-1])
    with scope(), jax.default_matmul_precision("highest"):
        fn = _jax_compiled(step, n_state, output, loss, shape)
        value, (g, g_eps, g_xs) = jax.device_get(fn(s.params, np.zeros((N, n_state, T + 1, B, H)), s.xs,
                                                    s.target, s.w, s.w_b))
    states = [np.asarray(g_eps[:, k]) for k in range(n_state)]
    return np.asarray(value), {k: np.asarray(v) for k, v in g.items()}, np.asarray(g_xs), states


# --- finite differences: the complex step through the NumPy step, every perturbation at once --

def numeric_stacked(step, case: Case, params: dict, xs, ys, n_state: int) -> Gradients:
    """dL/dtheta by the complex step (Im L(theta + i h e_k) / h, h = 1e-150: exact to float64
    rounding, no truncation or cancellation error) through the NumPy step, the P perturbed
    copies of theta evaluated as one stack (the built-in steps take a case axis); central
    differences where the output layer has a kink (ReLU). No dL/dh_t."""
    import array_api_compat

    from comparisons.check.cell_model import _theta
    from reference.numeric import differentiate

    analytic = case.output != "relu"
    T, B, _ = xs.shape
    H, O = params["W_hy"].shape[1], params["W_hy"].shape[0]
    w = step_weights(case.reduction, T, np.float64)
    target = np.eye(O)[ys] if case.loss == "cross_entropy" else ys

    def evaluate(batch):
        R = len(batch["W_hy"])
        dtype = np.complex128 if analytic else np.float64
        xp = array_api_compat.array_namespace(np.zeros(1, dtype))
        state = tuple(np.zeros((R, B, H), dtype) for _ in range(n_state))
        hs = []
        for t in range(T):
            state = tuple(step(xp, batch, xs[t], state))
            hs.append(state[0])
        h = np.stack(hs, 1)                                                        # (R, T, B, H)
        z = h @ np.swapaxes(batch["W_hy"], -1, -2)[:, None] + batch["b_y"][:, None, None]
        if case.loss == "squared_error":
            l = 0.5 * ((_theta(np, case.output, z) - target) ** 2).sum(-1)
        else:
            shifted = z - z.real.max(-1, keepdims=True)
            l = -((shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))) * target).sum(-1)
        return (l.mean(-1) * w).sum(-1)

    with np.errstate(all="ignore"):
        L0, grads = differentiate(params, evaluate, analytic=analytic, row_cost=T * B * params["W_hh"].shape[0])
    return Gradients(L0, grads, None)


# --- the references and the error sizes of many cases at once --------------------------------

# The Monte Carlo run's cost, measured (gated_mc's NumPy engine, LSTM, 8 copies, 2026-12-04):
# per step ~0.25 ms whatever the stack holds plus ~3 us per (case, batch row, hidden unit) of
# the padded stack (torch's dispatch engine before it: 2.7 ms and 10 us). Padding is exact but
# not free: one stack per width put 4.2 times the default mixture's real entries through the
# perturbed runs; grouping by this cost model instead ran them in 78% of the time.
STEP_COST = 2.5e-4
ENTRY_COST = 3.0e-6


def _cost(size: tuple) -> float:
    """Predicted seconds of a group's Monte Carlo run (STEP_COST, ENTRY_COST); ``size``: the
    group's (cases, largest T, B, H)."""
    n, T, B, H = size
    return T * (STEP_COST + ENTRY_COST * n * B * H)


def _groups(cases: list) -> list:
    """torch stacks: cases of one dtype (the Monte Carlo runs' u), at most TORCH_STACK each,
    chosen to minimise the predicted cost (:func:`_cost`): first a stack per power-of-two
    band of H and of T, then the pair of stacks whose merging saves the most merged, until
    none saves anything. A long case's steps are paid once whatever joins it, so short
    narrow cases ride along with long ones where that is cheaper than their own pass, and a
    wide case never makes a narrow long stack's every step wide."""
    seeds = {}
    for i, c in enumerate(cases):
        seeds.setdefault((c.dtype, _bucket(c.H, 1), _bucket(c.T, 1)), []).append(i)
    out = []
    for key in sorted(seeds):
        idx = sorted(seeds[key], key=lambda i: -cases[i].T)
        out += [idx[j:j + TORCH_STACK] for j in range(0, len(idx), TORCH_STACK)]
    size = lambda g: (len(g),) + tuple(max(getattr(cases[i], k) for i in g) for k in "TBH")
    merged = lambda a, b: (a[0] + b[0],) + tuple(max(x, y) for x, y in zip(a[1:], b[1:]))
    sizes = [size(g) for g in out]
    while True:
        best = None
        for a, b in itertools.combinations(range(len(out)), 2):
            if cases[out[a][0]].dtype != cases[out[b][0]].dtype or sizes[a][0] + sizes[b][0] > TORCH_STACK:
                continue
            saved = _cost(sizes[a]) + _cost(sizes[b]) - _cost(merged(sizes[a], sizes[b]))
            if saved > 0 and (best is None or saved > best[0]):
                best = (saved, a, b)
        if best is None:
            return [sorted(g, key=lambda i: -cases[i].T) for g in out]
        _, a, b = best
        out[a] += out.pop(b)
        sizes[a] = merged(sizes[a], sizes.pop(b))


def references(step, cases: list, arrays: list, param_shapes: dict, n_state: int, names=("torch", "jax"),
               magnitudes: bool = True) -> list:
    """For each case (one configuration and dtype across ``cases``): ({reference name:
    Gradients}, magnitude dict or None, dL/dc_t of torch or None). ``arrays``: float64."""
    from comparisons.check import montecarlo

    config = cases[0]          # one configuration; dtypes may differ (stacks are per dtype)
    mags = [None] * len(cases)
    results = [{} for _ in cases]
    cell_state = [None] * len(cases)
    jax_failure = []
    jax_thread = None
    if "jax" in names:
        def run_jax():
            try:
                for idx, shape in jax_groups(cases):
                    s = stack([cases[i] for i in idx], [arrays[i] for i in idx], param_shapes, sizes=shape,
                              count=JAX_STACK)
                    value, g, g_x, states = jax_stacked(step, s, n_state, config.output, config.loss)
                    for j, i in enumerate(idx):
                        results[i]["jax"] = unstack(s, j, value[j], g, g_x, states)[0]
            except BaseException as exc:       # reported in the caller's thread
                jax_failure.append(exc)
        jax_thread = threading.Thread(target=run_jax, name="bptt-xval-gated-jax")
        jax_thread.start()
    try:
        if "torch" in names:
            for idx in _groups(cases):
                u = max(montecarlo.UNIT_ROUNDOFF[cases[idx[0]].dtype], montecarlo.SMALLEST_U)
                s = stack([cases[i] for i in idx], [arrays[i] for i in idx], param_shapes)
                value, g, g_x, states = torch_stacked(step, s, n_state, config.output, config.loss)
                for j, i in enumerate(idx):
                    results[i]["torch"], cell_state[i] = unstack(s, j, value[j], g, g_x, states)
                if not magnitudes:
                    continue
                _magnitudes(step, s, idx, results, mags, n_state, u)
        if "numeric" in names:
            for i, (case, (p, x, y)) in enumerate(zip(cases, arrays)):
                rows = sum(v.size for v in p.values()) + 1
                if rows * case.T * case.B * p["W_hh"].shape[0] <= NUMERIC_FAST_WORK:
                    results[i]["numeric"] = numeric_stacked(step, case, p, x, y, n_state)
    finally:
        if jax_thread is not None:
            jax_thread.join()
    if jax_failure:
        raise jax_failure[0]
    return list(zip(results, mags, cell_state))


def _magnitudes(step, s, idx, results, mags, n_state, u, engine="numpy"):
    """The Monte Carlo error sizes of every case of the stack, from one run of K copies (the
    built-in gated cells take no branch, so there is no kink to look for). ``engine``:
    "numpy", the recurrence written out (``gated_mc``), or "dispatch", torch's own forward and
    backward under the dispatch mode (the same error model, ~3 times slower)."""
    import torch

    from comparisons.check import gated_mc, montecarlo
    from comparisons.check.tolerances import later_steps_scale

    K = montecarlo.SAMPLES
    seed = int(s.cases[0].seed)
    if engine == "numpy":
        value, g, g_x, states = gated_mc.run(is_fast(step), s, K, s.cases[0].output, s.cases[0].loss, u, seed=seed)
    else:
        generator = torch.Generator().manual_seed(seed)
        with montecarlo._mode(u, generator, noise=montecarlo.byte_noise(np.random.default_rng(seed))):
            value, g, g_x, states = torch_stacked(step, s, n_state, s.cases[0].output, s.cases[0].loss, copies=K,
                                                  rounding=(u, generator))
    N = len(s.cases)
    for j, i in enumerate(idx):
        draws = [unstack(s, j, value[k * N + j], g, g_x, states, row=k * N + j)[0] for k in range(K)]
        reference = results[i]["torch"]
        M = montecarlo.from_draws(reference, draws, u)
        for target in ("dL_dh", "dL_dx"):
            ref = getattr(reference, target)
            if target in M and ref is not None:
                M[target] = np.maximum(M[target], later_steps_scale(np.abs(ref).reshape(len(ref), -1).max(1)))
        mags[i] = M


# --- the check ------------------------------------------------------------------------------

def is_fast(step) -> str | None:
    """The built-in cell's name when ``step`` is one the fast path stacks, else None."""
    from comparisons.check.cell_model import gru_d2l_step, gru_step, lstm_step

    return {lstm_step: "lstm", gru_step: "gru", gru_d2l_step: "gru_d2l"}.get(step)


def check_gated_cases(step, fn, drawn: list, *, param_shapes, state, output, loss, reduction,
                      names=("torch", "jax"), clip=None) -> list:
    """``Outcome`` per case of ``drawn`` (one configuration, any dtypes; ``output`` and
    ``reduction`` are the cases' own), the references ``names`` computed per group."""
    from comparisons.check.cell_model import make_cell_problem, _gates

    arrays = [make_cell_problem(c, param_shapes) for c in drawn]
    arrays64 = [({k: v.astype(np.float64) for k, v in p.items()}, x.astype(np.float64),
                 y if loss == "cross_entropy" else y.astype(np.float64)) for p, x, y in arrays]
    with np.errstate(all="ignore"):
        refs = references(step, drawn, arrays64, param_shapes, len(state), names)
    return [judge_case(fn, case, a, r, state=state, gates=_gates(param_shapes), clip=clip)
            for case, a, r in zip(drawn, arrays, refs)]


def _clipped(g: Gradients, c: float) -> Gradients:
    """The parameters' gradients clipped elementwise at c (not h0, c0 or dL/dh_t: a clip acts
    on what a training step uses)."""
    return g._replace(grads={k: (v if k in INITIAL.values() else np.clip(v, -c, c)) for k, v in g.grads.items()})


def inconclusive(case: Case, results: dict, magnitude, gates: int) -> str | None:
    """Why no verdict can be given on ``case`` (``check_cell_case``'s reasons), from the case
    and its references alone, or None."""
    from comparisons.check.checker import ILL_CONDITIONED
    from comparisons.check.tolerances import case_tolerance

    finite = all(np.isfinite(r.loss) and all(np.all(np.isfinite(g)) for g in r.grads.values())
                 for r in results.values())
    if not finite:
        return "reference not finite: the float64 references overflow"
    limit = float(np.finfo(case.dtype).max) * 1e-3
    if any(abs(r.loss) > limit or any(np.max(np.abs(g), initial=0) > limit for g in r.grads.values())
           for r in results.values()):
        return f"{case.dtype} overflows on this case"
    if magnitude is not None:
        rtol = case_tolerance(case.replace(H=gates * case.H)).rtol
        if rtol * magnitude["amplification"] >= ILL_CONDITIONED:
            return (f"ill-conditioned beyond {case.dtype}: the recurrence can grow a rounding error "
                    f"{magnitude['amplification']:.3g} times beyond the gradients' size")
    return None


def run_candidate(fn, case: Case, arrays, state):
    """The candidate's ``Gradients`` on the case (``candidate.run_gated_candidate``)."""
    from comparisons.check.candidate import run_gated_candidate

    return run_gated_candidate(fn, case, arrays, state)


def judge(case: Case, got: Gradients, results: dict, magnitude, arrays, gates: int, clip=None):
    """The candidate's ``got`` against the references ``results`` (the case's verdict).
    ``clip``: a min-char-rnn copy's own bound, as ``checker.judge`` takes it: a case clipped
    past judging is inconclusive, else the parameters' references are clipped at it."""
    from comparisons.check.cell_model import finite_differences_hold
    from comparisons.check.checker import Outcome, clip_reason
    from comparisons.check.compare import compare

    why = clip_reason(results, clip, INITIAL.values())
    if why is not None:
        return Outcome(case, "inconclusive", reason=why, result=got)
    if clip is not None:
        results = {name: _clipped(g, clip) for name, g in results.items()}
    tol_case = case.replace(H=gates * case.H)
    if "numeric" in results and not finite_differences_hold(results, tol_case, magnitude):
        results = {k: v for k, v in results.items() if k != "numeric"}    # autodiff judges alone
    comparisons = []
    for name, r in results.items():
        mine = got if all(k in r.grads for k in got.grads) else got._replace(   # numeric: no h0, c0
            grads={k: v for k, v in got.grads.items() if k in r.grads})
        kind = "autodiff" if name != "numeric" else "central" if case.output == "relu" else "complex_step"
        comparisons.append(compare(mine, r, name, tol_case, magnitude, kind=kind))
    status = "agree" if all(c.ok for c in comparisons) else "disagree"
    return Outcome(case, status, comparisons, result=got, references=results, magnitude=magnitude, arrays=arrays)


def judge_case(fn, case: Case, arrays, prepared, *, state, gates, clip=None):
    """One case's ``Outcome``: ``check_cell_case``'s rules on the stacked references."""
    from comparisons.check.checker import Outcome

    results, magnitude, _ = prepared
    why = inconclusive(case, results, magnitude, gates)
    if why is not None:
        return Outcome(case, "inconclusive", reason=why)
    got = run_candidate(fn, case, arrays, state)
    if isinstance(got, Outcome):
        return got
    return judge(case, got, results, magnitude, arrays, gates, clip=clip)


def failure(outcome, cell: str, gates: int, diagnose: bool = True):
    """The ``Failure`` of a failed gated outcome, diagnosed against the gated catalogue."""
    from comparisons.check import gated_mistakes
    from comparisons.check.checker import undiagnosed_failure

    f = undiagnosed_failure(outcome)
    if diagnose and outcome.worst() is not None:
        f.diagnosis, f.notes = gated_mistakes.diagnose(cell, outcome, gates)
    return f


def check_convention(fn, *, output=None, loss=None, reduction=None, cases=100, seed=0, dtype="float64",
                     sizes=None, references=("torch", "jax", "numeric"), shrink_failures=True, strict_clip=False):
    """Check a gated convention's adapter (``fn.cell``: "lstm" or "gru"; ``comparisons.conventions``)
    against the suite's cell of that name, in the convention's case space (``fn.case_space``:
    its loss, reduction, inputs, sizes; explicit arguments win). A min-char-rnn copy that clips
    (``fn.clip``) is compared with the true gradients clipped at its own c, and the summary says so."""
    from comparisons.check.cell_model import builtin_cells

    cell = builtin_cells()[fn.cell]
    space_defaults = dict(getattr(fn, "case_space", None) or {})
    output = output or space_defaults.get("output", "identity")
    loss = loss or space_defaults.get("loss", "squared_error")
    reduction = reduction or space_defaults.get("reduction", "mean")
    # a size the style fixes (one sequence: B = 1) stays fixed, whatever --sizes says
    fixed = {k: v for k, v in space_defaults.get("sizes", {}).items() if k in space_defaults.get("fixed", ())}
    merged = {**space_defaults.get("sizes", {}), **(sizes or {}), **fixed}
    space = CaseSpace.make(merged or None, "none", space_defaults.get("inputs"), None,
                           space_defaults.get("tie_D_O", False), loss=loss)
    clip = None if strict_clip else getattr(fn, "clip", None)
    result = check_gated(cell.step, fn, param_shapes=cell.param_shapes, state=cell.state, output=output, loss=loss,
                         reduction=reduction, cases=cases, seed=seed, dtype=dtype, references=references,
                         shrink_failures=shrink_failures, space=space, clip=clip)
    if clip is not None and getattr(fn, "clip_note", None):
        result.notes.append(fn.clip_note)
    from comparisons.check.checker import writes_notes

    result.notes += writes_notes(fn)
    if getattr(fn, "names_note", None) and not result.ok:     # the failures use the suite's names
        result.notes.append(fn.names_note)
    return result


def check_gated(step, fn, *, param_shapes, state, output="identity", loss="squared_error", reduction="mean",
                cases=100, seed=0, dtype="float64", sizes=None, references=("torch", "jax"),
                shrink_failures=True, diagnose=True, space=None, clip=None):
    """``check_cell`` of a built-in gated cell (``is_fast(step)``) on the fast path: the same
    CheckResult, failures diagnosed against the gated catalogue (``gated_mistakes``).
    ``space``: a CaseSpace (default: ``sizes``, dense inputs); ``clip``: compare with the true
    gradients clipped elementwise at this c (min-char-rnn's own clip; 1-Lipschitz, so the
    tolerances hold)."""
    from comparisons.check import backends
    from comparisons.check.cell_model import _gates
    from comparisons.check.checker import CheckResult, shrink_with

    found, skipped = backends.available(tuple(references))
    names = tuple(n for n in references if n in found)
    if "torch" not in names:
        raise BackendUnavailable(f"references: the gated fast path needs torch ({skipped.get('torch', '')})")
    space = space if space is not None else CaseSpace.make(sizes, "none", None, None, False, loss=loss)
    drawn = draw_in_dtypes(cases, seed, dtype, space=space, output=output, loss=loss, reduction=reduction)
    run = functools.partial(check_gated_cases, step, fn, param_shapes=param_shapes, state=state, output=output,
                            loss=loss, reduction=reduction, names=names, clip=clip)
    cell = is_fast(step)
    failures, why_not, ids = [], {}, []
    for case, outcome in zip(drawn, run(drawn)):
        if outcome.status == "inconclusive":
            ids.append(case.id)
            why_not.setdefault(outcome.reason.split(":")[0], []).append(case.id)
            continue
        if not outcome.failed:
            continue
        f = failure(outcome, cell, _gates(param_shapes), diagnose=diagnose)
        if shrink_failures and f.status in ("disagree", "non_finite", "raised"):
            f.shrunk = shrink_with(lambda c: run([c])[0].failed, case, space)
        failures.append(f)
    return CheckResult(not failures, failures, len(drawn), ids, skipped, sorted(names), {},
                       space.to_dict(), [], why_not)


def plan_references(cell_name: str, drawn: list, wanted=("torch", "jax", "numeric")) -> tuple:
    """For grading a class: ([(references, magnitude) per case], {index: why inconclusive},
    the reference names used) of the built-in cell ``cell_name`` on ``drawn``."""
    from comparisons.check import backends
    from comparisons.check.cell_model import _gates, builtin_cells, make_cell_problem

    cell = builtin_cells()[cell_name]
    found, skipped = backends.available(tuple(wanted))
    names = tuple(n for n in wanted if n in found)
    if "torch" not in names:
        raise BackendUnavailable(f"references: the gated cells need torch ({skipped.get('torch', '')})")
    arrays64 = []
    for c in drawn:
        p, x, y = make_cell_problem(c, cell.param_shapes)
        arrays64.append(({k: v.astype(np.float64) for k, v in p.items()}, x.astype(np.float64),
                         y if c.loss == "cross_entropy" else y.astype(np.float64)))
    with np.errstate(all="ignore"):
        refs = references(cell.step, drawn, arrays64, cell.param_shapes, len(cell.state), names)
    gates = _gates(cell.param_shapes)
    prepared = [(r, m) for r, m, _ in refs]
    why = {i: w for i, (c, (r, m)) in enumerate(zip(drawn, prepared)) if (w := inconclusive(c, r, m, gates)) is not None}
    return prepared, why, names

