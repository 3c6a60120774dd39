"""Soak: run the correct derivation (manual.rnn) through the checker on many cases.

Every configuration of the contract, both dtypes, the default case mixture (dense and
one-hot inputs); dL/dh_t and dL/dx_t compared per step as the checker does. Prints the
number of cases, the false alarms (must be 0), inconclusive (overflowing) cases, and the
largest observed error / tolerance: how much head-room the tolerances have.

    python benchmarks/soak.py [--cases 10000] [--seed 0]
"""

import argparse
import itertools
import sys
import time

import numpy as np

from bptt_xval.model import HIDDEN, OUTPUT, REDUCTION
from comparisons import backends
from comparisons.cases import CaseSpace, draw_cases
from comparisons.checker import check_case


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--references", default=",".join(backends.REFERENCES),
                        help="comma-separated references (default: all); torch,numeric skips JAX's compilations")
    args = parser.parse_args(argv)
    configs = [dict(hidden=h, output=o, loss=l, reduction=r, truncate=k)
               for h, o, l, r, k in itertools.product(HIDDEN, OUTPUT, ("squared_error", "cross_entropy"),
                                                      REDUCTION, (None, 4))
               if not (l == "cross_entropy" and o != "identity")]
    refs, skipped = backends.available(tuple(args.references.split(",")))
    manual = backends.load("manual")
    # one block per configuration (jax compiles once per configuration and shape bucket),
    # dtypes alternating, so 10,000 cases visit all 288 configurations once
    per_block = -(-args.cases // len(configs))
    n = alarms = inconclusive = 0
    worst = {"float64": 0.0, "float32": 0.0}
    ratios = {"float64": [], "float32": []}
    reasons = {}
    started = time.perf_counter()
    for block in itertools.count():
        if n >= args.cases:
            break
        config = configs[block % len(configs)]
        dtype = ("float64", "float32")[block % 2]
        use = {k: v for k, v in refs.items() if not (k == "numeric" and config["truncate"])}
        if "jax" in refs:
            # one configuration per block: free the last block's executables (code memory)
            from reference.jax_grad import clear_compiled
            clear_compiled()
        # every fourth block draws one-hot inputs (the language-model case of the conventions)
        space = CaseSpace.make(inputs="one_hot" if block % 4 == 3 else "dense", loss=config["loss"])
        for case in draw_cases(per_block, args.seed * 1_000_003 + block, dtype=dtype, space=space, **config):
            outcome = check_case(manual, case, use)
            n += 1
            if outcome.status == "inconclusive":
                inconclusive += 1
                reasons[outcome.reason.split(":")[0]] = reasons.get(outcome.reason.split(":")[0], 0) + 1
                continue
            if outcome.failed:
                alarms += 1
                print(f"FALSE ALARM {case}: {outcome.status} {outcome.reason} {outcome.worst()}", flush=True)
            ratio = max((e.max_abs / e.tol for c in outcome.comparisons for e in c.errors.values()), default=0.0)
            worst[dtype] = max(worst[dtype], ratio)
            ratios[dtype].append(ratio)
        if block % 20 == 0:
            print(f"{n} cases, {alarms} false alarms, {time.perf_counter() - started:.0f} s", flush=True)
    elapsed = time.perf_counter() - started
    print(f"inconclusive by reason: {reasons}")
    print(f"cases: {n}  false alarms: {alarms}  inconclusive: {inconclusive} ({100 * inconclusive / max(n, 1):.2f}%)  "
          f"references: {sorted(refs)}  skipped: {sorted(skipped)}")
    print(f"largest error / tolerance: float64 {worst['float64']:.3g}, float32 {worst['float32']:.3g}")
    for dtype, values in ratios.items():
        if values:
            q = np.quantile(values, [0.5, 0.99, 0.999, 1.0])
            print(f"error / tolerance, {dtype}: median {q[0]:.3g}, 99% {q[1]:.3g}, 99.9% {q[2]:.3g}, max {q[3]:.3g}")
    print(f"{n / elapsed:.1f} cases/s over {elapsed:.0f} s")
    return 1 if alarms else 0


if __name__ == "__main__":
    sys.exit(main())
