"""min-char-rnn with an LSTM in place of the tanh cell: ``lossFun(inputs, targets, hprev, cprev)``,
as the gist's readers extend it. Two shapes are common, and both are read:

stacked, the gist's names kept (``Wxh`` (4H, V), ``Whh`` (4H, H), ``bh`` (4H, 1), ``Why``, ``by``)::

    a = Wxh x_t + Whh h_{t-1} + bh;  i, f, o, g = a[:H], a[H:2H], a[2H:3H], a[3H:]  (some order)
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs)-1], cs[len(inputs)-1]

one matrix per gate on the stacked [h_{t-1}; x_t] (``Wf``, ``Wi``, ``Wc`` or ``Wg``, ``Wo``, each
(H, H + V), biases ``bf``... (H, 1), ``Wy``, ``by``)::

    z = np.row_stack((hs[t-1], xs[t]));  f = sigmoid(Wf z + bf) ...   (or np.vstack)
    return loss, dWf, dWi, dWc, dWo, dWy, dbf, dbi, dbc, dbo, dby, h, c   (any order of the ten)

Mapping to the suite's LSTM (PyTorch's layout, gates i, f, g, o): stacked, ``Wxh = W_ih``,
``Whh = W_hh``, ``bh = b`` with the blocks in the file's gate order; per gate, ``Wf = [W_hh_f
W_ih_f]`` (or ``[W_ih_f W_hh_f]`` for ``[x_t; h_{t-1}]``), ``bf = b_f``; ``Why``/``Wy = W_hy``,
``by = b_y``; hprev = cprev = 0; one-hot inputs, cross-entropy summed over time.

Which parameter is which comes from the names ``lossFun`` returns (``dWf`` is the gradient of
the global ``Wf``). The gate order (stacked) or the order of [h; x] (per gate) cannot be read
reliably from arbitrary code, so it is measured: the first call's loss is compared with the
suite's forward pass under every order (24 or 2), and the one that reproduces it is used from
then on (named in ``fn.layout``). A forward pass that matches no order keeps the first
(i, f, o, g; [h; x]) and fails on the loss, as it should. Clipping is read and handled as in
``min_char``.
"""

from __future__ import annotations

import ast
import inspect
import itertools

import numpy as np

from bptt_xval.model import Gradients
from comparisons.conventions._adapt import as_numpy, call, name_of, read_only, returned
from comparisons.conventions._gates import GatedProblem, back, gated, reorder
from comparisons.conventions.min_char import GRADIENT_PREFIXES, _reads, _returned_name, _tree, set_clip

#: hyper-parameters such files read as globals, and what they are in a case
SUPPLIED = {"vocab_size": "D", "hidden_size": "H", "seq_length": "T", "H_size": "H", "X_size": "D",
            "z_size": "H+D", "input_size": "D"}
STACKED = ("W_ih", "W_hh", "W_hy", "b", "b_y")          # the gist's Wxh, Whh, Why, bh, by, by role
GIST = {"W_ih": "Wxh", "W_hh": "Whh", "W_hy": "Why", "b": "bh", "b_y": "by"}


def _role(bare: str) -> str | None:
    """A per-gate parameter's role from its name: ("W" or "b") + gate (i, f, g, o, y)."""
    kind = bare[:1]
    rest = bare[1:].lstrip("_").lower()
    # the candidate goes by c, g, cc (c-candidate), cbar or ct in the files we saw
    gate = {"f": "f", "i": "i", "c": "g", "g": "g", "cc": "g", "cbar": "g", "ct": "g", "o": "o", "y": "y",
            "hy": "y"}.get(rest)
    if kind not in ("W", "b") or gate is None:
        return None
    return kind + gate


def roles(lossFun, tree) -> tuple[str, dict]:
    """("stacked" or "per_gate", {role: (name, "global" or "self")}) from the gradients the
    function returns, in its own return statement's order."""
    globals_read, self_read = _reads(tree)
    method = inspect.ismethod(lossFun)
    returns = [n for n in ast.walk(tree) if isinstance(n, ast.Return) and isinstance(n.value, ast.Tuple)] \
        if tree is not None else []
    for ret in returns:
        names = []
        for node in ret.value.elts[1:-2]:
            name = _returned_name(node) or ""
            bare = next((name[len(p):] for p in GRADIENT_PREFIXES if name.startswith(p) and len(name) > len(p)), None)
            names.append(bare)
        where = lambda bare: "self" if method and bare in self_read else "global"
        if len(names) == 5:
            return "stacked", {role: ((bare or GIST[role]), where(bare)) for role, bare in zip(STACKED, names)}
        if len(names) == 10:
            found = {}
            for bare in names:
                role = _role(bare or "")
                if role is None or role in found:
                    break
                found[role] = (bare, where(bare))
            if len(found) == 10:
                return "per_gate", found
    raise TypeError(f"{name_of(lossFun, 'lossFun')}: expected it to return (loss, dWxh, dWhh, dWhy, dbh, dby, "
                    f"h, c) or (loss, ten per-gate gradients dWf ... dby, h, c); its return statement says neither")


