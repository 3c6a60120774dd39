"""The ``bptt-xval`` command: ``report``, ``check``, ``replay``, ``resolve`` and ``bench``.

Exit codes: 0 success / agreement, 1 disagreement, 2 bad usage (a one-line message on
stderr, never a traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

from bptt_xval.model import HIDDEN, LOSS, OUTPUT, REDUCTION, BackendUnavailable

EXIT_OK, EXIT_DISAGREE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
from comparisons import files
from comparisons.files import (SEQUENCE_LAYOUTS, UsageError, contract_signature, convention_check,  # noqa: F401
                               conventional_names, function_named, load_file, load_function, load_module,
                               signature_text, split_target)


def _int_at_least(minimum: int, what: str):
    """An argparse type: an int >= ``minimum``, else a one-line usage error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} integer; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer; got {value}")
        return value
    return parse


_positive_int = _int_at_least(1, "positive")
_non_negative_int = _int_at_least(0, "non-negative")


def _seeds(text: str) -> tuple:
    """``1,2,3`` -> (1, 2, 3): non-negative seeds (argparse type)."""
    seeds = tuple(_non_negative_int(item.strip()) for item in text.split(",") if item.strip())
    if not seeds:
        raise argparse.ArgumentTypeError(f"expected one or more non-negative integers, comma-separated; got {text!r}")
    return seeds


def _sizes(text: str) -> dict:
    """``B=1,T=2:60`` -> {"B": 1, "T": (2, 60)} (argparse type)."""
    sizes = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        lo, colon, hi = value.partition(":")
        try:
            sizes[name.strip()] = (int(lo), int(hi)) if colon else int(lo)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected NAME=N or NAME=LO:HI, comma-separated (e.g. B=1,T=2:60); got {item!r}") from None
        if not sep:
            raise argparse.ArgumentTypeError(f"expected NAME=N or NAME=LO:HI; got {item!r}")
    return sizes


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}")
    return value


def _size(text: str) -> int:
    from comparisons.grading.gradebook import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("memory: ")) from None


def _names(text: str) -> tuple:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _add_space(p: argparse.ArgumentParser) -> None:
    """The case space a derivation supports (docs/api.md, "case space")."""
    p.add_argument("--sizes", type=_sizes, default=None, metavar="B=1,T=2:60",
                   help="fix or bound T, B, D, H, O")
    p.add_argument("--h0", type=_names, default=None, metavar="KIND[,KIND]",
                   help="initial states to draw: none, vector, batch")
    p.add_argument("--inputs", choices=("dense", "one-hot", "one_hot"), default=None,
                   help="real-valued x_t (dense) or one-hot rows (a language model)")
    p.add_argument("--params", type=_names, default=None, metavar="NAME[,NAME]",
                   help="the gradients your function returns; the others are reported as not checked")


CHECK_CONVENTIONS = ("min-char-rnn", "cs231n", "cs231n-step", "deeplearning-ai", "min-char-rnn-lstm", "cs231n-lstm",
                     "cs231n-lstm-step", "deeplearning-ai-lstm", "gru", "d2l-gru", "deeplearning-ai-step",
                     "deeplearning-ai-lstm-step", "class-gru", "class-gru-2019", "class-lstm", "karpathy-lstm")


def _add_loading(p: argparse.ArgumentParser) -> None:
    """How a student's file is read (comparisons/loading/)."""
    p.add_argument("--path", action="append", default=None, metavar="DIR",
                   help="a folder of the course's helper modules (rnn_utils.py, ...), importable; repeatable")
    p.add_argument("--stub", action="append", default=None, metavar="MODULE",
                   help="import MODULE as a placeholder (a heavy import the check does not need); repeatable")
    p.add_argument("--import-timeout", type=_positive_float, default=None, metavar="SECONDS",
                   help="time limit for loading the file (default 20)")
    p.add_argument("--strict-clip", action="store_true",
                   help="min-char-rnn: compare clipped gradients with the true ones (default: clipped at its own c)")
    p.add_argument("--strict-inputs", action="store_true",
                   help="a write into an upstream gradient the course's loop never reads again (dnext_c += ...) "
                        "fails the case (default: a note; the gradients are judged on copies)")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hidden", choices=HIDDEN, default="tanh")
    p.add_argument("--output", choices=OUTPUT, default="identity")
    p.add_argument("--loss", choices=LOSS, default="squared_error")
    p.add_argument("--reduction", choices=REDUCTION, default="mean")
    p.add_argument("--truncate", type=_positive_int, default=None)


