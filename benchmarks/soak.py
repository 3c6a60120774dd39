"""Soak in one process, without Dask: ``python benchmarks/soak.py [--cases N] [--seed S]``.

The same blocks and verdicts as ``bptt-xval soak`` (comparisons/measure/soak.py), run inline: for
a quick look, or a machine without dask. Prints the tally and the error / tolerance quantiles.
"""

import argparse
import sys

from comparisons.check import backends, reproducer
from comparisons.check.cases import Case
from comparisons.measure.soak import BINS, blocks, empty, merge, run_block, summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=None, help="default: a fresh seed, printed")
    parser.add_argument("--reproducers", default="benchmarks/results/soak-false-alarms",
                        help="folder where every false alarm is written as a replayable reproducer")
    parser.add_argument("--references", default=",".join(backends.REFERENCES),
                        help="comma-separated references (default: all); torch,numeric skips JAX's compilations")
    args = parser.parse_args(argv)
    if args.seed is None:
        import secrets
        args.seed = secrets.randbelow(2**31)
    print(f"seed: {args.seed}", flush=True)
    references = tuple(args.references.split(","))
    per_block, n_blocks = blocks(args.cases)
    total = empty(args.cases, args.seed, per_block, references)
    for block in range(n_blocks):
        tally = run_block(args.seed, block, per_block, references)
        merge(total, tally)
        for alarm in tally["false_alarms"]:
            path = reproducer.save(Case(**alarm["case"]), args.reproducers, alarm)
            print(f"FALSE ALARM {alarm['case']}: {alarm['status']} {alarm['reason']} {alarm['worst']} -> {path}",
                  flush=True)
        if block % 20 == 0:
            print(f"{total['cases']} cases, {total['false_alarms']} false alarms", flush=True)
    print(summary(total))
    for dtype, counts in total["histogram"].items():
        print(f"error / tolerance, {dtype}: log10 histogram over {BINS[0]:g}..{BINS[-1]:g}: {counts}")
    return 1 if total["false_alarms"] else 0


if __name__ == "__main__":
    sys.exit(main())
