"""The report's figures, drawn with matplotlib from ``data.collect``'s output.

Each function takes the data and a path, writes one PNG and returns the file name.
Backends are told apart by line style and marker as well as colour, so overlaid curves
that coincide (they must) are still visibly all there.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: the report is written headless

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402

from comparisons import atomic  # noqa: E402

STYLE = {
    "manual": dict(color="#1f77b4", lw=3.0, ls="-", alpha=0.55),
    "torch": dict(color="#d62728", lw=1.6, ls="--", marker="o", ms=3, markevery=4),
    "jax": dict(color="#2ca02c", lw=1.2, ls=":", marker="x", ms=4, markevery=5),
    "numeric": dict(color="#9467bd", lw=1.0, ls="-.", marker="s", ms=3, markevery=6),
}
REGIME_TITLE = {"contractive": "rho(W_hh) = 0.5", "near_edge": "rho(W_hh) = 0.9",
                "edge": "rho(W_hh) = 1.0", "expansive": "rho(W_hh) = 1.5",
                "saturated": "saturated units (rho 0.9)"}


def _save(fig, path) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    atomic.write_bytes(path, buffer.getvalue())
    return path.name


def _positive(values):
    """Log axes cannot show 0: exact zeros (truncated or vanished) are drawn as gaps."""
    v = np.asarray(values, dtype=float)
    return np.where(v > 0, v, np.nan)


def norms(data: list, path) -> str:
    fig, axes = plt.subplots(1, len(data), figsize=(4.0 * len(data), 3.6), sharey=False)
    for ax, d in zip(np.atleast_1d(axes), data):
        t = np.arange(len(next(iter(d["norms"].values()))))
        for name, values in d["norms"].items():
            ax.semilogy(t, _positive(values), label=name, **STYLE.get(name, {}))
        ax.semilogy(t, _positive(d["bound"]), color="black", lw=1, ls=(0, (4, 2)),
                    label="bound  ||dL/dh_T|| prod ||diag(phi') W_hh||")
        ax.set_title(f"{REGIME_TITLE.get(d['regime'], d['regime'])}\n(measured rho {d['radius']:.2f})",
                     fontsize=10)
        ax.set_xlabel("t")
        ax.grid(True, which="major", alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("||dL/dh_t||")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False,
               bbox_to_anchor=(0.5, -0.08))
    fig.suptitle("Gradient norms across time: every backend overlaid (they coincide), with the "
                 "Jacobian product bound (loose where W_hh is non-normal: ||W_hh||_2 > rho)",
                 fontsize=11, y=1.06)
    return _save(fig, path)


def contributions(data: list, path) -> str:
    fig, axes = plt.subplots(1, len(data), figsize=(4.0 * len(data), 3.4))
    for ax, d in zip(np.atleast_1d(axes), data):
        for name, values in d["terms"].items():
            ax.semilogy(np.arange(1, len(values) + 1), _positive(values), label=name,
                        **STYLE.get(name, {}))
        ax.set_title(REGIME_TITLE.get(d["regime"], d["regime"]), fontsize=10)
        ax.set_xlabel("t")
        ax.grid(True, alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("||e_t h_{t-1}^T||  (term t of dL/dW_hh)")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle("Per-step contributions to dL/dW_hh = sum_t e_t h_{t-1}^T", fontsize=11, y=1.04)
    return _save(fig, path)


def _magnitude_colour(value: float) -> str:
    """Seed 000's arrow colours: gray = small, orange = about 1, red = large."""
    m = abs(value)
    return "#9e9e9e" if m < 0.3 else ("#ff9800" if m < 3.0 else "#d32f2f")