class _Parser(argparse.ArgumentParser):
    """argparse, but bad usage is our one-line message and exit code 2."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bptt-xval", description="Cross-check hand-derived BPTT against autodiff.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("report", help="run the report: html, md, json and figures")
    p.add_argument("--out", default="report", help="output folder (default: report)")
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.add_argument("--quick", action="store_true", help="a fast subset of the cases")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("check", help="check your loss_and_grads: exit 0 agree, 1 disagree, 2 bad usage")
    p.add_argument("target", metavar="FILE[:FUNC]", nargs="+",
                   help="the function (FILE.py:NAME), or a .py / .ipynb whose convention is detected or given; "
                        "several files or a FOLDER of one assignment are read together")
    p.add_argument("--convention", choices=CHECK_CONVENTIONS,
                   default=None, help="code written in that style, checked as it is (docs/conventions.md); "
                   "default: detected from the functions the file defines")
    p.add_argument("--fn", type=_names, default=None, metavar="NAME[,NAME]",
                   help="with --convention: the function names, if not the conventional ones (Class.method too)")
    _add_loading(p)
    _add_config(p)
    p.add_argument("--cases", type=_positive_int, default=100)
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.add_argument("--dtype", choices=("float64", "float32", "both"), default="float64")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--reproducers", default=None, metavar="DIR",
                   help="write a replayable reproducer per failure into DIR")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the references compute (default cpu: your GPU is left alone)")
    _add_space(p)

    p = sub.add_parser("replay", help="rerun a reproducer written by check --reproducers")
    p.add_argument("reproducer", metavar="FILE", help="the reproducer's .json (or .npz)")
    p.add_argument("--fn", required=True, metavar="FILE:FUNC")
    p.add_argument("--params", type=_names, default=None, metavar="NAME[,NAME]",
                   help="the gradients your function returns (default: as when it was written)")

    p = sub.add_parser("soak", help="correct cases through the checker on Dask: exit 1 on any false alarm")
    p.add_argument("--cases", type=_positive_int, default=10_000)
    p.add_argument("--seed", type=_non_negative_int, default=None, help="default: a fresh seed, printed")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=None,
                       help="LocalCluster worker processes (default: one per core)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS", help="a running Dask scheduler")
    p.add_argument("--out", default=None, help="the tally, rewritten as blocks finish (default: "
                   "benchmarks/results/soak.json, with --cells soak-cells.json)")
    p.add_argument("--references", type=_names, default=("torch", "jax", "numeric"), metavar="NAME[,NAME]")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where torch and JAX compute")
    p.add_argument("--cells", action="store_true",
                   help="check_cell on every built-in cell's own derivation (LSTM, GRU, IndRNN, MGU, Elman)")
    p.add_argument("--gated", action="store_true",
                   help="LSTM and GRU on check_cell's stacked fast path (the gated conventions' checks)")
    p.add_argument("--gated-cells", type=_names, default=None, metavar="CELL[,CELL]",
                   help="with --gated: the cells soaked (lstm, gru, gru_d2l; default lstm,gru)")
    p.add_argument("--pieces", action="store_true",
                   help="cs231n's non-recurrent layers (affine, word embedding, temporal affine, softmax loss): "
                        "--cases of each, in this process")
    p.add_argument("--conventions", type=_names, default=None, metavar="NAME[,NAME]",
                   help="the suite's derivations written in these conventions' styles, through their adapters "
                        "(deeplearning-ai-step, deeplearning-ai-lstm-step, class-gru, class-gru-2019, karpathy-lstm, ...)")

    p = sub.add_parser("resolve", help="resolving power: the share of cases that catch a planted error")
    p.add_argument("--cases", type=_positive_int, default=200)
    p.add_argument("--seed", type=_seeds, default=(0,), metavar="SEED[,SEED]",
                   help="one seed, or several: a table and the goals per seed (the goals must hold on each)")
    p.add_argument("--out", default="benchmarks/results",
                   help="folder for resolve.json and resolve.png (several seeds: resolve-seed<S>.json and .png)")
    p.add_argument("--cell", choices=("lstm", "gru", "gru_d2l"), default=None,
                   help="a gated cell's check instead of Elman's (the error planted in one gate's dL/dW_hh rows)")

    p = sub.add_parser("check-cell", help="check a hand-derived BPTT of any cell against autodiff of its step")
    p.add_argument("target", metavar="FILE", help="the .py defining the step, the derivation and param_shapes")
    p.add_argument("--step", default="step", metavar="NAME", help="step(xp, params, x_t, state) (default: step)")
    p.add_argument("--fn", default="loss_and_grads", metavar="NAME", help="the derivation (default: loss_and_grads)")
    p.add_argument("--shapes", default="param_shapes", metavar="NAME",
                   help="the module's dict name -> shape in D and H (default: param_shapes)")
    p.add_argument("--state", type=_names, default=None, metavar="NAME[,NAME]",
                   help="the state's names, h first (default: the module's `state`, else h)")
    p.add_argument("--output", choices=OUTPUT, default="identity")
    p.add_argument("--loss", choices=LOSS, default="squared_error")
    p.add_argument("--reduction", choices=REDUCTION, default="mean")
    p.add_argument("--cases", type=_positive_int, default=100)
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.add_argument("--dtype", choices=("float64", "float32", "both"), default="float64")
    p.add_argument("--sizes", type=_sizes, default=None, metavar="B=1,T=2:60")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser("grade", help="grade a folder of submissions, each in its own process: a gradebook")
    p.add_argument("folder", metavar="DIR",
                   help="the submissions: every *.py and *.ipynb in DIR, and every folder (one per student)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--convention", choices=("contract",) + CHECK_CONVENTIONS,
                      help="the style the submissions are written in (contract: loss_and_grads): a one-part grade")
    what.add_argument("--rubric", metavar="FILE.toml",
                      help="the assignment's parts, conventions, points and what students see, graded in one run "
                           "(docs/grading.md)")
    p.add_argument("--fn", type=_names, default=None, metavar="NAME[,NAME]",
                   help="the function names, if not the convention's")
    p.add_argument("--timeout", type=_positive_float, default=60.0, metavar="SECONDS",
                   help="wall-clock seconds per submission (default 60)")
    p.add_argument("--memory", type=_size, default="2GB", metavar="SIZE",
                   help="address space per submission (default 2GB)")
    p.add_argument("--cases", type=_positive_int, default=50)
    p.add_argument("--seed", type=_non_negative_int, default=0, help="the same cases for every submission")
    for name in ("hidden", "output", "loss", "reduction"):
        p.add_argument(f"--{name}", choices={"hidden": HIDDEN, "output": OUTPUT, "loss": LOSS,
                                             "reduction": REDUCTION}[name], default=None,
                       help="default: the convention's")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=None,
                       help="submissions run at once (default: one per core)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS", help="a running Dask scheduler")
    p.add_argument("--out", required=True, metavar="OUTDIR", help="gradebook.csv, gradebook.html, gradebook.json")
    p.add_argument("--force", action="store_true", help="regrade submissions already graded")
    p.add_argument("--path", action="append", default=None, metavar="DIR",
                   help="a folder of the course's helper modules: importable, never graded; repeatable")
    p.add_argument("--stub", action="append", default=None, metavar="MODULE",
                   help="import MODULE as a placeholder in every submission; repeatable")
    p.add_argument("--strict-clip", action="store_true", help="min-char-rnn: clipped gradients fail")
    p.add_argument("--strict-inputs", action="store_true",
                   help="a write into an upstream gradient the course's loop never reads again fails the case "
                        "(default: the writes column notes it)")
    p.add_argument("--forbid-import", default=None, metavar="MODULE[,MODULE]",
                   help="modules a submission may not import (e.g. torch,jax: the derivation by hand); "
                        "unmounted in the sandbox, and a submission importing one is import_error")
    p.add_argument("--require-sandbox", action="store_true",
                   help="refuse to grade unless every submission runs isolated (bubblewrap: files, network, "
                        "processes, ipc) under whole-submission limits (a cgroup); docs/grading.md")

    p = sub.add_parser("autograder", help="write a Gradescope autograder zip for a rubric")
    p.add_argument("--rubric", required=True, metavar="FILE.toml", help="the assignment's rubric (docs/grading.md)")
    p.add_argument("--out", required=True, metavar="autograder.zip", help="the zip to write")
    p.add_argument("--suite", metavar="DIR", default=None,
                   help="the bptt-xval source checkout to ship (default: the one imported, else the working directory)")

    p = sub.add_parser("otter-tests", help="write Otter-Grader test files for a rubric's parts")
    p.add_argument("--rubric", required=True, metavar="FILE.toml")
    p.add_argument("--out", required=True, metavar="DIR", help="the assignment's tests/ folder")
    p.add_argument("--blocks", type=_positive_int, default=5,
                   help="test cases per part, its points split evenly (partial credit; default 5)")

    p = sub.add_parser("gradescope", help="(run_autograder's own) grade ROOT/submission, write ROOT/results/results.json")
    p.add_argument("--rubric", required=True, metavar="FILE.toml")
    p.add_argument("--root", default="/autograder", metavar="DIR", help="Gradescope's root (default /autograder)")

    p = sub.add_parser("bench", help="time manual BPTT against torch and jax; checker cases/s")
    p.add_argument("--repeats", type=_positive_int, default=7)
    p.add_argument("--quick", action="store_true", help="smaller sweeps")
    p.add_argument("--out", default="benchmarks/results", help="folder for the JSON and the figure")
    p.add_argument("--grading", action="store_true",
                   help="instead: the grading lines (a synthetic class of 200 and 1,000, sandboxed, 50 cases; the "
                        "same on dask scheduler + dask workers; soak --cases 2000 --seed 77 both ways), ~15 min")
    p.add_argument("--submissions", type=_positive_int, nargs="+", default=None, metavar="N",
                   help="with --grading: the class sizes (default 200 1000)")
    return parser


def _writable(folder: str) -> None:
    """--out must be a folder we can write, checked before any work: one line, exit 2."""
    from comparisons.check.checker import _writable_folder

    try:
        _writable_folder("--out", folder)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _progress_report(args) -> int:
    from comparisons.report.build import write_report

    _writable(args.out)
    from comparisons.report.data import report_cases

    units = len(report_cases(args.seed, args.quick)) + 3
    if args.no_progress:
        report = write_report(args.out, args.seed, args.quick)
    else:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("report", total=units)

            def progress(description):
                bar.update(task, advance=1, description=description[:60])

            report = write_report(args.out, args.seed, args.quick, progress)
    s = report["summary"]
    out = Path(args.out).resolve()
    print(f"{s['agree']} of {s['cases']} cases agree"
          + (f"; skipped backends: {', '.join(s['skipped_backends'])}" if s["skipped_backends"] else ""))
    print(f"open {out / 'report.html'}  (also report.md, report.json)")
    return EXIT_OK if s["disagree"] == 0 else EXIT_DISAGREE


def _loading_options(args) -> dict:
    return {"paths": tuple(args.path or ()), "stubs": tuple(args.stub or ()), "timeout": args.import_timeout}


def _reached(loaded, checked: list) -> set:
    """The file's functions the checked ones call, directly or not (by the names their code uses)."""
    import types

    names, todo = set(), list(checked)
    while todo:
        fn = todo.pop()
        code = getattr(getattr(fn, "__func__", fn), "__code__", None)
        stack = [code] if code is not None else []
        while stack:
            c = stack.pop()
            stack += [k for k in c.co_consts if isinstance(k, types.CodeType)]
            for used in c.co_names:
                for name in loaded.functions:
                    if name not in names and (name == used or name.rsplit(".", 1)[-1] == used):
                        names.add(name)
                        f = loaded.function(name)
                        if f is not None:
                            todo.append(f)
    return names


