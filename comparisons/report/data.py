"""Everything the report shows, computed: agreement per case, norms across time, the
product bound, per-step contributions, precision growth and the seed-000 view.

Each backend's errors are measured against a float64 autodiff baseline from a
*different* library (manual and numeric against jax, jax against torch, torch against
jax), with the same ``comparisons.check.compare`` the checker uses. Rendering lives in
``comparisons.report.figures`` and ``comparisons.report.build``; this module only computes.
"""

from __future__ import annotations

import platform

import numpy as np

import bptt_xval
from comparisons.check import backends
from comparisons.report import evidence, studies
from comparisons.check.cases import Case, as_float64, make_problem
from comparisons.check.checker import numeric_is_cheap
from comparisons.check.compare import compare
from comparisons.check.tolerances import C_WEIGHT_SUMS, case_tolerance, magnitudes
from manual.activations import ACTIVATIONS
from manual.scalar_rnn import seed000
from reference.numeric import states

# numeric last: it is exact (complex step) but has no dL_dh and runs only on cheap cases
BASELINE_ORDER = ("jax", "torch", "numeric")
NORM_REGIMES = ("contractive", "near_edge", "edge", "expansive", "saturated")


def report_cases(seed: int, quick: bool = False) -> list[Case]:
    """The report's cases: the regimes (seed 000's propagation picture: loss at the last
    step, one sequence) and a sweep over the contract's configurations in both dtypes."""
    T = 24 if quick else 48
    cases = [Case(seed=seed * 1000 + i, T=T, B=1, D=3, H=16, O=2, regime=r, reduction="last")
             for i, r in enumerate(NORM_REGIMES)]
    sweep = [
        dict(hidden="tanh"), dict(hidden="sigmoid"), dict(hidden="relu"), dict(hidden="identity"),
        dict(hidden="tanh", output="sigmoid", h0="vector"),
        dict(hidden="tanh", output="tanh", reduction="sum", h0="batch"),
        dict(hidden="tanh", loss="cross_entropy", reduction="sum"),
        dict(hidden="relu", loss="cross_entropy", reduction="last", h0="batch"),
        dict(hidden="tanh", truncate=4),
        dict(hidden="sigmoid", reduction="sum", truncate=3, h0="vector"),
    ]
    if quick:
        sweep = sweep[:4] + sweep[6:7] + sweep[8:9]
    for j, config in enumerate(sweep):
        for dtype in ("float64", "float32"):
            cases.append(Case(seed=seed * 1000 + 100 + j, T=12, B=3, D=4, H=6, O=3,
                              regime="generic", dtype=dtype, **config))
    return cases


def run_case(case: Case, loaded: dict):
    """Results of every backend on ``case`` (its dtype) and float64 baselines."""
    params, xs, ys = make_problem(case)
    results = {}
    for name, fn in loaded.items():
        if name == "numeric" and not numeric_is_cheap(case):
            continue
        results[name] = fn(params, xs, ys, **case.config())
    params64, xs64, ys64 = as_float64(case, params, xs, ys)
    baselines = {name: (results[name] if case.dtype == "float64" else
                        loaded[name](params64, xs64, ys64, **case.config()))
                 for name in BASELINE_ORDER if name in results}
    return results, baselines, (params64, xs64, ys64)


def baseline_for(name: str, baselines: dict) -> str | None:
    return next((b for b in BASELINE_ORDER if b in baselines and b != name), None)


def dL_dh_norms(dL_dh: np.ndarray) -> list:
    return [float(v) for v in np.sqrt((dL_dh.astype(np.float64) ** 2).reshape(len(dL_dh), -1).sum(1))]


def pre_activations(case: Case, params64: dict, xs64: np.ndarray):
    """h_t (T+1, B, H) and a_t (T+1, B, H; a_0 unused = 0) from a float64 forward pass."""
    h, a, _, _ = states(params64, xs64, hidden=case.hidden, output=case.output)
    return h, np.concatenate([np.zeros_like(a[:1]), a])


