"""The soak: the false-alarm rate of the checker, measured on the suite's own correct
derivation (``manual.rnn``), at any scale, on ``dask.distributed``.

    bptt-xval soak --cases N [--seed S] [--workers K | --scheduler ADDRESS] [--out FILE.json]

The cases are cut into blocks, one configuration and dtype each (JAX compiles once per
configuration and shape bucket), cycling through all 288 configurations of the contract
and through dense and one-hot inputs. A block is drawn from ``seed`` and its own index
alone, so the same seed gives the same cases and the same verdicts whatever the number of
workers or the order they finish in. Dask does the scheduling: an in-process
``LocalCluster`` of K single-threaded worker processes by default, or the cluster behind a
running scheduler (``--scheduler tcp://host:8786``); nothing here is a pool of its own.

FILE.json is rewritten atomically as blocks finish, with the blocks done: an interrupted
soak run again with the same arguments resumes where it stopped. Every false alarm is
written as a reproducer beside it (``bptt-xval replay``). Without ``--seed`` each run draws
a fresh seed and prints it, so no soak retreads the seeds the tolerances were measured on.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path

import numpy as np

from bptt_xval.model import HIDDEN, OUTPUT, REDUCTION

CONFIGS = [dict(hidden=h, output=o, loss=l, reduction=r, truncate=k)
           for h, o, l, r, k in itertools.product(HIDDEN, OUTPUT, ("squared_error", "cross_entropy"),
                                                  REDUCTION, (None, 4))
           if not (l == "cross_entropy" and o != "identity")]
DTYPES = ("float64", "float32")
# error / tolerance histogram: log10 bins from 1e-6 to 1e2 (the distribution the README shows)
BINS = np.linspace(-6, 2, 33)


# JAX compiles each configuration's stacked references once per padded shape (about a
# second each, or a load from the on-disk cache): a block of this many cases pays it once
MAX_BLOCK = 1000


def blocks(cases: int) -> tuple:
    """(cases per block, number of blocks) for a soak of ``cases``: one configuration per
    block, at most MAX_BLOCK cases (10,000 cases visit each of the 288 configurations once,
    10^6 about three times)."""
    per_block = max(1, min(MAX_BLOCK, -(-cases // len(CONFIGS))))
    return per_block, -(-cases // per_block)


def block_cases(seed: int, block: int, per_block: int) -> list:
    """The cases of one block: its configuration, dtype and inputs follow from its index."""
    from comparisons.check.cases import CaseSpace, draw_cases

    config = CONFIGS[block % len(CONFIGS)]
    # every fourth block draws one-hot inputs (the language-model case of the conventions)
    space = CaseSpace.make(inputs="one_hot" if block % 4 == 3 else "dense", loss=config["loss"])
    return draw_cases(per_block, seed * 1_000_003 + block, dtype=DTYPES[block % 2], space=space, **config)


def run_block(seed: int, block: int, per_block: int, references: tuple, device: str = "cpu") -> dict:
    """Check manual.rnn on one block; the tally of its verdicts (runs on a Dask worker)."""
    from comparisons.check import backends
    from comparisons.check.cases import make_problem
    from comparisons.check.checker import CHUNK, check_case, references_for

    refs, skipped = backends.available(references)
    refs = backends.on_device(refs, device)
    if "jax" in refs:
        from reference.jax_grad import clear_compiled
        clear_compiled()       # one configuration per block: free the last one's executables
    manual = backends.load("manual")
    tally = {"block": block, "cases": 0, "false_alarms": [], "inconclusive": {},
             "max_error_over_tolerance": {d: 0.0 for d in DTYPES},
             "histogram": {d: [0] * (len(BINS) + 1) for d in DTYPES}, "skipped": sorted(skipped)}
    drawn = block_cases(seed, block, per_block)
    # one configuration per block: finite differences cannot see truncation
    use = {k: v for k, v in refs.items() if not (k == "numeric" and drawn[0].truncate)}
    for start in range(0, len(drawn), CHUNK):
        chunk = drawn[start:start + CHUNK]
        arrays = [make_problem(c) for c in chunk]
        for case, a, prepared in zip(chunk, arrays, references_for(chunk, use, arrays)):
            _tally(tally, case, check_case(manual, case, use, a, prepared=prepared))
    return tally


# --- the cells soak: check_cell on every built-in cell's own derivation ---------------------

# check_cell runs case by case (a JAX compilation per case shape, Monte Carlo arithmetic's
# eight perturbed torch runs): blocks of this many cases, half float64, half float32
MAX_CELL_BLOCK = 40


def cell_configs() -> list:
    """(cell name, configuration) for every configuration a built-in cell's derivation
    supports (the gated ones: identity output and squared error; every reduction)."""
    from comparisons.check.cells import builtin_cells

    out = []
    for name, cell in builtin_cells().items():
        for o, l, r in itertools.product(cell.outputs, cell.losses, REDUCTION):
            if not (l == "cross_entropy" and o != "identity"):
                out.append((name, dict(output=o, loss=l, reduction=r)))
    return out


def cell_blocks(cases: int) -> tuple:
    """(cases per block, number of blocks) for a cells soak of ``cases``."""
    per_block = max(2, min(MAX_CELL_BLOCK, -(-cases // len(cell_configs()))))
    return per_block, -(-cases // per_block)


def cell_block_cases(seed: int, block: int, per_block: int) -> tuple:
    """(cell name, configuration, cases) of one block of a cells soak: its cell and
    configuration follow from its index, its cases (half in each dtype) from seed and index."""
    from comparisons.check.cases import CaseSpace, draw_cases

    configs = cell_configs()
    name, config = configs[block % len(configs)]
    space = CaseSpace.make(None, "none", None, None, False, loss=config["loss"])
    drawn = []
    for i, d in enumerate(DTYPES):
        drawn += draw_cases((per_block + i) // 2, (seed * 1_000_003 + block) * 2 + i, dtype=d, space=space, **config)
    return name, config, drawn


def run_cell_block(seed: int, block: int, per_block: int, references: tuple, device: str = "cpu") -> dict:
    """check_cell's verdicts on one block: a built-in cell's own (correct) derivation."""
    from comparisons.check import backends
    from comparisons.check.cells import REFERENCES, _jax_compiled, builtin_cells, check_cell_case

    found, skipped = backends.available(references)
    refs = {n: REFERENCES[n] for n in references if n in found}
    name, config, drawn = cell_block_cases(seed, block, per_block)
    cell = builtin_cells()[name]
    tally = {"block": block, "cell": name, "cases": 0, "false_alarms": [], "inconclusive": {},
             "max_error_over_tolerance": {d: 0.0 for d in DTYPES},
             "histogram": {d: [0] * (len(BINS) + 1) for d in DTYPES}, "skipped": sorted(skipped)}
    try:
        for case in drawn:
            outcome = check_cell_case(cell.step, cell.derivation, case, refs, param_shapes=cell.param_shapes,
                                      state=cell.state, recurrent=cell.recurrent, **config)
            _tally(tally, case, outcome)
    finally:
        _jax_compiled.cache_clear()      # one shape per case: free this block's executables
    for alarm in tally["false_alarms"]:
        alarm["cell"] = name
    return tally


# --- the gated soak: LSTM and GRU on check_cell's stacked fast path (comparisons.check.gated) ---

# the fast path stacks a block's cases: blocks this large pay its per-step costs once per stack
GATED_BLOCK = 384


#: the cells a gated soak runs by default (``--gated-cells``: any of GATED_CELLS_ALL)
GATED_CELLS = ("lstm", "gru")
GATED_CELLS_ALL = ("lstm", "gru", "gru_d2l")


def gated_configs(cells=GATED_CELLS) -> list:
    """(cell, configuration) for the gated cells' derivations (manual.gated: identity output,
    squared error, every reduction), each computing in the case's own dtype."""
    from comparisons.check.cells import builtin_cells

    built_in = builtin_cells()
    return [(name, dict(output=o, loss=l, reduction=r)) for name in cells
            for o, l, r in itertools.product(built_in[name].outputs, built_in[name].losses, REDUCTION)]