def _name_error_hint(result, loaded) -> list:
    """A NameError of a global whose top-level statement was not run, said with that statement."""
    import re

    common = result.common_failure()
    m = re.match(r"NameError: name '(\w+)' is not defined", common[1]) if common else None
    if m is None:
        return []
    skipped = loaded.skipped_global(m.group(1))
    if skipped is None:        # the summary's own hint says it: an import or a definition missing
        return []
    return [f"`{m.group(1)}` is a global the file sets at {skipped}, which was not run: the check runs only "
            f"what the functions need; make it a constant or an argument of the function"]


def _check(args) -> int:
    from comparisons.check.checker import check_derivation
    from comparisons.conventions import detect, looks_like
    from comparisons.loading import as_user

    targets = list(args.target)
    several = len(targets) > 1 or Path(targets[0]).is_dir()
    if several:
        from comparisons.loading import assignment_files

        bad = [t for t in targets if split_target(t)[1] is not None and not Path(t).exists()]
        if bad:
            raise UsageError(f"FILE[:FUNC]: name a function of one file only; got {bad[0]!r} among several")
        missing = [t for t in targets if not Path(t).exists()]
        if missing:
            raise UsageError(f"FILE[:FUNC]: no such file or folder {missing[0]!r}")
        files = assignment_files(targets)
        if not files:
            raise UsageError(f"FILE[:FUNC]: {targets[0]!r} holds no .py or .ipynb file")
        path, name = str(files[0]), None
    else:
        path, name = split_target(targets[0])
    if args.fn is not None and args.convention is None:
        raise UsageError("--fn: only with --convention (otherwise name the function as FILE.py:NAME)")
    if name is not None and args.convention is not None:
        raise UsageError(f"--convention: name the functions with --fn {name}, not FILE:{name}")
    if args.reproducers is not None:
        try:
            _writable(args.reproducers)
        except UsageError as exc:
            raise UsageError(str(exc).replace("--out", "--reproducers", 1)) from None
    if not Path(path).is_file():
        raise UsageError(f"FILE[:FUNC]: no such file {path!r} (expected path/to/file.py, .ipynb, or "
                         f"path/to/file.py:function_name)")
    if several:
        from comparisons.loading import Several

        options = _loading_options(args)
        # each file sees its siblings (their folders importable), as the course runs them
        folders = tuple(dict.fromkeys(str(Path(f).parent) for f in files))
        options["paths"] = tuple(options["paths"]) + folders
        loaded = Several([load_file(str(f), "FILE", **options) for f in files])
    else:
        loaded = load_file(path, "FILE:FUNC" if name else "FILE", **_loading_options(args))
    functions = {n: loaded.function(n) for n in loaded.functions}
    if not several:
        from comparisons.loading import sibling_functions

        # a pair split across the student's files (rnn_backward.py imports rnn_forward): both found
        functions.update({k: v for k, v in sibling_functions(loaded).items() if k not in functions})
    checks, unproven = [], []
    if name is not None:
        fn = function_named(loaded, path, name)
        if not contract_signature(fn):
            style = looks_like(name, functions)
            raise UsageError(f"{name}: {signature_text(fn)} is not loss_and_grads(params, xs, ys, *, hidden, output, "
                             f"loss, reduction, truncate)" + (
                                 f"; it looks like the {style} convention: bptt-xval check {path} --convention {style}"
                                 + ("" if name in conventional_names(style) else f" --fn {name}")
                                 if style else "; see docs/conventions.md for the styles the suite reads"))
        checks = [("contract", (name,), fn)]
    elif args.convention is not None:
        from comparisons.conventions import CONVENTIONS

        fn = convention_check(loaded, path, args.convention, args.fn, args.device, args.strict_clip,
                              args.strict_inputs, prove="given")
        checks = [(args.convention, tuple(args.fn or CONVENTIONS[args.convention][1]), fn)]
    else:
        from comparisons.check import pieces

        found = detect(functions)
        if not found and not pieces.detect(functions):
            known = ", ".join(sorted(functions)) or "none"
            raise UsageError(f"FILE: {Path(path).name} defines no function of a known convention (its functions: "
                             f"{known}); name one as FILE:FUNC, or give --convention and --fn")
        for c, names in found:
            try:
                checks.append((c, names, loaded.function(names[0]) if c == "contract" else
                               convention_check(loaded, path, c, names, args.device, args.strict_clip,
                                                args.strict_inputs, prove="detected")))
            except UsageError as exc:          # its layout does not fit: said, never judged
                unproven.append((c, names, str(exc)))
        # the same functions proven in another convention's layout (a *args signature fits several
        # arities): the guess that failed was only a guess
        proven = {names for _, names, _ in checks}
        unproven = [u for u in unproven if u[1] not in proven]
        # the assignment's non-recurrent layers, each against autograd of its own forward
        for piece, names in pieces.detect(functions):
            checks.append((f"layer:{piece}", names, _Piece(piece, [functions[n] for n in names])))
        if not checks:
            raise UsageError("; ".join(message for *_, message in unproven))
    # a template left unwritten is said as such, not run into BAD OUTPUT
    from comparisons.check.proof import not_written

    unwritten = []
    for c, n, f in list(checks):
        # its own functions, and the file's functions they call (rnn_backward calling an unwritten cell)
        reach = list(n) + sorted(_reached(loaded, [functions[x] for x in n if functions.get(x) is not None]) - set(n))
        blank = [line for line in (not_written(functions.get(x), helper=x not in n) for x in reach
                                   if functions.get(x) is not None) if line]
        if blank:
            checks.remove((c, n, f))
            unwritten.append((c, n, "; ".join(blank)))
    if not checks and unwritten and not unproven:
        print("\n".join(f"NOT WRITTEN: {message}" for *_, message in unwritten))
        return EXIT_DISAGREE
    used = {n for _, names, _ in checks + unproven + unwritten for n in names}
    # a cell class's constructor is run by its check (each step's cell is made by it)
    used |= {n.rsplit(".", 1)[0] + ".__init__" for _, names, _ in checks for n in names if "." in n}
    reached = _reached(loaded, [functions[n] for n in used if functions.get(n) is not None])
    not_checked = [n for n in loaded.functions if n not in used | reached]
    inputs = None if args.inputs is None else args.inputs.replace("-", "_")
    results = []
    with as_user(path):
        for convention, names, fn in checks:
            if isinstance(fn, _Piece):
                from comparisons.check.pieces import check_piece

                results.append((convention, names, check_piece(fn.piece, *fn.functions, cases=args.cases,
                                                               seed=args.seed)))
                continue
            if getattr(fn, "cell", None) is not None:
                result = gated_check(fn, args)
            else:
                result = check_derivation(fn, hidden=args.hidden, output=args.output, loss=args.loss,
                                          reduction=args.reduction, truncate=args.truncate, cases=args.cases,
                                          seed=args.seed, dtype=args.dtype, reproducer_dir=args.reproducers,
                                          sizes=args.sizes, h0=args.h0, inputs=inputs, params=args.params,
                                          device=args.device)
            result.hints += _name_error_hint(result, loaded)
            if getattr(fn, "layout_note", None):
                result.notes.append(fn.layout_note)
            results.append((convention, names, result))
    file_info = {"file": str(path), "rewritten": loaded.rewrites, "not_run": [str(s) for s in loaded.skipped],
                 "functions_not_checked": {n: loaded.functions[n] for n in not_checked},
                 "checked": [{"convention": c, "functions": list(n)} for c, n, _ in results],
                 "not_checked_layout": [{"convention": c, "functions": list(n), "why": m} for c, n, m in unproven],
                 "not_written": [{"convention": c, "functions": list(n), "why": m} for c, n, m in unwritten]}
    if args.json:
        dicts = [{**r.to_dict(), "convention": c, "functions": list(n)} for c, n, r in results]
        print(json.dumps({**dicts[0], "loading": file_info} if len(dicts) == 1 else
                         {"ok": all(r.ok for *_, r in results), "checks": dicts, "loading": file_info},
                         indent=1, sort_keys=True))
    else:
        # the verdicts first; then what the file held that the check did not run or cover
        lines = []
        for convention, names, result in results:
            if len(results) > 1:
                lines.append(f"== {convention}: {', '.join(names)} ==")
            lines.append(result.summary())
        if name is None and args.convention is None:
            lines.append(f"{Path(path).name}: convention detected: " + "; ".join(
                f"{c} ({', '.join(n)})" for c, n, _ in results))
        for c, n, message in unproven:
            lines.append(f"== {c}: {', '.join(n)}: not checked (exit 2) ==\n{message}")
        for c, n, message in unwritten:
            lines.append(f"== {c}: {', '.join(n)} ==\nNOT WRITTEN: {message}")
        if not_checked:
            lines.append(f"{Path(path).name}: functions not checked (no check of this run covers them): " + ", ".join(
                f"{n} ({loaded.functions[n]})" for n in not_checked))
        lines += [f"{Path(path).name}: {line}" for line in loaded.report_lines()]
        print("\n".join(lines))
    if unwritten or not all(r.ok for *_, r in results):
        return EXIT_DISAGREE
    return EXIT_USAGE if unproven else EXIT_OK