#: the case space the style supports: a language model on one sequence (the grader's plan reads it
#: without a file to adapt)
SPACE = {"loss": "cross_entropy", "reduction": "sum", "inputs": "one_hot", "tie_D_O": True, "sizes": {"B": 1}}


def min_char_rnn_lstm(lossFun, *, strict_clip: bool = False):
    """A min-char-rnn LSTM ``lossFun(inputs, targets, hprev, cprev)`` (module docstring)."""
    if not callable(lossFun):
        raise TypeError(f"lossFun: expected a callable; got {type(lossFun).__name__}")
    module_globals = getattr(lossFun, "__globals__", None)
    if not isinstance(module_globals, dict):
        raise TypeError("lossFun: expected a Python function whose module holds its parameters")
    where = name_of(lossFun, "lossFun")
    tree = _tree(lossFun)
    form, names = roles(lossFun, tree)
    globals_read, self_read = _reads(tree)
    spaces = {"global": module_globals, "self": vars(lossFun.__self__) if inspect.ismethod(lossFun) else {}}
    supplied = [(n, "global") for n in SUPPLIED if n in globals_read]
    supplied += [(n, "self") for n in SUPPLIED if n in self_read and inspect.ismethod(lossFun)]
    layouts = (list(itertools.permutations("ifog")) if form == "stacked" else [("h", "x"), ("x", "h")])
    if form == "stacked":                 # the common orders first: cs231n's, then PyTorch's
        layouts.remove(tuple("ifgo"))
        layouts.insert(1, tuple("ifgo"))
    state = {"layout": layouts[0], "measured": False}
    expected = ("(loss, dWxh, dWhh, dWhy, dbh, dby, h, c)" if form == "stacked"
                else "(loss, " + ", ".join("d" + names[r][0] for r in sorted(names)) + ", h, c)")

    def student_arrays(params, layout, H):
        """The file's parameter values for the suite's ``params`` under ``layout``."""
        if form == "stacked":
            order = tuple(layout)
            return {"W_ih": reorder(params["W_ih"], order, "lstm"), "W_hh": reorder(params["W_hh"], order, "lstm"),
                    "W_hy": params["W_hy"], "b": reorder(params["b"], order, "lstm")[:, None],
                    "b_y": params["b_y"][:, None]}
        out = {"Wy": params["W_hy"], "by": params["b_y"][:, None]}
        for k, g in enumerate("ifgo"):
            rows = slice(k * H, (k + 1) * H)
            parts = {"h": params["W_hh"][rows], "x": params["W_ih"][rows]}
            out["W" + g] = np.concatenate([parts[layout[0]], parts[layout[1]]], axis=1)
            out["b" + g] = params["b"][rows][:, None]
        return out

    def suite_params(arrays, layout, H, like):
        """:func:`student_arrays`'s inverse (the suite's parameters the file's arrays hold)."""
        if form == "stacked":
            order = tuple(layout)
            return {"W_ih": back(arrays["W_ih"], order, "lstm"), "W_hh": back(arrays["W_hh"], order, "lstm"),
                    "b": back(arrays["b"].reshape(-1), order, "lstm"), "W_hy": arrays["W_hy"],
                    "b_y": arrays["b_y"].reshape(-1)}
        first = H if layout[0] == "h" else arrays["Wf"].shape[1] - H
        pick = lambda g, part: (arrays["W" + g][:, :first] if layout[0] == part else arrays["W" + g][:, first:])
        return {"W_ih": np.concatenate([pick(g, "x") for g in "ifgo"]),
                "W_hh": np.concatenate([pick(g, "h") for g in "ifgo"]),
                "b": np.concatenate([arrays["b" + g].reshape(-1) for g in "ifgo"]),
                "W_hy": arrays["Wy"], "b_y": arrays["by"].reshape(-1)}

    def call_once(arrays, p, b):
        values = {names[r]: read_only(v) for r, v in arrays.items()}
        sizes = {"D": p.D, "H": p.H, "T": p.T, "H+D": p.H + p.D}
        values.update({(n, s): sizes[SUPPLIED[n]] for n, s in supplied})
        missing = object()
        saved = {(n, s): spaces[s].get(n, missing) for n, s in values}
        try:
            for (n, s), v in values.items():
                spaces[s][n] = v
            inputs = [int(i) for i in p.xs[:, b].argmax(-1)]
            targets = [int(i) for i in np.asarray(p.ys)[:, b]]
            zero = np.zeros((p.H, 1), p.dtype)
            out = call(where, "hprev, cprev or a parameter", lossFun, inputs, targets, read_only(zero),
                       read_only(zero))
        finally:
            for (n, s), v in saved.items():
                if v is missing:
                    spaces[s].pop(n, None)
                else:
                    spaces[s][n] = v
        out = returned(where, out, len(arrays) + 3, expected, kinds=(tuple,))
        grads = dict(zip(STACKED, out[1:6])) if form == "stacked" else dict(zip(_return_order(), out[1:11]))
        return float(np.asarray(out[0])), grads

    def _return_order():
        for ret in (n for n in ast.walk(tree) if isinstance(n, ast.Return) and isinstance(n.value, ast.Tuple)):
            if len(ret.value.elts) == 13:
                bares = [next((nm[len(p):] for p in GRADIENT_PREFIXES if nm.startswith(p)), nm)
                         for nm in (_returned_name(e) or "" for e in ret.value.elts[1:11])]
                return [_role(b) for b in bares]
        return sorted(names)

    def measure(params, p):
        """The layout whose forward pass reproduces the file's loss (module docstring)."""
        from comparisons.check.gated_mistakes import mistaken

        arrays = student_arrays(params, state["layout"], p.H)
        loss, _ = call_once(arrays, p, 0)
        one = {"xs": p.xs[:, :1], "ys": np.asarray(p.ys)[:, :1]}
        best = None
        for layout in layouts:
            theta = suite_params(arrays, layout, p.H, params)
            L = mistaken("lstm", None, theta, one["xs"], one["ys"], loss="cross_entropy", reduction="sum").loss
            gap = abs(L - loss) / max(abs(L), 1e-300)
            if best is None or gap < best[0]:
                best = (gap, layout)
        if best[0] < 1e-3:
            state["layout"] = best[1]
        state["measured"] = True

    def loss_and_grads(params, xs, ys, *, output="identity", loss="cross_entropy", reduction="sum",
                       truncate=None):
        p = GatedProblem("lstm", params, xs, ys, output, loss, reduction, truncate, "min-char-rnn")
        if loss != "cross_entropy" or output != "identity":
            raise ValueError("loss: min-char-rnn code computes softmax cross-entropy only")
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction: min-char-rnn code sums over time; got {reduction!r}")
        if p.D != p.O or not np.all((p.xs == 0) | (p.xs == 1)) or not np.all(p.xs.sum(-1) == 1):
            raise ValueError("xs: min-char-rnn takes character indices: one-hot x_t with D == O")
        if not state["measured"]:
            measure(params, p)
        arrays = student_arrays(params, state["layout"], p.H)
        scale = 1.0 / p.T if reduction == "mean" else 1.0
        total = 0.0
        sums = {k: np.zeros(v.shape, np.float64) for k, v in arrays.items()}
        for b in range(p.B):
            value, grads = call_once(arrays, p, b)
            total += value * scale / p.B
            for k in sums:
                sums[k] += as_numpy("d" + names[k][0], grads[k], arrays[k].shape, np.float64) * scale / p.B
        theta = suite_params(sums, state["layout"], p.H, params)
        return Gradients(total, {k: v.astype(p.dtype) for k, v in theta.items()}, None)

    fn = gated(loss_and_grads, "lstm", f"min_char_rnn_lstm({where})", SPACE)
    set_clip(fn, lossFun, tree, where, strict_clip)
    fn.parameter_names = {role: n for role, (n, _) in names.items()}
    fn.names_note = ("names: W_ih, W_hh, b = the gradients of " + (
        f"{names['W_ih'][0]}, {names['W_hh'][0]}, {names['b'][0]} with the file's gate blocks in PyTorch's order i, f, g, o"
        if form == "stacked" else "each gate's matrix (Wf ... on [h; x]) split into its h and x columns, gates i, f, g, o")
        + f"; W_hy, b_y = those of {names['W_hy' if form == 'stacked' else 'Wy'][0]}, {names['b_y' if form == 'stacked' else 'by'][0]}")
    fn.layout = lambda: "".join(state["layout"]) if form == "stacked" else "[" + "; ".join(state["layout"]) + "]"
    return fn