def seed000(views: list, path) -> str:
    fig, axes = plt.subplots(1, len(views), figsize=(7.2 * len(views), 3.6))
    for ax, v in zip(np.atleast_1d(axes), views):
        dL_dh = v["dL_dh"]["seed 000 recursion"]
        T = len(v["x"])
        ax.set_xlim(-1.3, T + 1.3)
        ax.set_ylim(-1.6, 2.1)
        ax.set_aspect("equal")
        ax.axis("off")
        for k in range(T + 1):
            ax.add_patch(plt.Circle((k, 0.5), 0.28, fc="#e3f2fd", ec="#1565c0", lw=1.2, zorder=3))
            ax.text(k, 0.5, f"h[{k}]", ha="center", va="center", fontsize=8, zorder=4)
            ax.text(k, -0.05, f"{dL_dh[k]:.3g}", ha="center", va="top", fontsize=8,
                    color=_magnitude_colour(dL_dh[k]))
            if k < T:
                ax.add_patch(plt.Rectangle((k - 0.22, -1.45), 0.44, 0.4, fc="#f1f8e9", ec="#558b2f"))
                ax.text(k, -1.25, f"x[{k}]", ha="center", va="center", fontsize=8)
                ax.add_patch(FancyArrowPatch((k + 0.1, -1.02), (k + 0.85, 0.25), arrowstyle="-|>",
                                             mutation_scale=9, color="#9e9e9e", lw=0.8))
                # the arrow h[k] -> h[k+1] carries dL/dh[k] = e[k+1] w_r back: colour by it
                ax.add_patch(FancyArrowPatch((k + 0.3, 0.5), (k + 0.7, 0.5), arrowstyle="-|>",
                                             mutation_scale=12, color=_magnitude_colour(dL_dh[k]),
                                             lw=2.5))
        ax.add_patch(plt.Circle((T + 0.8, 1.7), 0.3, fc="#fff3e0", ec="#e65100", lw=1.2))
        ax.text(T + 0.8, 1.7, "y", ha="center", va="center", fontsize=10)
        ax.add_patch(FancyArrowPatch((T + 0.15, 0.75), (T + 0.6, 1.45), arrowstyle="-|>",
                                     mutation_scale=12, color=_magnitude_colour(dL_dh[T]), lw=2.5))
        ax.text(-0.4, -0.05, "dL/dh[k] =", ha="right", va="top", fontsize=8, style="italic")
        regime = "|w_r| < 1: the signal shrinks going left" if abs(v["w_r"]) < 1 else \
            "|w_r| > 1: the signal grows going left"
        ax.set_title(f"w_r = {v['w_r']}  ({regime})\nmanual, torch and jax agree to "
                     f"{v['max_spread']:.1e}", fontsize=10)
    fig.text(0.5, 0.06, "arrow colour = |dL/dh[k]|:  gray < 0.3,  orange about 1,  red > 3",
             ha="center", fontsize=9)
    return _save(fig, path)