class _Piece:
    """A non-recurrent layer of the file (``comparisons.check.pieces``), checked on its own."""

    def __init__(self, piece, functions):
        self.piece, self.functions = piece, functions


def gated_check(fn, args):
    """A gated convention (``fn.cell``) checked against the suite's LSTM or GRU cell
    (``comparisons.check.gated``). The Elman-only options are refused by name rather than
    ignored: the cells have no hidden-unit choice, h0 kinds or truncation here."""
    from comparisons.check.gated import check_convention

    for option, value, default in (("--hidden", args.hidden, "tanh"), ("--truncate", args.truncate, None),
                                   ("--h0", args.h0, None), ("--params", args.params, None),
                                   ("--inputs", args.inputs, None), ("--reproducers", args.reproducers, None)):
        if value != default:
            raise UsageError(f"{option}: not for the gated conventions ({fn.__name__} is checked against the "
                             f"suite's {fn.cell.upper()} cell); leave it out")
    if args.device != "cpu":
        raise UsageError(f"--device: the gated cells' references run on the CPU only for now; got {args.device!r}")
    contract = {"output": "identity", "loss": "squared_error", "reduction": "mean"}
    chosen = {k: (None if getattr(args, k) == v else getattr(args, k)) for k, v in contract.items()}
    return check_convention(fn, cases=args.cases, seed=args.seed, dtype=args.dtype, sizes=args.sizes,
                            strict_clip=args.strict_clip, **chosen)


