"""``bptt-xval bench``: manual BPTT against torch and jax, the sgemm FLOP limit, and the
checker's cases per second. All ratios are taken within one run, on one machine.

Each timing is the median of ``repeats`` calls after one warm-up call (which also
compiles jax). Times are for forward + backward (loss and every gradient).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from bptt_xval.model import step_weights
from comparisons import atomic
from comparisons.check import backends
from comparisons.check.cases import Case, make_problem

RESULTS = Path("benchmarks") / "results"
# (label, T, B, D, H, O) in float32; the goals of issue 7 are stated for these sizes
HEADLINE = [("large", 100, 64, 128, 512, 16), ("long", 2000, 8, 8, 32, 4), ("scalar", 1000, 1, 1, 1, 1)]
SWEEP_T = [50, 100, 200, 400, 800, 1600]
SWEEP_H = [16, 64, 256, 512]


def round_times(fns: dict, repeats: int) -> dict:
    """Seconds of every call, name -> list over ``repeats`` rounds. The calls are
    interleaved (one of each per round) so that a slow spell of a shared machine hits
    every contestant of a round alike; one warm-up call each first (caches, jit)."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return times


def median_times(fns: dict, repeats: int) -> dict:
    """Median seconds per call of each function, from interleaved rounds."""
    return {name: statistics.median(t) for name, t in round_times(fns, repeats).items()}


def paired_ratio(times: dict, numerator: str, denominators) -> float | None:
    """Median over rounds of numerator / (fastest of ``denominators`` in the same round).

    Pairing within a round cancels the machine's drift between rounds, which on a shared
    2-core machine moves single timings by 20-30%; None if no denominator was timed."""
    names = [d for d in denominators if d in times]
    if numerator not in times or not names:
        return None
    rounds = zip(times[numerator], *(times[d] for d in names))
    return statistics.median(n / min(rest) for n, *rest in rounds)


def bptt_flops(T, B, D, H, O) -> float:
    """Multiply-adds x 2 of BPTT: forward x W_xh, h W_hh, h W_hy; backward W_hy^T dz, W_hh^T e,
    and the three weight-gradient products."""
    return 2.0 * T * B * (2 * H * D + 3 * H * H + 3 * H * O)


SGEMM_N = 2048


def sgemm_contestants(n: int = SGEMM_N) -> dict:
    """name -> callable of one n x n float32 matrix product, NumPy's and torch's BLAS: the
    best of them, timed in the same rounds as the BPTT contestants, is the FLOP limit."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    out = {"sgemm numpy": lambda: a @ a}
    try:
        import torch

        t = torch.from_numpy(a)
        out["sgemm torch"] = lambda: t @ t
    except ImportError:
        pass
    return out


def sgemm_best(times: dict) -> list:
    """Per round: the seconds of the faster sgemm contestant."""
    return [min(r) for r in zip(*(times[k] for k in times if k.startswith("sgemm ")))]


def flop_limit_times(times: dict, flops: float, n: int = SGEMM_N) -> list:
    """Per round: seconds ``flops`` would take at that round's best sgemm rate."""
    return [flops / (2 * n ** 3 / best) for best in sgemm_best(times)]


def contestants(T, B, D, H, O, dtype="float32") -> dict:
    """name -> zero-argument callable computing the loss and every gradient once.

    The scalar size (D = H = O = B = 1) is timed on seed 000's model (loss at the last
    step, no biases), where ``manual.scalar_rnn`` is the manual contestant.
    """
    scalar = (B, D, H, O) == (1, 1, 1, 1)
    reduction = "last" if scalar else "mean"
    case = Case(seed=0, T=T, B=B, D=D, H=H, O=O, regime="near_edge", dtype=dtype, reduction=reduction)
    params, xs, ys = make_problem(case)
    if scalar:
        from manual import scalar_rnn

        params = {**params, "b_h": np.zeros_like(params["b_h"]), "b_y": np.zeros_like(params["b_y"])}
        out = {"manual": lambda: scalar_rnn.loss_and_grads(params, xs, ys, reduction="last")}
    else:
        out = {"manual": lambda: backends.load("manual")(params, xs, ys)}
    try:
        torch_loop = backends.load("torch")
        out["torch loop"] = lambda: torch_loop(params, xs, ys, reduction=reduction)
        out["torch.nn.RNN"] = _torch_nn_rnn(params, xs, ys, reduction)
    except backends.BackendUnavailable:
        pass
    try:
        backends.load("jax")
        out["jax.jit"] = _jax_jit(params, xs, ys, reduction)
    except backends.BackendUnavailable:
        pass
    return out


