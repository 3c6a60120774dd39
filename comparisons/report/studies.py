"""The report's studies beyond the RNN agreement table (issue 6), computed, not drawn:

- the MLP of seed 002: per-layer delta norms from every backend, and their agreement;
- seed 003's forward view: sum-over-products and RTRL against BPTT (agreement here,
  cost as T grows in ``costs``, which is timing and so kept out of report.json);
- truncated BPTT: how far the truncated gradient is from the full one, by k and rho;
- lockstep training: the same SGD run with manual, torch and jax gradients.
"""

from __future__ import annotations

import time

import numpy as np

from comparisons.check import backends
from comparisons.check.cases import Case, make_gated_problem, make_mlp_problem, make_problem
from comparisons.check.tolerances import case_tolerance, compare_array, tolerance
from manual import gated, mlp, rtrl, scalar_rnn

# Lockstep runs in float64: each step's gradients differ by rounding (~1e-16 relative),
# and 40 steps of SGD at this learning rate amplify differences by far less than 1e6.
LOCKSTEP_TOLERANCE = 1e-10
MLP_SETTINGS = [("tanh", [6, 16, 16, 16, 16, 16, 16, 3]), ("sigmoid", [6, 16, 16, 16, 16, 16, 16, 3]),
                ("relu", [6, 16, 16, 16, 16, 16, 16, 3])]


def _mlp_reference(name):
    module = {"torch": "reference.torch_autograd", "jax": "reference.jax_grad", "numeric": "reference.numeric"}[name]
    backends.load(name)  # raises BackendUnavailable when the library is missing
    import importlib

    return importlib.import_module(module).mlp_loss_and_grads


def mlp_study(seed: int) -> list:
    """Per-layer ||delta^(l)|| (the feed-forward analogue of vanishing gradients) and agreement."""
    out = []
    for activation, widths in MLP_SETTINGS:
        params, X, Y = make_mlp_problem(widths, 8, seed=seed)
        acts = [activation] * (len(widths) - 2) + ["identity"]
        m = mlp.loss_and_grads(params, X, Y, activations=acts)
        row = {"activation": activation, "widths": widths,
               "delta_norms": {"manual": [float(np.linalg.norm(d)) for d in m.deltas]}, "errors": {}}
        for name in ("torch", "jax", "numeric"):
            try:
                fn = _mlp_reference(name)
            except backends.BackendUnavailable:
                continue
            _, grads, deltas = fn(params, X, Y, activations=acts)
            kind = "central" if name == "numeric" and activation == "relu" else "autodiff"
            # depth plays the part of T, the widest layer that of H (see tolerances.py)
            tol = tolerance("float64", len(widths), X.shape[0], 0, max(widths), 0, reference=kind, loss=m.loss)
            row["errors"][name] = {k: compare_array(m.grads[k], grads[k], tol).to_dict() for k in grads}
            if deltas:
                row["delta_norms"][name] = [float(np.linalg.norm(d)) for d in deltas]
        row["agree"] = all(e["ok"] for errs in row["errors"].values() for e in errs.values())
        out.append(row)
    return out


def forward_mode_study(seed: int) -> dict:
    """RTRL and sum-over-products against BPTT (manual.rnn) on a few cases: max relative error."""
    manual = backends.load("manual")
    rows = []
    for i, hidden in enumerate(("tanh", "sigmoid", "relu")):
        case = Case(seed=seed * 1000 + 500 + i, T=12, B=2, D=3, H=5, O=2, h0="vector", hidden=hidden,
                    reduction="sum")
        params, xs, ys = make_problem(case)
        bptt = manual(params, xs, ys, **case.config())
        tol = case_tolerance(case)
        for method in rtrl.METHODS:
            r = rtrl.loss_and_grads(params, xs, ys, method=method, **case.config())
            errs = {k: compare_array(r.grads[k], bptt.grads[k], tol) for k in bptt.grads}
            rows.append({"hidden": hidden, "method": method, "agree": all(e.ok for e in errs.values()),
                         "max_rel": max(e.rel for e in errs.values())})
    return {"rows": rows, "agree": all(r["agree"] for r in rows)}