def _replay(args) -> int:
    from comparisons.check.checker import failure_from, replay

    outcome = replay(args.reproducer, load_function(args.fn), params=args.params)
    if outcome.status == "agree":
        print(f"agrees on {outcome.case.id}")
        return EXIT_OK
    if outcome.status == "inconclusive":
        print(f"inconclusive on {outcome.case.id}: {outcome.reason}")
        return EXIT_OK
    print(failure_from(outcome).describe())
    return EXIT_DISAGREE


def _bench(args) -> int:
    from comparisons.measure.bench import run, table

    _writable(args.out)
    if args.submissions is not None and not args.grading:
        raise UsageError("--submissions: only with --grading")
    if args.grading:
        return _bench_grading(args)
    results = run(args.repeats, args.quick, args.out, progress=lambda m: print(m, file=sys.stderr))
    print(table(results))
    print(f"results: {Path(args.out).resolve() / 'latest.json'} and scaling.png")
    return EXIT_OK


def _soak(args) -> int:
    import secrets

    from comparisons.measure.soak import soak, summary

    if (args.cells or args.gated) and args.device != "cpu":
        raise UsageError("--cells/--gated: check_cell computes its references on the CPU; drop --device")
    if args.cells and args.gated:
        raise UsageError("--gated: the gated soak is a soak of its own; drop --cells")
    if args.gated_cells is not None and not args.gated:
        raise UsageError("--gated-cells: only with --gated")
    if args.conventions is not None and (args.cells or args.gated or args.device != "cpu"):
        raise UsageError("--conventions: a soak of its own, on the CPU; drop --cells, --gated and --device")
    if args.pieces:
        import secrets as _secrets

        from comparisons.measure.soak import run_piece_blocks

        out = Path(args.out or "benchmarks/results/soak-pieces.json")
        seed = _soak_seed(args.seed, out, args.cases)
        _writable(str(out.parent))
        total = run_piece_blocks(args.cases, seed, out, progress=lambda line: print(line, flush=True))
        print(json.dumps({k: total[k] for k in ("cases_by_piece", "false_alarms", "seconds")}))
        return EXIT_DISAGREE if total["false_alarms"] else EXIT_OK
    kind = "-cells" if args.cells else "-gated" if args.gated else "-conventions" if args.conventions else ""
    out = Path(args.out or f"benchmarks/results/soak{kind}.json")
    _writable(str(out.parent))
    from comparisons.check import backends
    backends.on_device(backends.available(args.references)[0], args.device)   # no GPU: exit 2 now
    seed = _soak_seed(args.seed, out, args.cases)
    import os
    total = soak(args.cases, seed, workers=args.workers or os.cpu_count() or 1, scheduler=args.scheduler, out=out,
                 references=args.references, reproducers=out.parent / f"{out.stem}-false-alarms",
                 progress=lambda line: print(line, flush=True), device=args.device, cells=args.cells,
                 gated=args.gated, conventions=args.conventions,
                 **({"gated_cells": args.gated_cells} if args.gated_cells else {}))
    print(summary(total))
    try:
        from comparisons.measure.soak import figure
        figure(total, out.with_suffix(".png"))
        print(f"figure: {out.with_suffix('.png')}")
    except ImportError:         # the soak extra alone has no matplotlib (the report extra does)
        print("figure: not drawn (matplotlib is not installed)")
    print(json.dumps({k: total[k] for k in ("cases", "false_alarms", "inconclusive", "max_error_over_tolerance")}))
    return EXIT_DISAGREE if total["false_alarms"] else EXIT_OK