def product_bound(case: Case, params64: dict, xs64: np.ndarray, dL_dh_T: float) -> list:
    """||dL/dh_T|| prod_{j=t+1}^{T} ||diag(phi'(a_j)) W_hh||_2 for t = 0..T (one sequence).

    With the loss at the last step only, dL/dh_t = J_{t+1}^T ... J_T^T dL/dh_T with
    J_j = diag(phi'(a_j)) W_hh, so this product of spectral norms bounds ||dL/dh_t||:
    it shows *why* the norms vanish (every factor < 1) or may explode (factors > 1).
    """
    h, a = pre_activations(case, params64, xs64)
    dphi = ACTIVATIONS[case.hidden][1]
    factors = [float(np.linalg.norm(dphi(a[j, 0], h[j, 0])[:, None] * params64["W_hh"], 2))
               for j in range(1, case.T + 1)]
    bound = [dL_dh_T]
    for f in reversed(factors):
        bound.append(bound[-1] * f)
    return bound[::-1]


def contributions(case: Case, params64: dict, xs64: np.ndarray, dL_dh: np.ndarray) -> list:
    """||e_t h_{t-1}^T||_F for t = 1..T: the per-step terms whose sum is dL/dW_hh."""
    h, a = pre_activations(case, params64, xs64)
    e = dL_dh[1:].astype(np.float64) * ACTIVATIONS[case.hidden][1](a[1:], h[1:])
    return [float(np.linalg.norm(np.einsum("bh,bk->hk", e[t], h[t]))) for t in range(case.T)]


def case_record(case: Case, results: dict, baselines: dict, arrays64) -> dict:
    """One entry of report.json's "cases" (contract schema, plus tolerances and baselines)."""
    params64, xs64, ys64 = arrays64
    base_dL_dh = next((baselines[b].dL_dh for b in BASELINE_ORDER if b in baselines), None)
    M = magnitudes(case, params64, xs64, ys64, base_dL_dh)
    errors, against, why = {}, {}, {}
    for name, result in results.items():
        b = baseline_for(name, baselines)
        if b is None:
            continue
        c = compare(result, baselines[b], b if name != "numeric" else "numeric", case, M)
        errors[name] = {k: e.to_dict() for k, e in c.errors.items()}
        for target, steps in c.steps.items():  # agreement per time step: dL_dh t = 0..T, dL_dx t = 1..T
            errors[name][target]["per_step_max_abs"] = [e.max_abs for e in steps]
            errors[name][target]["per_step_tol"] = [e.tol for e in steps]
            if target in c.first_bad:
                errors[name][target]["first_bad_step"] = c.first_bad[target]
        against[name], why[name] = b, c.why
    return {
        "id": case.id,
        "config": case.config(),
        "shapes": case.shapes(),
        "dtype": case.dtype,
        "regime": case.regime,
        "seed": case.seed,
        "h0": case.h0,
        # no baseline at all (every reference skipped) is not agreement
        "agree": bool(errors) and all(e["ok"] for errs in errors.values() for e in errs.values()),
        "errors": errors,
        "errors_against": against,
        "tolerance_why": why,
        "dL_dh_norms": {name: dL_dh_norms(r.dL_dh) for name, r in results.items() if r.dL_dh is not None},
    }


