"""``bptt-xval report``: run the report's cases and write report.{json,md,html} + figures.

report.json follows docs/api.md and is deterministic: the same seed gives the
same bytes on the same machine and library versions (keys sorted, no timings, no
dates). Timings go to timings.json. Every file is written atomically.
"""

from __future__ import annotations

import base64
import json
import shlex
import sys
import time
from pathlib import Path

from comparisons import atomic
from comparisons.report.data import collect
from comparisons.report.studies import costs

TEMPLATES = Path(__file__).parent / "templates"
FIGURES = {
    "norms": "norms.png",
    "contributions": "contributions.png",
    "seed000": "seed000.png",
    "precision": "precision.png",
    "agreement": "agreement.png",
    "mlp": "mlp_deltas.png",
    "truncation": "truncation.png",
    "lockstep": "lockstep.png",
    "costs": "costs.png",
    "resolve": "resolve.png",
    "graph": "autograd_graph.png",
    "cells": "cells.png",
}


def to_json(report: dict) -> str:
    return json.dumps(report, indent=1, sort_keys=True, allow_nan=True) + "\n"


def agreement_rows(report: dict) -> list:
    """One row per case x backend x target, failing rows first, then by error / tolerance."""
    rows = []
    for case in report["cases"]:
        for backend, errors in case["errors"].items():
            for target, e in errors.items():
                rows.append({"case": case["id"], "dtype": case["dtype"], "backend": backend,
                             "against": case["errors_against"][backend], "target": target,
                             "max_abs": e["max_abs"], "rel": e["rel"], "tol": e["tol"], "ok": e["ok"],
                             "why": case["tolerance_why"][backend],
                             "first_bad_step": e.get("first_bad_step")})
    rows.sort(key=lambda r: (r["ok"], -(r["max_abs"] / r["tol"] if r["tol"] else 0.0)))
    return rows


def worst_rows(rows: list) -> list:
    """The worst target of each case x backend (the Markdown table's rows)."""
    seen, out = set(), []
    for r in rows:
        key = (r["case"], r["backend"])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def render(report: dict, figures: dict, out: Path, command: str, cost_data: dict) -> None:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape(["html"]),
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["g"] = lambda v, digits=3: "-" if v is None else f"{v:.{digits}g}"
    rows = agreement_rows(report)
    context = {"r": report, "rows": rows, "worst": worst_rows(rows), "figures": figures,
               "command": command, "costs": cost_data,
               "embedded": {k: base64.b64encode((out / v).read_bytes()).decode() for k, v in figures.items()}}
    atomic.write_text(out / "report.html", env.get_template("report.html.j2").render(**context))
    atomic.write_text(out / "report.md", env.get_template("report.md.j2").render(**context))


def write_report(out, seed: int = 0, quick: bool = False, progress=None) -> dict:
    """Run and write the whole report into ``out``; returns the report dict."""
    from comparisons.report import figures as fig

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = collect(seed, quick, progress)
    # timings vary from run to run: they go to timings.json and a figure, never report.json
    cost_data = costs(Ts=(4, 8, 16, 32) if quick else (4, 8, 16, 32, 64))
    computed = time.perf_counter()
    data = report["figures_data"]
    if progress:
        progress("figures")
    drawn = {
        "norms": fig.norms(data["norms"], out / FIGURES["norms"]),
        "contributions": fig.contributions(data["contributions"], out / FIGURES["contributions"]),
        "seed000": fig.seed000(data["seed000"], out / FIGURES["seed000"]),
        "precision": fig.precision(data["precision"], out / FIGURES["precision"]),
        "agreement": fig.agreement(report["cases"], out / FIGURES["agreement"]),
        "mlp": fig.mlp_deltas(data["mlp"], out / FIGURES["mlp"]),
        "truncation": fig.truncation(data["truncation"], out / FIGURES["truncation"]),
        "lockstep": fig.lockstep(data["lockstep"], out / FIGURES["lockstep"]),
        "costs": fig.costs(cost_data, out / FIGURES["costs"]),
        "cells": fig.cell_norms(data["cells"], out / FIGURES["cells"]),
    }
    if "graph" in data["evidence"]:
        drawn["graph"] = fig.autograd_graph([data["evidence"]["graph"], data["evidence"]["graph_truncated"]],
                                            out / FIGURES["graph"])
    if "power" in report["resolving_power"]:
        from comparisons.measure.resolve import figure as resolve_figure
        resolve_figure(report["resolving_power"]["power"], out / FIGURES["resolve"])
        drawn["resolve"] = FIGURES["resolve"]
    options = f"--seed {seed}" + (" --quick" if quick else "")
    # report.json must not depend on where it is written: its command leaves --out to the reader
    report["reproduce"] = f"bptt-xval report {options} --out DIR"
    command = f"bptt-xval report --out {shlex.quote(str(out))} {options}"
    atomic.write_text(out / "report.json", to_json(report))
    render(report, drawn, out, command, cost_data)
    finished = time.perf_counter()
    atomic.write_text(out / "timings.json", json.dumps({
        "compute_s": round(computed - started, 3), "figures_and_render_s": round(finished - computed, 3),
        "total_s": round(finished - started, 3), "argv": sys.argv,
        "forward_mode_costs_s": cost_data}, indent=1) + "\n")
    return report