def _resolve(args) -> int:
    from comparisons import atomic
    from comparisons.measure.resolve import figure, goals_met, resolving_power, table

    _writable(args.out)
    out = Path(args.out)
    met = True
    for seed in args.seed:
        # one seed keeps the single file's name; several get one file each, named by seed
        stem = "resolve" + (f"-{args.cell}" if args.cell else "") + (f"-seed{seed}" if len(args.seed) > 1 else "")
        if len(args.seed) > 1:
            print(f"seed {seed}")
        if args.cell is not None:
            # the gated checks have no goals of their own yet: the measurement is the result
            from comparisons.measure.resolve import gated_resolving_power

            power = gated_resolving_power(args.cell, args.cases, seed)
        else:
            power = resolving_power(args.cases, seed)
            met &= all(ok for rows in goals_met(power).values() for *_, ok in rows)
        print(table(power, goals=args.cell is None))
        atomic.write_text(out / f"{stem}.json", json.dumps(power, indent=1, sort_keys=True) + "\n")
        figure(power, out / f"{stem}.png", goals=args.cell is None)
        print(f"results: {out.resolve() / f'{stem}.json'} and {stem}.png")
    return EXIT_OK if met else EXIT_DISAGREE


def _check_cell(args) -> int:
    from comparisons.check.cells import check_cell

    loaded = load_file(args.target)
    module = loaded.module
    step = function_named(loaded, args.target, args.step, "--step")
    fn = function_named(loaded, args.target, args.fn, "--fn")
    shapes = getattr(module, args.shapes, None)
    if not isinstance(shapes, dict):
        raise UsageError(f"--shapes: {args.target!r} has no dict {args.shapes!r} of parameter shapes "
                         f"(e.g. param_shapes = {{'W': ('H', 'D'), 'u': ('H',)}})")
    state = tuple(args.state or getattr(module, "state", ("h",)))
    result = check_cell(step, fn, param_shapes={k: tuple(v) for k, v in shapes.items()}, state=state,
                        output=args.output, loss=args.loss, reduction=args.reduction, cases=args.cases,
                        seed=args.seed, dtype=args.dtype, sizes=args.sizes,
                        recurrent=tuple(getattr(module, "recurrent", ())))
    print(json.dumps(result.to_dict(), indent=1, sort_keys=True) if args.json else result.summary())
    return EXIT_OK if result.ok else EXIT_DISAGREE