def gated_study(seed: int) -> list:
    """LSTM and GRU: manual BPTT against torch.nn.LSTM / nn.GRU and JAX, both dtypes,
    compared by the checker's own ``compare`` at the classical scale (n counting the stacked
    gates in H, dL/dh_t per step; ``check_cell`` widens it where Monte Carlo arithmetic
    measures more rounding, which this fixed, moderate case does not need). nn.LSTM and
    nn.GRU are PyTorch's own modules, a reference independent of any step we wrote."""
    import importlib

    from comparisons.check.compare import compare

    rows = []
    for cell in ("lstm", "gru"):     # torch.nn has these two; d2l's GRU is in "Other cells" (check_cell)
        for dtype in ("float64", "float32"):
            T, B, D, H, O = 20, 3, 4, 6, 2
            params, xs, ys = make_gated_problem(cell, T, B, D, H, O, seed=seed, dtype=dtype)
            m = gated.CELLS[cell](params, xs, ys)
            # float32 is compared with float64 references on the same values
            p64 = {k: v.astype(np.float64) for k, v in params.items()}
            gates = 4 if cell == "lstm" else 3
            case = Case(seed=seed, T=T, B=B, D=D, H=gates * H, O=O, dtype=dtype)   # n counts the gates
            row = {"cell": cell, "dtype": dtype, "errors": {}}
            for name, module in (("torch.nn", "reference.torch_autograd"), ("jax", "reference.jax_grad")):
                try:
                    backends.load(name.split(".")[0])
                except backends.BackendUnavailable:
                    continue
                ref = importlib.import_module(module).gated_loss_and_grads(
                    cell, p64, xs.astype(np.float64), ys.astype(np.float64))
                c = compare(m, ref, name, case, None, kind="autodiff")
                row["errors"][name] = {k: e.to_dict() for k, e in c.errors.items() if k != "dL_dx"}
            row["agree"] = all(e["ok"] for errs in row["errors"].values() for e in errs.values())
            rows.append(row)
    return rows


def costs(Ts=(4, 8, 16, 32, 64), repeats: int = 3) -> dict:
    """Seconds for BPTT, RTRL and sum-over-products as T grows (H = 8): timing, not in report.json."""
    manual = backends.load("manual")
    out = {"T": list(Ts), "seconds": {"BPTT": [], "RTRL": [], "sum over products": []}}
    for T in Ts:
        case = Case(seed=0, T=T, B=1, D=2, H=8, O=1)
        params, xs, ys = make_problem(case)
        for label, fn in (("BPTT", lambda: manual(params, xs, ys)),
                          ("RTRL", lambda: rtrl.loss_and_grads(params, xs, ys, method="rtrl")),
                          ("sum over products", lambda: rtrl.loss_and_grads(params, xs, ys,
                                                                            method="sum_over_products"))):
            best = float("inf")
            for _ in range(repeats):
                started = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - started)
            out["seconds"][label].append(best)
    return out


def truncation_study(seed: int, loaded: dict) -> dict:
    """||g_k - g_full|| / ||g_full|| for dL/dW_hh by truncation length k and spectral radius;
    every truncated gradient is also checked against one autodiff reference (torch's detach(),
    else jax's stop_gradient; the tests check both on every configuration). One reference
    keeps the report fast: jax compiles once per k."""
    ks = [1, 2, 4, 8, 16, 32]
    reference = next((n for n in ("torch", "jax") if n in loaded), None)
    # None, not True, when there is nothing to agree with
    out = {"k": ks, "T": 64, "rel_distance": {}, "references_agree": None if reference is None else True,
           "reference": reference}
    for regime in ("contractive", "near_edge", "edge", "expansive"):
        case = Case(seed=seed * 1000 + 700, T=64, B=2, D=3, H=8, O=2, regime=regime)
        params, xs, ys = make_problem(case)
        full = loaded["manual"](params, xs, ys).grads["W_hh"]
        distances = []
        for k in ks:
            g = loaded["manual"](params, xs, ys, truncate=k).grads["W_hh"]
            distances.append(float(np.linalg.norm(g - full) / np.linalg.norm(full)))
            tol = case_tolerance(case)
            if reference is not None:
                ref = loaded[reference](params, xs, ys, truncate=k).grads["W_hh"]
                out["references_agree"] &= compare_array(g, ref, tol).ok
        out["rel_distance"][regime] = distances
    return out