def _loglog(path, x, series: dict, *, xlabel, ylabel, title, styles=None, extra=None) -> str:
    """One log-log panel of named curves over the measured x values."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, values in series.items():
        style = (styles or {}).get(label, dict(marker="o"))
        ax.loglog(x, _positive(values), label=label, **style)
    if extra:
        extra(ax)
    _integer_ticks(ax, x)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def precision(data: dict, path) -> str:
    from comparisons.check.tolerances import C_WEIGHT_SUMS
    return _loglog(
        path, data["T"], {f"{name} float32": v for name, v in data["rel"].items()},
        styles={f"{name} float32": STYLE.get(name, {}) for name in data["rel"]},
        extra=lambda ax: ax.loglog(data["T"], data["tolerance"], color="black", ls="--",
                                   label=f"dL/dW_hh's tolerance C (u + u64) sqrt(n), C = {C_WEIGHT_SUMS:g}"),
        xlabel="T (sequence length)", ylabel="relative error of dL/dW_hh vs float64",
        title="float32 error growth with T, against the tolerance")


def agreement(cases: list, path) -> str:
    """Heat map of max error / tolerance per case and backend (< 1 passes)."""
    names = sorted({b for c in cases for b in c["errors"]})
    ratio = np.full((len(cases), len(names)), np.nan)
    for i, c in enumerate(cases):
        for j, b in enumerate(names):
            if b in c["errors"]:
                ratio[i, j] = max(e["max_abs"] / e["tol"] for e in c["errors"][b].values())
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(names), 0.26 * len(cases) + 1.4))
    shown = np.log10(np.maximum(ratio, 1e-6))
    # white at the tolerance itself, green below (passes), magenta above (fails)
    norm = matplotlib.colors.TwoSlopeNorm(vmin=-6, vcenter=0, vmax=2)
    im = ax.imshow(shown, aspect="auto", cmap="PiYG_r", norm=norm)
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(cases)), [c["id"][:60] for c in cases], fontsize=6)
    fig.colorbar(im, ax=ax, label="log10(max error / tolerance); < 0 passes")
    ax.set_title("Agreement: error relative to tolerance", fontsize=10)
    return _save(fig, path)


def _integer_ticks(ax, values) -> None:
    """Label a log x axis at exactly the values measured."""
    ax.set_xticks(values, [str(v) for v in values])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def mlp_deltas(rows: list, path) -> str:
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.4), sharey=True)
    for ax, row in zip(np.atleast_1d(axes), rows):
        for name, norms in row["delta_norms"].items():
            ax.semilogy(np.arange(1, len(norms) + 1), norms, label=name, **STYLE.get(name, {}))
        ax.set_title(f"{row['activation']} MLP, widths {row['widths'][0]}-{row['widths'][1]}x"
                     f"{len(row['widths']) - 2}-{row['widths'][-1]}", fontsize=10)
        ax.set_xlabel("layer l")
        ax.grid(True, alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("||delta^(l)||")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle("Seed 002: per-layer error signals delta^(l) = (W^(l+1)T delta^(l+1)) * phi'(z^(l))",
                 fontsize=11, y=1.04)
    return _save(fig, path)


def truncation(data: dict, path) -> str:
    return _loglog(path, data["k"], {REGIME_TITLE.get(r, r): d for r, d in data["rel_distance"].items()},
                   xlabel="truncation length k (h_k, h_2k, ... detached)",
                   ylabel="||g_k - g_full|| / ||g_full||  (dL/dW_hh)",
                   title=f"Truncated BPTT against full BPTT (T = {data['T']})")


def lockstep(data: dict, path) -> str:
    fig, axes = plt.subplots(1, len(data), figsize=(6.0 * len(data), 3.8))
    for ax, (model, run) in zip(np.atleast_1d(axes), data.items()):
        for name, losses in run["losses"].items():
            ax.semilogy(np.arange(len(losses)), losses, label=name,
                        **STYLE.get(name, dict(color="black", lw=5, alpha=0.25)))
        ax.set_title(f"{model} RNN: SGD with each backend's gradients\nweights agree to "
                     f"{run['max_weight_deviation']:.1e} over the whole run", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def costs(data: dict, path) -> str:
    return _loglog(path, data["T"], data["seconds"], xlabel="T", ylabel="seconds (one gradient, H = 8)",
                   title="Cost as T grows: BPTT and RTRL linear, sum over products quadratic")


# rows of the autograd-graph figure, top to bottom, by node kind
_GRAPH_ROWS = {"loss": 0, "w_y": 1, "TanhBackward0": 2, "AddBackward0": 3, "recurrent": 4, "w_x": 5,
               "AccumulateGrad": 6}


def _graph_row(node) -> int:
    label = node["label"]
    if node["type"] == "MulBackward0":
        return (_GRAPH_ROWS["w_y"] if "w_y" in label else _GRAPH_ROWS["w_x"] if "dL/dw_x" in label
                else _GRAPH_ROWS["recurrent"] if "w_r" in label else _GRAPH_ROWS["loss"])
    return _GRAPH_ROWS.get(node["type"], _GRAPH_ROWS["loss"])


def autograd_graph(graphs: list, path) -> str:
    """The autograd graph(s) of seed 000 unrolled (``comparisons.report.evidence.torch_graph``):
    one node per grad_fn, placed by its time step (columns, right = later) and kind
    (rows), labelled with the seed equation it implements; arrows in the order the
    backward pass runs. One panel per graph (full, truncated)."""
    fig, axes = plt.subplots(len(graphs), 1, figsize=(15, 5.2 * len(graphs)), squeeze=False)
    for ax, g in zip(axes[:, 0], graphs):
        T = g["T"]
        pos = {}
        spread = {}
        for node in g["nodes"]:
            row = _graph_row(node)
            if node["step"] is None:                         # a weight's accumulator: far left
                row = 6 + 0.8 * spread.setdefault("acc", 0)
                spread["acc"] += 1
                col = -1.3
            elif node["step"] == T + 1:                      # the loss's own nodes: a column of their own
                row = 1.1 * spread.setdefault("loss", 0)
                spread["loss"] += 1
                col = T + 1
            else:
                col = node["step"] + (0.45 if node["type"] == "TanhBackward0" else 0.0)
            pos[node["id"]] = (col, -row)
        for a, b in g["edges"]:
            ax.add_patch(FancyArrowPatch(pos[a], pos[b], arrowstyle="-|>", mutation_scale=9, color="#888",
                                         lw=0.8, shrinkA=14, shrinkB=14, connectionstyle="arc3,rad=0.08"))
        for node in g["nodes"]:
            x, y = pos[node["id"]]
            colour = {"TanhBackward0": "#fde2c8", "MulBackward0": "#d6e6f5", "AddBackward0": "#e8e8e8",
                      "AccumulateGrad": "#d9f0d3"}.get(node["type"], "#f5f5f5")
            ax.text(x, y, f"{node['type']}\n{node['label'].replace(';  ', chr(10))}", ha="center", va="center",
                    fontsize=6.2, bbox=dict(boxstyle="round,pad=0.3", fc=colour, ec="#999", lw=0.6))
        cut = "" if g["truncate"] is None else (f": truncate = {g['truncate']} cuts h[{g['truncate']}] off "
                                                 f"(detach), so nothing flows to earlier steps")
        ax.set_title(f"torch's autograd graph of seed 000 unrolled over T = {T}, walked from loss.grad_fn{cut}",
                     fontsize=10)
        ax.set_xlim(-2.2, T + 1.8)
        ax.set_ylim(-8.4, 0.8)
        ax.set_xticks(range(T + 2), [f"k = {k}" for k in range(T + 1)] + ["loss"])
        ax.set_yticks([])
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
    fig.tight_layout()
    return _save(fig, path)


def cell_norms(data: dict, path) -> str:
    """||dL/dh_t|| across time for every built-in cell at a matched spectral radius, the
    loss at the last step (``comparisons.check.cells.other_cells_study``)."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for (name, d), style in zip(data.items(), ("-", "--", "-.", ":", (0, (5, 1)))):
        ax.semilogy(range(len(d["dL_dh_norms"])), _positive(d["dL_dh_norms"]), linestyle=style, lw=1.8,
                    label=f"{name}: dL/dh_t")
        if d.get("dL_dc_norms"):
            # the LSTM's cell state: the error carried by c_t = f c_{t-1} + i g, not through W_hh
            ax.semilogy(range(len(d["dL_dc_norms"])), _positive(d["dL_dc_norms"]), color="black", lw=2.4,
                        alpha=0.6, label=f"{name}: dL/dc_t (cell state)")
    ax.set_xlabel("t")
    ax.set_ylabel("||dL/dh_t||, ||dL/dc_t||")
    ax.set_title("Gradients back through time, every H x H block at spectral radius 0.9, loss at t = T")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)