def seed000_view(w_r: float, loaded: dict, T: int = 6) -> dict:
    """Seed 000's scalar RNN for one w_r: dL/dh[k] from the seed's own recursion and from
    every backend through the contract's special case (D = H = O = B = 1, "last")."""
    rng = np.random.default_rng(0)
    x = 0.05 * rng.standard_normal(T)
    w_x, w_y, y_star = 0.5, 1.0, 1.0
    s = seed000(w_r, w_x, w_y, x, y_star)
    params = {"W_xh": np.array([[w_x]]), "W_hh": np.array([[w_r]]), "b_h": np.zeros(1),
              "W_hy": np.array([[w_y]]), "b_y": np.zeros(1)}
    xs = x.reshape(T, 1, 1)
    ys = np.full((T, 1, 1), y_star)
    per_backend = {"seed 000 recursion": [float(v) for v in s.dL_dh]}
    for name, fn in loaded.items():
        if name == "numeric":
            continue
        r = fn(params, xs, ys, reduction="last")
        per_backend[name] = [float(v) for v in r.dL_dh[:, 0, 0]]
    return {"w_r": w_r, "w_x": w_x, "w_y": w_y, "y_star": y_star, "x": [float(v) for v in x],
            "h": [float(v) for v in s.h], "y": s.y, "e": [float(v) for v in s.e],
            "dL_dh": per_backend,
            "max_spread": float(max(np.max(np.abs(np.array(v) - s.dL_dh)) for v in per_backend.values()))}


def precision_sweep(loaded: dict, seed: int, quick: bool) -> dict:
    """Relative error of dL/dW_hh in float32 against float64, as T grows, with the tolerance."""
    Ts = [1, 4, 16, 64] if quick else [1, 4, 16, 64, 256]
    out = {"T": Ts, "tolerance": [], "rel": {}}
    for T in Ts:
        # h0 given, so that dL/dW_hh = e_1 h_0^T is not exactly 0 at T = 1
        case = Case(seed=seed * 1000 + 900, T=T, B=2, D=3, H=8, O=2, regime="near_edge", h0="vector",
                    dtype="float32")
        results, baselines, arrays64 = run_case(case, {k: v for k, v in loaded.items() if k != "numeric"})
        rec = case_record(case, results, baselines, arrays64)
        # W_hh's own: the hidden layer's weight sums are held to C_WEIGHT_SUMS
        out["tolerance"].append(case_tolerance(case).with_C(C_WEIGHT_SUMS).rtol)
        for name, errs in rec["errors"].items():
            out["rel"].setdefault(name, []).append(errs["W_hh"]["rel"])
    return out


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": backends.library_version("torch"),
        "jax": backends.library_version("jax"),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }


def collect(seed: int = 0, quick: bool = False, progress=None) -> dict:
    """Run the whole report. ``progress(description)`` is called before each unit of work."""
    loaded, skipped = backends.available()
    progress = progress or (lambda description: None)
    cases = report_cases(seed, quick)
    records, figures = [], {"norms": [], "contributions": []}
    for case in cases:
        progress(f"case {case.id}")
        results, baselines, arrays64 = run_case(case, loaded)
        record = case_record(case, results, baselines, arrays64)
        records.append(record)
        if case.regime in NORM_REGIMES and case.reduction == "last" and case.dtype == "float64":
            dL_dh_T = record["dL_dh_norms"].get("manual", [0.0])[-1]
            figures["norms"].append({
                "regime": case.regime, "id": case.id,
                "radius": float(np.max(np.abs(np.linalg.eigvals(arrays64[0]["W_hh"])))),
                "norms": record["dL_dh_norms"],
                "bound": product_bound(case, arrays64[0], arrays64[1], dL_dh_T)})
            figures["contributions"].append({
                "regime": case.regime,
                "terms": {n: contributions(case, arrays64[0], arrays64[1], r.dL_dh)
                          for n, r in results.items() if r.dL_dh is not None}})
    progress("seed 000 view")
    figures["seed000"] = [seed000_view(w_r, loaded) for w_r in (0.5, 1.5)]
    progress("precision sweep")
    figures["precision"] = precision_sweep(loaded, seed, quick)
    progress("studies: MLP, forward mode, truncation, lockstep training")
    figures["mlp"] = studies.mlp_study(seed)
    figures["forward_mode"] = studies.forward_mode_study(seed)
    figures["truncation"] = studies.truncation_study(seed, loaded)
    figures["lockstep"] = studies.lockstep(seed, loaded)
    figures["gated"] = studies.gated_study(seed)
    progress("other cells: check_cell on every built-in cell")
    from comparisons.check.cells import other_cells_study
    figures["cells"] = other_cells_study(seed, cases=2 if quick else 6)
    progress("resolving power of the gated checks (LSTM, GRU)")
    figures["gated_resolving_power"] = gated_resolving(seed, quick)
    studies_agree = bool(all(m["agree"] for m in figures["mlp"]) and figures["forward_mode"]["agree"]
                     and all(g["agree"] for g in figures["gated"])
                     and all(c["agree"] for c in figures["cells"].values())
                     and figures["truncation"]["references_agree"]
                     and all(run["agree"] for run in figures["lockstep"].values()))
    progress("evidence from the engines: torch's backward order and graph, JAX's backward loop")
    figures["evidence"] = evidence.collect(seed)
    progress("resolving power and verdicts on the default mixture")
    power = resolving(seed, quick)
    agree = sum(r["agree"] for r in records)
    # agreement per compared quantity (W_hh, ..., dL_dh, dL_dx): case x backend comparisons
    targets = {}
    for r in records:
        for errs in r["errors"].values():
            for target, e in errs.items():
                counts = targets.setdefault(target, {"compared": 0, "agree": 0})
                counts["compared"] += 1
                counts["agree"] += bool(e["ok"])
    report = {
        "suite_version": bptt_xval.__version__,
        "seed": seed,
        "quick": quick,
        "environment": environment(),
        "backends": sorted(loaded),
        "skipped_reasons": skipped,
        "cases": records,
        "summary": {"cases": len(records), "agree": agree, "disagree": len(records) - agree,
                    "skipped_backends": sorted(skipped), "studies_agree": studies_agree,
                    "targets": dict(sorted(targets.items()))},
        "figures_data": figures,
        "resolving_power": power,
    }
    return report


def gated_resolving(seed: int, quick: bool) -> dict:
    """The gated checks' resolving power (``resolve.gated_resolving_power``): the share of
    cases that catch a relative error planted in one gate's rows of dL/dW_hh, per cell."""
    from comparisons.measure import resolve

    if "torch" not in backends.available(("torch",))[0]:
        return {}
    return {cell: resolve.gated_resolving_power(cell, cases=3 if quick else 40, seed=seed) for cell in ("lstm", "gru", "gru_d2l")}


def resolving(seed: int, quick: bool) -> dict:
    """What the check can see and where it gives no verdict, on the checker's own default
    mixture: the share of cases that catch a relative error 10^-k planted in each gradient
    (``comparisons.measure.resolve``), the issue's goals, and the verdicts of ``check_derivation``
    on the suite's own derivation, the inconclusive ones counted per reason."""
    from comparisons import check_derivation
    from comparisons.measure import resolve

    refs, skipped = backends.available(("torch", "jax"))
    if len(refs) < 2:
        return {"skipped": f"needs torch and jax: {skipped}"}
    cases = 20 if quick else 100
    power = resolve.resolving_power(cases=cases, seed=seed)
    goals = {d: [{"relative": rel, "required": need, "worst_share": worst, "met": bool(ok)}
                 for rel, need, worst, ok in rows] for d, rows in resolve.goals_met(power).items()}
    result = check_derivation(backends.load("manual"), cases=2 * cases, seed=seed, dtype="both",
                              shrink_failures=False)
    inconclusive = {why: len(ids) for why, ids in sorted(result.inconclusive.items())}
    return {"cases_per_dtype": cases, "power": power, "goals": goals,
            "verdicts": {"cases": result.cases_run, "false_alarms": len(result.failures),
                         "inconclusive": sum(inconclusive.values()), "inconclusive_by_reason": inconclusive,
                         "inconclusive_share": sum(inconclusive.values()) / result.cases_run}}