def _modules(text) -> tuple:
    """--forbid-import torch,jax -> ("torch", "jax"): module names, or a usage error."""
    if text is None:
        return ()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if not n.isidentifier()]
    if bad or not names:
        raise UsageError(f"--forbid-import: expected module names separated by commas (e.g. torch,jax); got {text!r}")
    return names


def _grade(args) -> int:
    from comparisons.grading.gradebook import class_summary, grade, make_plan, submissions

    for folder in args.path or ():
        if not Path(folder).is_dir():
            raise UsageError(f"--path: no such folder {folder!r}")
    if args.rubric is not None:
        return _grade_rubric(args)
    # no folder, no submission: exit 2 before any work
    submissions(args.folder, args.convention, args.fn, tuple(args.path or ()))
    _writable(args.out)
    from comparisons.grading import sandbox

    held = sandbox.protections()
    if args.require_sandbox and not (held.isolated and held.cgroup):
        raise UsageError(f"--require-sandbox: this machine cannot sandbox every submission: {held.text()}")
    print(f"sandbox: {held.text()}", flush=True)
    memory = args.memory if isinstance(args.memory, int) else _size(args.memory)
    plan = make_plan(args.convention, args.fn, cases=args.cases, seed=args.seed, timeout=args.timeout,
                     memory=memory, hidden=args.hidden, output=args.output, loss=args.loss,
                     reduction=args.reduction, paths=tuple(args.path or ()), stubs=tuple(args.stub or ()),
                     strict_clip=args.strict_clip, forbid=_modules(args.forbid_import),
                     strict_inputs=args.strict_inputs)
    print(f"grading on {len(plan.cases)} cases (seed {args.seed}); {len(plan.inconclusive)} inconclusive "
          f"case(s) left out", flush=True)
    book = grade(args.folder, args.out, plan, workers=args.workers, scheduler=args.scheduler, force=args.force,
                 progress=lambda line: print(line, flush=True))
    s = class_summary(book)
    print(f"{s['verdicts']['agree']} of {s['students']} agree; "
          + ", ".join(f"{n} {v}" for v, n in s["verdicts"].items() if n and v != "agree"))
    for m, n, _ in s["mistakes"]:
        print(f"  {n} x {m}")
    out = Path(args.out).resolve()
    print(f"gradebook: {out / 'gradebook.html'} and gradebook.csv")
    return EXIT_OK