def _sgd(grad_fn, weights: dict, steps: int, lr: float):
    """w <- w - lr dL/dw, ``steps`` times; returns (loss per step, weights per step)."""
    losses, history = [], [{k: v.copy() for k, v in weights.items()}]
    for _ in range(steps):
        loss, grads = grad_fn(weights)
        weights = {k: v - lr * grads[k] for k, v in weights.items()}
        losses.append(loss)
        history.append(weights)
    return losses, history


def lockstep(seed: int, loaded: dict, steps: int = 40) -> dict:
    """Train seed 000's scalar RNN and a matrix RNN with each backend's gradients from the same
    start; the loss and weight trajectories must agree over the whole run."""
    rng = np.random.default_rng(seed)
    T = 8
    x, y_star = rng.normal(size=T), 0.7
    xs, ys = x.reshape(T, 1, 1), np.full((T, 1, 1), y_star)
    start = {"W_xh": np.array([[0.4]]), "W_hh": np.array([[0.9]]), "b_h": np.zeros(1),
             "W_hy": np.array([[0.5]]), "b_y": np.zeros(1)}

    def seed000_grads(w):
        s = scalar_rnn.seed000(w["W_hh"][0, 0], w["W_xh"][0, 0], w["W_hy"][0, 0], x, y_star)
        # seed 000 trains w_r, w_x, w_y; its model has no biases, so they stay at 0
        return s.L, {"W_xh": np.array([[s.dL_dw_x]]), "W_hh": np.array([[s.dL_dw_r]]), "b_h": np.zeros(1),
                     "W_hy": np.array([[s.dL_dw_y]]), "b_y": np.zeros(1)}

    def contract_grads(fn, xs_, ys_, frozen=()):
        def grads(w):
            r = fn(w, xs_, ys_, reduction="last") if frozen else fn(w, xs_, ys_)
            g = {k: (np.zeros_like(v) if k in frozen else v) for k, v in r.grads.items()}
            return r.loss, g
        return grads

    runs = {"scalar": {"seed 000": _sgd(seed000_grads, start, steps, 0.5)}}
    for name in ("manual", "torch", "jax"):
        if name in loaded:
            runs["scalar"][name] = _sgd(contract_grads(loaded[name], xs, ys, frozen=("b_h", "b_y")),
                                        start, steps, 0.5)
    case = Case(seed=seed * 1000 + 800, T=16, B=4, D=3, H=8, O=2, regime="near_edge")
    params, mxs, mys = make_problem(case)
    runs["matrix"] = {name: _sgd(contract_grads(loaded[name], mxs, mys), params, steps, 0.5)
                      for name in ("manual", "torch", "jax") if name in loaded}
    out = {}
    for model, by_backend in runs.items():
        base_losses, base_history = next(iter(by_backend.values()))
        deviation = max(float(np.abs(w[k] - b[k]).max())
                        for _, history in by_backend.values()
                        for w, b in zip(history, base_history) for k in w)
        out[model] = {"losses": {n: [float(v) for v in l] for n, (l, _) in by_backend.items()},
                      "max_weight_deviation": deviation,
                      "agree": deviation <= LOCKSTEP_TOLERANCE,
                      "loss_drop": float(base_losses[-1] / base_losses[0])}
    return out