def gated_blocks(cases: int, cells=GATED_CELLS) -> tuple:
    per_block = max(2, min(GATED_BLOCK, -(-cases // len(gated_configs(cells)))))
    return per_block, -(-cases // per_block)


def run_gated_block(seed: int, block: int, per_block: int, references: tuple, device: str = "cpu",
                    cells=GATED_CELLS) -> dict:
    """The gated fast path's verdicts on one block of a built-in gated cell's own derivation;
    the block's cases are drawn as a cells soak draws them (half in each dtype)."""
    from comparisons.check import backends
    from comparisons.check.cases import CaseSpace, draw_cases
    from comparisons.check.cells import builtin_cells
    from comparisons.check.gated import check_gated_cases

    found, skipped = backends.available(references)
    configs = gated_configs(cells)
    name, config = configs[block % len(configs)]
    space = CaseSpace.make(None, "none", None, None, False, loss=config["loss"])
    drawn = []
    for i, d in enumerate(DTYPES):
        drawn += draw_cases((per_block + i) // 2, (seed * 1_000_003 + block) * 2 + i, dtype=d, space=space, **config)
    cell = builtin_cells()[name]
    tally = {"block": block, "cell": name, "cases": 0, "false_alarms": [], "inconclusive": {},
             "max_error_over_tolerance": {d: 0.0 for d in DTYPES},
             "histogram": {d: [0] * (len(BINS) + 1) for d in DTYPES}, "skipped": sorted(skipped)}
    outcomes = check_gated_cases(cell.step, cell.derivation, drawn, param_shapes=cell.param_shapes, state=cell.state,
                                 names=tuple(n for n in references if n in found), **config)
    for case, outcome in zip(drawn, outcomes):
        _tally(tally, case, outcome)
    for alarm in tally["false_alarms"]:
        alarm["cell"] = name
    return tally


# --- the conventions soak: the suite's derivations written in a convention's style, through its adapter ---

#: the conventions a conventions soak runs by default: those with a styled candidate (measure/styled.py)
SOAKED_CONVENTIONS = ("deeplearning-ai-step", "deeplearning-ai-lstm-step", "class-gru", "class-gru-2019", "class-lstm",
                      "karpathy-lstm", "cs231n-lstm-step-in-place", "cs231n-lstm-step-sequence")
#: a gated convention's block is stacked as the gated soak's; an Elman one is checked case by case
CONVENTION_BLOCK = 256


def convention_configs(conventions=SOAKED_CONVENTIONS) -> list:
    """(convention, configuration) for every configuration its check draws: the gated ones as
    the gated soak's (identity output, squared error, every reduction); the Elman ones every
    output, loss and reduction of tanh units without truncation (what their styles compute)."""
    from comparisons.measure.styled import candidates

    adapters = candidates()
    out = []
    for name in conventions:
        if getattr(adapters[name], "cell", None) is not None:
            out += [(name, dict(output="identity", loss="squared_error", reduction=r)) for r in REDUCTION]
        else:
            out += [(name, dict(hidden="tanh", output=o, loss=l, reduction=r, truncate=None))
                    for o, l, r in itertools.product(OUTPUT, ("squared_error", "cross_entropy"), REDUCTION)
                    if not (l == "cross_entropy" and o != "identity")]
    return out


def convention_blocks(cases: int, conventions=SOAKED_CONVENTIONS) -> tuple:
    per_block = max(2, min(CONVENTION_BLOCK, -(-cases // len(convention_configs(conventions)))))
    return per_block, -(-cases // per_block)


def run_convention_block(seed: int, block: int, per_block: int, references: tuple, device: str = "cpu",
                         conventions=SOAKED_CONVENTIONS) -> dict:
    """One block of a conventions soak: the convention's adapter around the suite's styled
    derivation (``comparisons.measure.styled``), checked as ``bptt-xval check`` checks it."""
    from comparisons.check import backends
    from comparisons.check.cases import CaseSpace, draw_cases, make_problem
    from comparisons.check.cells import builtin_cells
    from comparisons.check.checker import check_case, references_for
    from comparisons.check.gated import check_gated_cases
    from comparisons.measure.styled import candidates

    found, skipped = backends.available(references)
    name, config = convention_configs(conventions)[block % len(convention_configs(conventions))]
    fn = candidates()[name]
    space_dict, cell_name = dict(fn.case_space), getattr(fn, "cell", None)
    space = CaseSpace.make(space_dict.get("sizes"), "none" if cell_name else space_dict.get("h0"),
                           space_dict.get("inputs"), None, space_dict.get("tie_D_O", False), loss=config["loss"])
    drawn = []
    for i, d in enumerate(DTYPES):
        drawn += draw_cases((per_block + i) // 2, (seed * 1_000_003 + block) * 2 + i, dtype=d, space=space,
                            **config)
    tally = {"block": block, "cell": name, "cases": 0, "false_alarms": [], "inconclusive": {},
             "max_error_over_tolerance": {d: 0.0 for d in DTYPES},
             "histogram": {d: [0] * (len(BINS) + 1) for d in DTYPES}, "skipped": sorted(skipped)}
    if cell_name is not None:
        cell = builtin_cells()[cell_name]
        outcomes = check_gated_cases(cell.step, fn, drawn, param_shapes=cell.param_shapes, state=cell.state,
                                     names=tuple(n for n in references if n in found), **{
                                         k: config[k] for k in ("output", "loss", "reduction")})
    else:
        refs = backends.on_device(found, device)
        arrays = [make_problem(c) for c in drawn]
        outcomes = [check_case(fn, case, refs, a, prepared=prepared)
                    for case, a, prepared in zip(drawn, arrays, references_for(drawn, refs, arrays))]
    for case, outcome in zip(drawn, outcomes):
        _tally(tally, case, outcome)
    for alarm in tally["false_alarms"]:
        alarm["convention"] = name
    return tally


def run_piece_blocks(cases: int, seed: int, out=None, progress=print) -> dict:
    """The pieces soak: ``cases`` random cases of each of cs231n's non-recurrent layers
    (``comparisons.check.pieces``) on the suite's styled layers, in this process (a case
    costs well under a millisecond); the tally rewritten every 10,000 cases."""
    from comparisons import atomic
    from comparisons.check.pieces import check_case
    from comparisons.measure.styled import pieces

    total = {"kind": "pieces", "seed": seed, "cases_asked": cases, "cases_by_piece": {}, "false_alarms": 0,
             "false_alarm_cases": [], "seconds": 0.0}
    if out is not None and Path(out).is_file():
        saved = json.loads(Path(out).read_text())
        if saved.get("kind") == "pieces" and saved.get("seed") == seed and saved.get("cases_asked") == cases:
            total = saved                           # resume each piece from its last checkpoint
            progress(f"resuming: {total['cases_by_piece']}")
    started = time.perf_counter() - total["seconds"]
    for piece, functions in pieces().items():
        seeds = np.random.default_rng([seed, len(piece)]).integers(0, 2**31 - 1, size=cases)
        done = total["cases_by_piece"].get(piece, 0)
        if done >= cases:
            continue
        for i, s in enumerate(seeds[done:], done + 1):
            failure = check_case(piece, *functions, int(s))
            if failure is not None:
                total["false_alarms"] += 1
                total["false_alarm_cases"].append({"piece": piece, **vars(failure)})
                progress(f"FALSE ALARM {piece} seed {int(s)}: {failure.reason}")
            if i % 10_000 == 0 or i == cases:
                total["cases_by_piece"][piece] = i
                total["seconds"] = time.perf_counter() - started
                if out is not None:
                    atomic.write_text(Path(out), json.dumps(total, indent=1, sort_keys=True) + "\n")
        progress(f"{piece}: {cases} cases, {total['false_alarms']} false alarms so far")
    return total


def _tally(tally: dict, case, outcome) -> None:
    """Count one outcome into its block's tally."""
    tally["cases"] += 1
    if outcome.status == "inconclusive":
        why = outcome.reason.split(":")[0]
        tally["inconclusive"][why] = tally["inconclusive"].get(why, 0) + 1
        return
    if outcome.failed:
        tally["false_alarms"].append({"case": case.to_dict(), "status": outcome.status,
                                      "reason": outcome.reason, "worst": repr(outcome.worst())})
    ratio = max((e.max_abs / e.tol for c in outcome.comparisons for e in c.errors.values()), default=0.0)
    d = case.dtype
    # per target, the largest error / tolerance and the case it came from: which tolerance
    # has the least margin (the distribution a sharper tolerance is argued from)
    by_target = tally.setdefault("max_by_target", {}).setdefault(d, {})
    for c in outcome.comparisons:
        for target, e in c.errors.items():
            r = e.max_abs / e.tol
            if r > by_target.get(target, {}).get("ratio", -1.0):
                by_target[target] = {"ratio": r, "reference": c.reference, "case": case.to_dict()}
    tally["max_error_over_tolerance"][d] = max(tally["max_error_over_tolerance"][d], ratio)
    tally["histogram"][d][int(np.searchsorted(BINS, math.log10(max(ratio, 1e-300))))] += 1


def merge(total: dict, tally: dict) -> dict:
    total["cases"] += tally["cases"]
    total["false_alarms"] += len(tally["false_alarms"])
    total["false_alarm_cases"] += tally["false_alarms"]
    for why, n in tally["inconclusive"].items():
        total["inconclusive_by_reason"][why] = total["inconclusive_by_reason"].get(why, 0) + n
    total["inconclusive"] = sum(total["inconclusive_by_reason"].values())
    for d in DTYPES:
        total["max_error_over_tolerance"][d] = max(total["max_error_over_tolerance"][d],
                                                   tally["max_error_over_tolerance"][d])
        total["histogram"][d] = [a + b for a, b in zip(total["histogram"][d], tally["histogram"][d])]
    for d, targets in tally.get("max_by_target", {}).items():
        kept = total.setdefault("max_by_target", {}).setdefault(d, {})
        for target, worst in targets.items():
            if worst["ratio"] > kept.get(target, {}).get("ratio", -1.0):
                kept[target] = worst
    if "cell" in tally:              # a cells, gated or conventions soak: its cases per cell or convention
        by = total.setdefault("cases_by_cell", {})
        by[tally["cell"]] = by.get(tally["cell"], 0) + tally["cases"]
    total["blocks_done"].append(tally["block"])
    return total


def empty(cases: int, seed: int, per_block: int, references: tuple, kind: str = "elman") -> dict:
    return {"kind": kind, "cases_asked": cases, "seed": seed, "per_block": per_block, "references": list(references),
            "cases": 0, "false_alarms": 0, "false_alarm_cases": [], "inconclusive": 0,
            "inconclusive_by_reason": {}, "max_error_over_tolerance": {d: 0.0 for d in DTYPES},
            "histogram": {d: [0] * (len(BINS) + 1) for d in DTYPES}, "histogram_log10_edges": BINS.tolist(),
            "blocks_done": []}


class WorkerSetup:
    """Set up on every worker the soak runs on (a Dask worker plugin), so that a ``dask
    worker`` started by hand runs blocks as fast as a LocalCluster's: JAX's compiled references
    kept on disk between blocks and processes (``BPTT_XVAL_JAX_CACHE``, which the command's own
    LocalCluster workers inherit from ``console()`` and a separate worker never had: each
    block recompiled every shape bucket), and one torch thread per task thread (a ``dask
    worker`` defaults to a thread per core, and torch to a thread per core in each)."""

    name = "bptt-xval-soak-setup"

    def setup(self, worker=None):
        import os
        import sys

        os.environ.setdefault("BPTT_XVAL_JAX_CACHE", "default")
        jax_grad = sys.modules.get("reference.jax_grad")
        if jax_grad is not None and jax_grad.jax is not None and jax_grad.CACHE_DIR is None:
            jax_grad.CACHE_DIR = jax_grad._enable_compilation_cache()
        try:
            import torch
            torch.set_num_threads(1)
        except ImportError:
            pass

    def teardown(self, worker=None):
        pass


def _worker_plugin():
    from distributed.diagnostics.plugin import WorkerPlugin

    return type("SoakWorkerSetup", (WorkerSetup, WorkerPlugin), {})()


def soak(cases: int, seed: int, *, workers: int = 2, scheduler: str | None = None, out=None,
         references=("torch", "jax", "numeric"), reproducers=None, progress=print, device="cpu",
         cells: bool = False, gated: bool = False, gated_cells=GATED_CELLS, conventions=None) -> dict:
    """Run ``cases`` correct cases on Dask; returns (and writes to ``out``) the tally.
    ``cells``: ``check_cell`` on the built-in cells' own derivations instead of
    ``check_derivation`` on ``manual.rnn`` (a false alarm's record names its cell);
    ``gated``: LSTM and GRU only, on check_cell's stacked fast path (``run_gated_block``);
    ``gated_cells``: which of GATED_CELLS_ALL (recorded in the tally, and a resume must match);
    ``conventions``: the conventions soak (``run_convention_block``) of these conventions."""
    from dask.distributed import Client, LocalCluster, as_completed

    from comparisons import atomic
    from comparisons.check import reproducer
    from comparisons.check.cases import Case

    references = tuple(references)
    kind, runner = ("gated", run_gated_block) if gated else ("cells", run_cell_block) if cells else ("elman", run_block)
    if conventions:
        unknown = [c for c in conventions if c not in SOAKED_CONVENTIONS]
        if unknown:
            raise ValueError(f"conventions: expected some of {list(SOAKED_CONVENTIONS)}; got {unknown}")
        kind, runner, gated, gated_cells = "conventions", run_convention_block, True, tuple(conventions)
    gated_cells = tuple(gated_cells)
    unknown = [c for c in gated_cells if c not in GATED_CELLS_ALL]
    if gated and not conventions and (unknown or not gated_cells):
        raise ValueError(f"gated_cells: expected some of {list(GATED_CELLS_ALL)}; got {list(gated_cells)}")
    per_block, n_blocks = (convention_blocks(cases, gated_cells) if conventions else gated_blocks(cases, gated_cells)
                           if gated else cell_blocks(cases) if cells else blocks(cases))
    cells = cells or gated
    total = empty(cases, seed, per_block, references, kind)
    if gated:
        total["cells"] = list(gated_cells)
    out = Path(out) if out else None
    if out is not None and out.is_file():
        saved = json.loads(out.read_text())
        if saved.get("kind", "elman") == kind and \
                all(saved.get(k) == total[k] for k in ("cases_asked", "seed", "per_block", "references")) and \
                (not gated or saved.get("cells", list(GATED_CELLS)) == total["cells"]):
            total = saved                                   # resume: keep what is done
            progress(f"resuming: {len(total['blocks_done'])} of {n_blocks} blocks already done")
    todo = sorted(set(range(n_blocks)) - set(total["blocks_done"]))
    # rates count this run's cases over this run's time; "seconds" adds up across resumes
    # (a run killed between two writes loses only the time since its last write)
    done_before, seconds_before = total["cases"], total.get("seconds", 0.0)
    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                  dashboard_address=":0")
    started = time.perf_counter()
    try:
        with Client(scheduler or cluster) as client:
            client.register_plugin(_worker_plugin())
            # the last block runs what is left: N asked is N run (100,000 in blocks of 384 ran 100,224)
            extra = {"conventions": gated_cells} if conventions else {"cells": gated_cells} if gated else {}
            futures = [client.submit(runner, seed, b, min(per_block, cases - b * per_block), references, device,
                                     pure=False, **extra) for b in todo]
            for i, future in enumerate(as_completed(futures), 1):
                tally = future.result()
                merge(total, tally)
                for alarm in tally["false_alarms"]:
                    if reproducers is not None and not cells:     # a cell's case replays by its seed
                        reproducer.save(Case(**alarm["case"]), reproducers, alarm)
                    progress(f"FALSE ALARM {alarm['case']}: {alarm['status']} {alarm['reason']} {alarm['worst']}")
                total["seconds"] = seconds_before + time.perf_counter() - started
                if out is not None:
                    atomic.write_text(out, json.dumps(total, indent=1, sort_keys=True) + "\n")
                if i % 20 == 0 or i == len(futures):
                    rate = (total["cases"] - done_before) / max(time.perf_counter() - started, 1e-9)
                    progress(f"{total['cases']} cases, {total['false_alarms']} false alarms, "
                             f"{total['inconclusive']} inconclusive, {rate:.1f} cases/s")
    finally:
        if cluster is not None:
            cluster.close()
    total["seconds"] = seconds_before + time.perf_counter() - started
    if out is not None:
        atomic.write_text(out, json.dumps(total, indent=1, sort_keys=True) + "\n")
    return total


def summary(total: dict) -> str:
    m = total["max_error_over_tolerance"]
    # the target with the least margin per dtype (tallies from before it was recorded lack it)
    least = ", ".join(f"{d} {t} {w['ratio']:.3g}" for d in DTYPES
                    for t, w in [max(total.get("max_by_target", {}).get(d, {}).items(),
                                     key=lambda tw: tw[1]["ratio"], default=(None, None))] if t)
    return (f"cases: {total['cases']}  false alarms: {total['false_alarms']}  inconclusive: "
            f"{total['inconclusive']} ({100 * total['inconclusive'] / max(total['cases'], 1):.2f}%) "
            f"{total['inconclusive_by_reason']}  max error/tolerance: float64 {m['float64']:.3g}, "
            f"float32 {m['float32']:.3g}" + (f" (least margin: {least})" if least else "") +
            f"  seed: {total['seed']}")


def figure(total: dict, path) -> None:
    """The distribution of error / tolerance per dtype, on log axes, with the line at 1 a
    false alarm would cross: the margin a reader checks at a glance."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.asarray(total["histogram_log10_edges"])
    width = edges[1] - edges[0]
    # bin 0 holds everything below 10^edges[0] (exact agreement included), the last
    # everything from 10^edges[-1] up
    left = np.concatenate([[edges[0] - width], edges])
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for d, colour in zip(DTYPES, ("#1f77b4", "#d62728")):
        counts = np.asarray(total["histogram"][d], dtype=float)
        if counts.sum() == 0:
            continue
        ax.step(left, counts / counts.sum(), where="post", color=colour,
                label=f"{d}: {int(counts.sum()):,} conclusive cases, largest "
                      f"{total['max_error_over_tolerance'][d]:.2g}")
    ax.axvline(0.0, color="black", lw=1.2, ls="--")
    ax.text(0.05, 0.95, "false alarm", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("log10(largest error / tolerance) per case")
    ax.set_ylabel("share of cases")
    ax.set_title(f"soak of {total['cases']:,} correct cases (seed {total['seed']}): "
                 f"{total['false_alarms']} false alarms", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)