def _grade_rubric(args) -> int:
    """``grade DIR --rubric FILE.toml``: every part of every submission (grading/rubric.py)."""
    from comparisons.grading import rubric as rubrics
    from comparisons.grading import sandbox
    from comparisons.grading.gradebook import submissions

    for option in ("fn", "forbid_import", "hidden", "output", "loss", "reduction"):
        if getattr(args, option) not in (None, False):
            raise UsageError(f"--{option.replace('_', '-')}: with --rubric, say it in the rubric's file")
    try:
        rubric = rubrics.load(args.rubric)
    except rubrics.RubricError as exc:
        raise UsageError(str(exc)) from None
    submissions(args.folder, rubric.parts[0].convention, rubric.parts[0].fn, tuple(args.path or ()))
    _writable(args.out)
    held = sandbox.protections()
    if args.require_sandbox and not (held.isolated and held.cgroup):
        raise UsageError(f"--require-sandbox: this machine cannot sandbox every submission: {held.text()}")
    print(f"sandbox: {held.text()}", flush=True)
    summary = rubrics.grade_rubric(args.folder, args.out, rubric, workers=args.workers, scheduler=args.scheduler,
                                   force=args.force, progress=lambda line: print(line, flush=True),
                                   paths=tuple(args.path or ()), stubs=tuple(args.stub or ()))
    totals = sorted(e["total"] for e in summary["students"].values())
    median = totals[len(totals) // 2] if totals else 0
    print(f"{rubric.name}: {len(totals)} submissions, median {median:g} of {rubric.total:g} points")
    for part, mistakes in summary["mistakes"].items():
        for m, n in mistakes:
            print(f"  {part}: {n} x {m}")
    out = Path(args.out).resolve()
    print(f"gradebook: {out / 'gradebook.html'}, gradebook.csv, gradebook-lms.csv; feedback/ per student")
    return EXIT_OK


def _bench_grading(args) -> int:
    import time

    from comparisons import atomic
    from comparisons.measure import grading_rate

    sizes = tuple(args.submissions or grading_rate.SIZES)
    results = grading_rate.run(sizes, progress=lambda m: print(m, file=sys.stderr, flush=True))
    results["environment"] = {"cpu_count": os.cpu_count(), "python": sys.version.split()[0]}
    out = Path(args.out)
    text = json.dumps(results, indent=1, sort_keys=True) + "\n"
    atomic.write_text(out / f"bench-grading-{time.strftime('%Y%m%d-%H%M%S')}.json", text)
    atomic.write_text(out / "grading-latest.json", text)
    print(grading_rate.table(results))
    print(f"results: {out.resolve() / 'grading-latest.json'}")
    wrong = sum(r["wrong_verdicts"] for r in results["grading"]) + results["cluster"]["grade"]["wrong_verdicts"]
    return EXIT_DISAGREE if wrong or not results["cluster"]["soak"]["tallies_equal"] else EXIT_OK


def _soak_seed(seed, out: Path, cases: int) -> int:
    """The seed a soak runs on: --seed if given; else the seed of the tally already at --out for
    as many cases (a rerun resumes it, and leaves a finished one as it is, rather than
    overwriting it with a fresh seed's); else a fresh one, never a tuned one."""
    import secrets

    if seed is None and out.is_file():
        try:
            saved = json.loads(out.read_text())
        except (OSError, ValueError):
            saved = {}
        if isinstance(saved, dict) and isinstance(saved.get("seed"), int) and saved.get("cases_asked") == cases:
            print(f"seed: {saved['seed']} (the tally at {out}; pass --seed or another --out for a fresh one)",
                  flush=True)
            return saved["seed"]
    seed = secrets.randbelow(2**31) if seed is None else seed
    print(f"seed: {seed}", flush=True)
    return seed


def _autograder(args) -> int:
    from comparisons.grading import gradescope, rubric

    if not str(args.out).endswith(".zip"):
        raise UsageError(f"--out: expected a .zip file; got {args.out!r}")
    _writable(str(Path(args.out).resolve().parent))
    try:
        names = gradescope.build(args.rubric, args.out, suite_root=args.suite)
    except (rubric.RubricError, gradescope.SourceNotFound) as exc:
        raise UsageError(str(exc)) from None
    print(f"autograder: {Path(args.out).resolve()} ({len(names)} files: setup.sh, run_autograder, rubric.toml and "
          f"the suite); upload it as the assignment's autograder on Gradescope")
    return EXIT_OK


def _otter_tests(args) -> int:
    from comparisons.grading import courses, rubric

    try:
        r = rubric.load(args.rubric)
    except rubric.RubricError as exc:
        raise UsageError(str(exc)) from None
    _writable(args.out)
    for path in courses.write_otter_tests(r, args.out, args.blocks):
        print(f"wrote {path}")
    print("in the notebook: grader = otter.Notebook(tests_dir=...); grader.check(\"PART\")")
    return EXIT_OK


def _gradescope(args) -> int:
    from comparisons.grading import gradescope, rubric

    root = Path(args.root)
    if not (root / "submission").is_dir():
        raise UsageError(f"--root: {str(root)!r} has no submission/ folder (Gradescope's layout: ROOT/submission, "
                         f"ROOT/results)")
    try:
        results = gradescope.run(root, args.rubric, progress=lambda line: print(line, flush=True))
    except rubric.RubricError as exc:
        raise UsageError(str(exc)) from None
    print(f"results: {root / 'results' / 'results.json'}: {results['score']:g} points")
    return EXIT_OK


COMMANDS = {"report": _progress_report, "check": _check, "replay": _replay, "bench": _bench,
            "resolve": _resolve, "soak": _soak, "grade": _grade, "check-cell": _check_cell,
            "autograder": _autograder, "gradescope": _gradescope, "otter-tests": _otter_tests}


def console() -> int:
    """The ``bptt-xval`` command: :func:`main` in a process of its own, which may keep JAX's
    compiled references on disk between runs (a cold ``check`` pays about a second per
    padded shape otherwise). A library call never does: the setting is the whole process's
    (reference/jax_grad.py). ``BPTT_XVAL_JAX_CACHE=off`` turns it off here too."""
    os.environ.setdefault("BPTT_XVAL_JAX_CACHE", "default")
    files.HARD_TIMEOUT = True
    exit_now(main())


def exit_now(code: int) -> None:
    """End the command's process without the interpreter's teardown, which spent 0.75 s of
    a 3.2 s cold ``check --cases 100`` freeing torch's and XLA's native state (measured:
    from the last line printed to the process's end). What a clean exit owes is done
    first: the atexit handlers (a user's module may have registered some) and flushing
    stdout and stderr. mypy ends its command the same way (``mypy.util.hard_exit``)."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):      # a closed pipe or stream: nothing left to say
            pass
    os._exit(code)


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError, KeyError, BackendUnavailable) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:   # a disk filling up or a folder removed under a running command
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; no partial files were left (every file is written atomically)", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    # ``python -m comparisons.cli`` is the command too: the same process settings as ``console``
    # (JAX's compiled buckets kept between runs; the bench's cold checks start it this way)
    console()