def _torch_nn_rnn(params, xs, ys, reduction):
    import torch

    T, B, D = xs.shape
    H, O = params["W_hh"].shape[0], params["W_hy"].shape[0]
    rnn = torch.nn.RNN(D, H, nonlinearity="tanh")
    head = torch.nn.Linear(H, O)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(params["W_xh"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(params["W_hh"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(params["b_h"]))
        rnn.bias_hh_l0.zero_()
        head.weight.copy_(torch.from_numpy(params["W_hy"]))
        head.bias.copy_(torch.from_numpy(params["b_y"]))
    x, y = torch.from_numpy(xs), torch.from_numpy(ys)
    weights = list(rnn.parameters()) + list(head.parameters())

    def run():
        hs, _ = rnn(x)
        l = 0.5 * ((head(hs) - y) ** 2).sum(-1).mean(-1)
        loss = l[-1] if reduction == "last" else l.mean()
        return torch.autograd.grad(loss, weights)

    return run


def _jax_jit(params, xs, ys, reduction):
    import jax

    from reference import jax_grad

    T, B, _ = xs.shape
    H = params["W_hh"].shape[0]
    # the compiled value_and_grad itself, unpadded: the fair, fastest use of jax
    f = jax_grad.compiled("tanh", "identity", "squared_error", reduction, None)
    p = {**params, "h0": np.zeros((B, H), xs.dtype)}
    with jax_grad.scope():        # the backend's own device and x64, as in every reference call
        args = [jax.device_put(a) for a in (np.zeros((T + 1, B, H), xs.dtype), xs, ys,
                                            step_weights(reduction, T, xs.dtype), np.full(B, 1 / B, xs.dtype))]
        p = jax.device_put(p)

    def run():
        with jax_grad.scope():
            return jax.block_until_ready(f(p, *args))
    return run


def _verdicts(result) -> tuple:
    return (result.ok, result.cases_run, result.non_finite,
            [(f.case_id, f.status, f.parameters, f.step) for f in result.failures])


def checker_rate(cases: int = 200, slow_cases: int = 50, repeats: int = 5, fresh_processes: int = 3) -> dict:
    """check_derivation's cases per second on its default mixture, cold (the process's
    first check, JAX compiling) then warm (the median of ``repeats`` checks of the same
    cases: one run on a shared 2-core machine moves by 20-30%), and the slow path's
    (``fast=False``) on ``slow_cases`` of the same cases, for a correct derivation and for
    a mistaken one: the verdicts of both paths must be identical."""
    import functools

    from comparisons import check_derivation
    from comparisons.check.diagnosis import mistaken_loss_and_grads

    manual = backends.load("manual")
    started = time.perf_counter()
    check_derivation(manual, cases=cases, seed=1)
    cold = time.perf_counter() - started
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = check_derivation(manual, cases=cases, seed=1)
        runs.append(time.perf_counter() - started)
    warm = statistics.median(runs)
    identical = True
    slow_seconds = 0.0
    for fn in (manual, functools.partial(mistaken_loss_and_grads, "missing_phi_prime_in_carry")):
        fast = check_derivation(fn, cases=slow_cases, seed=1, shrink_failures=False)
        started = time.perf_counter()
        slow = check_derivation(fn, cases=slow_cases, seed=1, shrink_failures=False, fast=False)
        slow_seconds += time.perf_counter() - started
        identical &= _verdicts(fast) == _verdicts(slow)
    return {"cases": cases, "ok": result.ok, "cold_cases_per_s": cases / cold, "warm_cases_per_s": cases / warm,
            "warm_runs_cases_per_s": [cases / r for r in runs],
            "slow_cases": 2 * slow_cases, "slow_cases_per_s": 2 * slow_cases / slow_seconds,
            "identical_verdicts": identical, **(fresh_process_rate(fresh_processes) if fresh_processes else {})}


FRESH = """
import sys, time
from comparisons import check_derivation
from comparisons.check import backends
fn = backends.load("manual")
check_derivation(fn, cases=10, seed=int(sys.argv[1]))                   # a first call's warm-up
started = time.perf_counter()
check_derivation(fn, cases=300, seed=int(sys.argv[1]) + 1)
print(300 / (time.perf_counter() - started))
"""


def fresh_process_rate(processes: int = 3) -> dict:
    """The checker as a user first meets it (issue 28): in a fresh process, 300 cases after a
    10-case warm-up, on seeds no other measurement uses; the median over ``processes``
    processes, as a library call makes it (JAX compiles every shape bucket the cases need) and
    with JAX's persistent compilation cache filled, as the ``bptt-xval`` command keeps it."""
    import subprocess
    import sys
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for label, env in (("library", {"BPTT_XVAL_JAX_CACHE": "off"}), ("cached", {"BPTT_XVAL_JAX_CACHE": cache})):
            rates = []
            for k in range(processes + (label == "cached")):      # the cached runs' first fills the cache
                run = subprocess.run([sys.executable, "-c", FRESH, str(9000 + 10 * k)], capture_output=True, text=True,
                                     env={**os.environ, **env})
                if run.returncode == 0:
                    rates.append(float(run.stdout.split()[-1]))
            if label == "cached":
                rates = rates[1:]
            out[f"fresh_{label}_cases_per_s"] = statistics.median(rates) if rates else float("nan")
            out[f"fresh_{label}_runs_cases_per_s"] = rates
    return out


def gated_rate(cell: str = "lstm", cases: int = 200, slow_cases: int = 6, repeats: int = 3,
               cold_cases: int = 20) -> dict:
    """check_cell's cases per second on a built-in gated cell's own derivation: warm (the
    median of ``repeats`` checks of ``cases`` float64 cases, the stacked fast path), the
    per-case path's (the same step behind a wrapper, so it is not recognised as built in) on
    ``slow_cases`` of them, and a cold ``check-cell`` of ``cold_cases`` in a fresh process
    (imports, JAX's compilation and all), the way a user first meets it: on a first use (JAX's
    compilation cache empty) and on every later one (the cache filled by the first)."""
    import subprocess
    import sys

    from comparisons.check.cells import builtin_cells, check_builtin, check_cell

    built_in = builtin_cells()[cell]
    check_builtin(cell, cases=cases, seed=1)                      # JAX compiles its buckets
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = check_builtin(cell, cases=cases, seed=1)
        runs.append(time.perf_counter() - started)
    step = built_in.step
    per_case_step = lambda xp, p, x_t, state: step(xp, p, x_t, state)      # not `is` the built-in
    started = time.perf_counter()
    slow = check_cell(per_case_step, built_in.derivation, param_shapes=built_in.param_shapes, state=built_in.state,
                      cases=slow_cases, seed=1)
    slow_seconds = time.perf_counter() - started
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        # a user's file as docs/api.md shows it: the built-in step, the manual derivation
        target = Path(folder) / f"my_{cell}.py"
        shapes = {k: tuple(v) for k, v in built_in.param_shapes.items()}
        target.write_text(
            f"from comparisons.check.cells import {cell}_step as step\n"
            f"from manual.gated import {cell}_loss_and_grads\n\n"
            f"param_shapes = {shapes!r}\nstate = {tuple(built_in.state)!r}\n\n\n"
            f"def loss_and_grads(params, xs, ys, *, output, loss, reduction, truncate):\n"
            f"    return {cell}_loss_and_grads(params, xs, ys, reduction=reduction)\n")
        # cold twice, in fresh processes: with JAX's compilation cache empty (a first use),
        # then with the buckets the first left there (every later use; cli._jax_compilation_cache)
        import os
        env = {**os.environ, "XDG_CACHE_HOME": str(Path(folder) / "cache")}
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        env["BPTT_XVAL_JAX_CACHE"] = "default"        # under the fresh XDG_CACHE_HOME, whatever the caller set
        colds = []
        for _ in range(2):
            started = time.perf_counter()
            cold = subprocess.run([sys.executable, "-m", "comparisons.cli", "check-cell", str(target), "--cases",
                                   str(cold_cases)], capture_output=True, text=True, env=env)
            colds.append((time.perf_counter() - started, cold.returncode))
    (first_seconds, first_code), (cold_seconds, cold_code) = colds
    return {"cell": cell, "cases": cases, "ok": bool(result.ok and slow.ok), "warm_cases_per_s": cases / statistics.median(runs),
            "warm_runs_cases_per_s": [cases / r for r in runs], "slow_cases": slow_cases,
            "slow_cases_per_s": slow_cases / slow_seconds, "cold_cases": cold_cases, "cold_seconds": cold_seconds,
            "cold_exit_code": cold_code, "cold_first_use_seconds": first_seconds, "cold_first_use_exit_code": first_code}


FRAMEWORKS = ("torch.nn.RNN", "jax.jit")


def scaling_exponent(sizes, seconds) -> float:
    """p in seconds ~ size^p, the least-squares slope on log-log axes (1.0: linear)."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def headline_row(label, T, B, D, H, O, repeats: int) -> dict:
    """One headline size: median seconds of every contestant and of the FLOP limit, and
    the paired ratios of manual to the faster framework and to the FLOP limit."""
    fns = {**contestants(T, B, D, H, O), **sgemm_contestants()}
    times = round_times(fns, repeats)
    times["FLOP limit"] = flop_limit_times(times, bptt_flops(T, B, D, H, O))
    seconds = {k: statistics.median(v) for k, v in times.items() if not k.startswith("sgemm ")}
    ratios = {"manual / best framework": paired_ratio(times, "manual", FRAMEWORKS),
              "manual / FLOP limit": paired_ratio(times, "manual", ["FLOP limit"])}
    for name in FRAMEWORKS:
        ratios[f"manual / {name}"] = paired_ratio(times, "manual", [name])
    return {"label": label, "T": T, "B": B, "D": D, "H": H, "O": O, "seconds": seconds,
            "ratios": ratios, "rounds": repeats,
            "sgemm_gflops": 2 * SGEMM_N ** 3 / statistics.median(sgemm_best(times)) / 1e9}


def run(repeats: int = 7, quick: bool = False, out_dir=RESULTS, progress=print,
        headline=HEADLINE, sweep_T=SWEEP_T, sweep_H=SWEEP_H, checker_cases=200, fresh_processes=3,
        gated_repeats=3, cold_cases=20, gated_cells=("lstm", "gru"), sweep_rounds=15) -> dict:
    if not headline:
        raise ValueError("headline: expected at least one (label, T, B, D, H, O) size")
    results = {"environment": {"python": platform.python_version(), "numpy": np.__version__,
                               "torch": backends.library_version("torch"), "jax": backends.library_version("jax"),
                               "cpu_count": os.cpu_count(), "machine": platform.machine()},
               "headline": [], "sweep_T": [], "sweep_H": []}
    for label, T, B, D, H, O in headline:
        progress(f"{label}: T={T} B={B} D={D} H={H} O={O}")
        results["headline"].append(headline_row(label, T, B, D, H, O, repeats))
    # the best rate the headline rounds saw (each row's FLOP limit uses its own rounds)
    results["sgemm_gflops"] = max(row["sgemm_gflops"] for row in results["headline"])
    # millisecond calls are noisier: at least ``sweep_rounds`` (15) rounds for the sweeps
    for T in (sweep_T[:3] if quick else sweep_T):
        progress(f"sweep T={T}")
        times = median_times(contestants(T, 8, 8, 64, 4), max(repeats, sweep_rounds))
        results["sweep_T"].append({"T": T, "seconds": times})
    for H in (sweep_H[:2] if quick else sweep_H):
        progress(f"sweep H={H}")
        times = median_times(contestants(100, 16, 16, H, 4), max(repeats, sweep_rounds))
        results["sweep_H"].append({"H": H, "seconds": times})
    # the slope over the longer half of the sweep, where fixed per-call costs (validation,
    # allocation, jit dispatch) no longer hide the per-step cost
    upper = results["sweep_T"][len(results["sweep_T"]) // 2 - 1:]
    results["exponent_T"] = {name: scaling_exponent([r["T"] for r in upper], [r["seconds"][name] for r in upper])
                             for name in upper[0]["seconds"]}
    progress("checker")
    cases = 50 if quick else checker_cases
    results["checker"] = checker_rate(cases, min(cases, 10 if quick else 50), fresh_processes=fresh_processes)
    results["gated"] = []
    for cell in gated_cells:
        progress(f"check_cell {cell}")
        results["gated"].append(gated_rate(cell, cases=50 if quick else checker_cases,
                                           slow_cases=2 if quick else min(6, checker_cases),
                                           repeats=gated_repeats, cold_cases=cold_cases))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = json.dumps(results, indent=1, sort_keys=True) + "\n"
    atomic.write_text(out_dir / f"bench-{stamp}.json", text)
    atomic.write_text(out_dir / "latest.json", text)
    _figure(results, out_dir / "scaling.png")
    return results


def _figure(results: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import NullFormatter

    colors = {"manual": "C0", "torch loop": "C1", "torch.nn.RNN": "C2", "jax.jit": "C3"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    # a line of slope 1 through manual's longest run: linear cost runs parallel to it
    T = [r["T"] for r in results["sweep_T"]]
    last = results["sweep_T"][-1]["seconds"]["manual"]
    axes[0].loglog(T, [last * t / T[-1] for t in T], "k--", lw=1, label="slope 1 (linear in T)")
    for ax, key, x in ((axes[0], "sweep_T", "T"), (axes[1], "sweep_H", "H")):
        rows = results[key]
        sizes = [r[x] for r in rows]
        for name in colors:
            if name in rows[0]["seconds"]:
                ax.loglog(sizes, [r["seconds"][name] for r in rows], marker="o", label=name,
                          color=colors[name])
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(x)
        ax.set_ylabel("seconds (forward + backward)")
        ax.grid(True, which="both", alpha=0.3)
    p = results.get("exponent_T", {}).get("manual")
    axes[0].set_title("cost against T (B=8, D=8, H=64)" + (f": manual ~ T^{p:.2f}" if p is not None else ""))
    axes[1].set_title("cost against H (T=100, B=16, D=16)")
    axes[0].legend(loc="upper left", fontsize=8)
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic.write_bytes(path, buffer.getvalue())


def table(results: dict) -> str:
    """The headline table: median seconds per call, and ratios to the faster of
    torch.nn.RNN and jax.jit and to the FLOP limit (for manual: paired by round)."""
    lines = [f"sgemm: {results['sgemm_gflops']:.1f} GFLOP/s (best of NumPy and torch, {SGEMM_N}^3)",
             f"{'size':<8}{'backend':<15}{'ms':>10}{'x best framework':>18}{'x FLOP limit':>14}"]
    for row in results["headline"]:
        s = row["seconds"]
        frameworks = [s[k] for k in FRAMEWORKS if k in s]
        best = min(frameworks) if frameworks else float("nan")
        for name, sec in s.items():
            vs_best, vs_flops = sec / best, sec / s["FLOP limit"]
            if name == "manual":
                vs_best = row["ratios"]["manual / best framework"] or float("nan")
                vs_flops = row["ratios"]["manual / FLOP limit"]
            lines.append(f"{row['label']:<8}{name:<15}{sec * 1e3:>10.2f}{vs_best:>18.2f}{vs_flops:>14.2f}")
    lines.append("(manual's ratios: the median over rounds of its time / the other's in the same round)")
    for key, x, sizes in (("sweep_T", "T", "B=8 D=8 H=64"), ("sweep_H", "H", "T=100 B=16 D=16")):
        rows = results.get(key) or []
        if rows:
            names = list(rows[0]["seconds"])
            lines.append(f"sweep over {x} ({sizes}), ms and manual / jax.jit:")
            lines.append(f"{x:>8}" + "".join(f"{n:>15}" for n in names) + f"{'manual/jax':>12}")
            for r in rows:
                s = r["seconds"]
                ratio = s["manual"] / s["jax.jit"] if "jax.jit" in s else float("nan")
                lines.append(f"{r[x]:>8}" + "".join(f"{s[n] * 1e3:>15.2f}" for n in names) + f"{ratio:>12.2f}")
    if "exponent_T" in results:
        lines.append("cost ~ T^p over the longer half of the T sweep: " + ", ".join(
            f"{name} p={p:.2f}" for name, p in results["exponent_T"].items()))
    c = results["checker"]
    lines.append(f"checker: {c['warm_cases_per_s']:.0f} cases/s warm, {c['cold_cases_per_s']:.0f} cold "
                 f"({c['cases']} cases, verdict ok={c['ok']}); slow path {c['slow_cases_per_s']:.1f} cases/s, "
                 f"verdicts {'identical' if c['identical_verdicts'] else 'DIFFERENT'} on {c['slow_cases']} cases")
    if "fresh_library_cases_per_s" in c:
        lines.append(f"checker in a fresh process (300 cases after a 10-case warm-up): "
                     f"{c['fresh_library_cases_per_s']:.0f} cases/s as a library call, "
                     f"{c['fresh_cached_cases_per_s']:.0f} with JAX's compilation cache (the command's)")
    for g in results.get("gated", []):
        lines.append(f"check_cell {g['cell']}: {g['warm_cases_per_s']:.0f} cases/s warm ({g['cases']} cases, stacked; "
                     f"ok={g['ok']}), per-case path {g['slow_cases_per_s']:.2f} cases/s; cold check-cell of "
                     f"{g['cold_cases']} cases in a fresh process {g['cold_seconds']:.1f} s (exit {g['cold_exit_code']})")
    return "\n".join(lines)
