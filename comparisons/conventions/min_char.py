"""min-char-rnn (karpathy's gist, and the hundreds of copies of it): ``lossFun(inputs,
targets, hprev)``, as its readers write it.

    xs[t] = one-hot(inputs[t])                        x_t, D = vocab_size
    hs[t] = tanh(Wxh xs[t] + Whh hs[t-1] + bh)        h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)
    ys[t] = Why hs[t] + by                            z_t = W_hy h_t + b_y
    ps[t] = softmax(ys[t]),  loss = -sum_t log ps[t][targets[t]]        cross-entropy, summed over t
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs)-1]

The parameters are module globals (``Wxh`` (H, V), ``Whh`` (H, H), ``Why`` (V, H), ``bh``
(H, 1), ``by`` (V, 1)) or, in the copies that wrap the gist in a class, attributes of
``self``. Copies rename them (``U, W, V, b, c``; ``W_xh``, ...): each parameter is found by
its role, from the file's own use: the k-th gradient ``lossFun`` returns, ``dU``, is the
gradient of the global or attribute ``U`` it reads. The hyper-parameters it reads
(``vocab_size``, ``hidden_size``, ``seq_length``) are supplied for each call, since the
script computes them from its data at top level (``vocab_size = len(chars)``), which is
never run.

The gist clips its gradients inside ``lossFun`` (``np.clip(dparam, -5, 5, out=dparam)``):
a faithful copy returns the true gradients clipped at its own c. That c is read off the
function's source, and the checker compares the gradients with the true ones clipped at
it, saying so in the summary; ``strict_clip=True`` compares them with the true ones.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import numpy as np

from bptt_xval.model import Gradients, validate
from comparisons.conventions._adapt import LAYER_PARAMS, as_numpy, call, name_of, only, read_only, returned, tagged

#: the gist's own names, by role
GIST_NAMES = {"W_xh": "Wxh", "W_hh": "Whh", "W_hy": "Why", "b_h": "bh", "b_y": "by"}
#: hyper-parameters a copy's lossFun may read as globals, and what they are in a case
SUPPLIED = {"vocab_size": "D", "hidden_size": "H", "seq_length": "T"}
GRADIENT_PREFIXES = ("grad_", "d_", "d")


def _tree(fn):
    """The function's own syntax tree, or None when its source cannot be read."""
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None


def _reads(tree) -> tuple[set, set]:
    """(global names read, ``self`` attributes read) by the function in ``tree``."""
    if tree is None:
        return set(), set()
    stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    stored |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
               for a in n.posonlyargs + n.args + n.kwonlyargs}
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                  and isinstance(n.value, ast.Name) and n.value.id == "self"}
    return loaded - stored, attributes


def _returned_name(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value                       # grads["dWxh"]
    return None


def parameter_names(lossFun, tree=None) -> dict:
    """role -> (name, "global" or "self"): where each parameter of ``lossFun`` lives, found
    by its role: the k-th gradient returned names the k-th parameter (``dWxh`` -> ``Wxh``),
    the gist's own names where the source says nothing. ``tree``: its syntax tree, if parsed."""
    tree = _tree(lossFun) if tree is None else tree
    globals_read, self_read = _reads(tree)
    found = {}
    for ret in (n for n in ast.walk(tree) if isinstance(n, ast.Return)) if tree is not None else ():
        if not (isinstance(ret.value, ast.Tuple) and len(ret.value.elts) == 7):
            continue
        for role, node in zip(GIST_NAMES, ret.value.elts[1:6]):
            name = _returned_name(node)
            for prefix in GRADIENT_PREFIXES:
                if name and name.startswith(prefix) and len(name) > len(prefix):
                    bare = name[len(prefix):]
                    if bare in self_read and inspect.ismethod(lossFun):
                        found.setdefault(role, (bare, "self"))
                    elif bare in globals_read:
                        found.setdefault(role, (bare, "global"))
                    if role in found:
                        break
    for role, gist in GIST_NAMES.items():
        if role not in found:
            found[role] = (gist, "self" if gist in self_read and inspect.ismethod(lossFun) else "global")
    return found


def _number(node, namespace: dict):
    try:
        value = ast.literal_eval(node)
    except ValueError:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = _number(node.operand, namespace)
            return None if inner is None else -inner
        value = namespace.get(node.id) if isinstance(node, ast.Name) else None
    return float(value) if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) else None


def _constant(node, namespace: dict):
    """The truth of a branch's test when it is a constant (``if False:``, ``if 0:``, a global
    of the file bound to a constant, ``not`` of one), else None: unknown, both sides can run."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _constant(node.operand, namespace)
        return None if inner is None else not inner
    if isinstance(node, ast.Constant):
        return bool(node.value)
    if isinstance(node, ast.Name) and node.id in namespace:
        value = namespace[node.id]
        if isinstance(value, (bool, int, float, str, type(None))):
            return bool(value)
    return None


_ENDS_BLOCK = (ast.Return, ast.Raise, ast.Continue, ast.Break)


def live_nodes(statements, namespace: dict):
    """Every syntax node of ``statements`` that can run: a branch whose test is a constant
    is taken or left as Python would, statements after a ``return``, ``raise``, ``break`` or
    ``continue`` of their block are dead, and nested functions and classes are not this
    function's code. (A dead ``if False: np.clip(d, -1e-300, 1e-300)`` once made the grader
    clip the references to nothing, issue 40.)"""
    for stmt in statements:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(stmt, (ast.If, ast.While)):
            truth = _constant(stmt.test, namespace)
            yield from ast.walk(stmt.test)
            if truth is not False:
                yield from live_nodes(stmt.body, namespace)
            if truth is not True or isinstance(stmt, ast.While):
                yield from live_nodes(stmt.orelse, namespace)
        else:
            blocks = [getattr(stmt, f) for f in ("body", "orelse", "finalbody") if isinstance(getattr(stmt, f, None), list)]
            blocks += [h.body for h in getattr(stmt, "handlers", [])]
            blocks += [c.body for c in getattr(stmt, "cases", [])]
            if blocks:
                yield stmt
                for field in ("test", "iter", "target", "items", "subject"):
                    value = getattr(stmt, field, None)
                    for part in value if isinstance(value, list) else [value] if value is not None else []:
                        yield from ast.walk(part)
                for block in blocks:
                    yield from live_nodes(block, namespace)
            else:
                yield from ast.walk(stmt)
        if isinstance(stmt, _ENDS_BLOCK):
            return


def _function_node(tree):
    if isinstance(tree, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return tree
    found = [n for n in getattr(tree, "body", []) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return found[0] if found else None


def clip_bound(lossFun, tree=None, namespace=None) -> tuple[float, int] | None:
    """(c, line) of the ``np.clip(d, -c, c)`` in ``lossFun``'s code that can run
    (:func:`live_nodes`), read off its source (c a number or a global of the file); None when
    it clips nothing, or not symmetrically. ``namespace``: the file's globals (the function's
    own by default; the grader passes the constants it read off the source)."""
    tree = _tree(lossFun) if tree is None else tree
    node = _function_node(tree) if tree is not None else None
    if node is None:
        return None
    namespace = getattr(lossFun, "__globals__", {}) if namespace is None else namespace
    first = getattr(getattr(lossFun, "__code__", None), "co_firstlineno", None)
    for node in live_nodes(node.body, namespace):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name != "clip":
            continue
        bounds = list(node.args[1:3]) + [k.value for k in node.keywords if k.arg in ("a_min", "a_max", "min", "max")]
        if len(bounds) < 2:
            continue
        lo, hi = _number(bounds[0], namespace), _number(bounds[1], namespace)
        if lo is not None and hi is not None and hi > 0 and lo == -hi:
            return hi, (node.lineno if first is None else first + node.lineno - 1)
    return None


def clip_from_source(chunks, name: str = "lossFun") -> float | None:
    """The grader's own reading of a min-char-rnn submission's clip (issue 40): ``chunks``
    the parsed syntax trees of its file (a notebook's cells in order), ``name`` its loss
    function. The last definition of ``name`` wins, as when the file runs; the constants it
    may clip by are the file's top-level ``NAME = number`` assignments. Nothing is run."""
    namespace, found = {}, None
    for tree in chunks:
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                value = _number(stmt.value, namespace)
                if value is not None:
                    namespace[stmt.targets[0].id] = value
                else:
                    namespace.pop(stmt.targets[0].id, None)
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
                found = stmt
    if found is None:
        return None
    bound = clip_bound(None, found, namespace)
    return None if bound is None else bound[0]


def min_char_rnn(lossFun, *, strict_clip: bool = False):
    """karpathy's min-char-rnn ``lossFun(inputs, targets, hprev)``.

    Returns ``(loss, dWxh, dWhh, dWhy, dbh, dby, h_last)``; the parameters are globals of
    lossFun's module, or attributes of the instance of a bound method (``Model().lossFun``),
    found by their role (module docstring), set for each call and restored after, also when
    it raises; inputs and targets are lists of indices into the vocabulary (one-hot x_t,
    D = O); hprev is (H, 1); the loss is summed over time. One sequence at a time: a batch
    is looped over and averaged, as the contract's loss averages it. h0's gradient is not
    part of this style, so it is not checked (named in the summary). Gradients clipped at
    the c of lossFun's own ``np.clip`` are compared with the true ones clipped at c, unless
    ``strict_clip``.
    """
    if not callable(lossFun):
        raise TypeError(f"lossFun: expected a callable; got {type(lossFun).__name__}")
    module_globals = getattr(lossFun, "__globals__", None)
    if not isinstance(module_globals, dict):
        raise TypeError("lossFun: expected a Python function whose module holds Wxh, Whh, Why, bh, by")
    if not isinstance(strict_clip, bool):
        raise TypeError(f"strict_clip: expected True or False; got {strict_clip!r}")
    where = name_of(lossFun, "lossFun")
    tree = _tree(lossFun)                       # its source, parsed once for all that reads it
    names = parameter_names(lossFun, tree)
    globals_read, self_read = _reads(tree)
    spaces = {"global": module_globals, "self": vars(lossFun.__self__) if inspect.ismethod(lossFun) else {}}
    supplied = [(n, "global") for n in SUPPLIED if n in globals_read]
    supplied += [(n, "self") for n in SUPPLIED if n in self_read and inspect.ismethod(lossFun)]

    def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity", loss="cross_entropy",
                       reduction="sum", truncate=None):
        p = validate(params, xs, ys, hidden=hidden, output=output, loss=loss, reduction=reduction,
                     truncate=truncate)
        only("hidden", hidden, ("tanh",), "min-char-rnn")
        only("loss", loss, ("cross_entropy",), "min-char-rnn")
        only("reduction", reduction, ("sum", "mean"), "min-char-rnn")
        only("truncate", truncate, (None,), "min-char-rnn")
        if p.D != p.O:
            raise ValueError(f"xs: min-char-rnn reads and predicts one vocabulary: D == O; got D={p.D}, O={p.O}")
        if not np.all((p.xs == 0) | (p.xs == 1)) or not np.all(p.xs.sum(-1) == 1):
            raise ValueError("xs: min-char-rnn takes character indices: every x_t must be a one-hot row")
        arrays = {"W_xh": p.params["W_xh"], "W_hh": p.params["W_hh"], "W_hy": p.params["W_hy"],
                  "b_h": p.params["b_h"][:, None], "b_y": p.params["b_y"][:, None]}
        values = {names[role]: read_only(v) for role, v in arrays.items()}
        sizes = {"D": p.D, "H": p.H, "T": p.T}
        values.update({(n, s): sizes[SUPPLIED[n]] for n, s in supplied})
        h0 = np.broadcast_to(p.params.get("h0", np.zeros(p.H, p.dtype)), (p.B, p.H))
        scale = 1.0 / p.T if reduction == "mean" else 1.0     # lossFun sums over time
        missing = object()
        saved = {(n, s): spaces[s].get(n, missing) for n, s in values}
        total, sums = 0.0, {k: np.zeros(v.shape, np.float64) for k, v in p.params.items() if k != "h0"}
        try:
            for (n, s), v in values.items():
                spaces[s][n] = v
            for b in range(p.B):
                inputs = [int(i) for i in p.xs[:, b].argmax(-1)]
                targets = [int(i) for i in p.ys[:, b]]
                out = call(where, "hprev or a parameter", lossFun, inputs, targets, read_only(h0[b][:, None]))
                value, dWxh, dWhh, dWhy, dbh, dby, _ = returned(
                    where, out, 7, "(loss, dWxh, dWhh, dWhy, dbh, dby, hprev)", kinds=(tuple,))
                total += float(np.asarray(value)) * scale / p.B
                for k, g in (("W_xh", dWxh), ("W_hh", dWhh), ("W_hy", dWhy), ("b_h", dbh), ("b_y", dby)):
                    sums[k] += as_numpy(f"d{names[k][0]}", g, p.params[k].shape, np.float64) * scale / p.B
        finally:
            for (n, s), v in saved.items():
                if v is missing:
                    spaces[s].pop(n, None)
                else:
                    spaces[s][n] = v
        return Gradients(total, {k: v.astype(p.dtype) for k, v in sums.items()}, None)

    fn = tagged(loss_and_grads, f"min_char_rnn({where})", {
        "hidden": "tanh", "loss": "cross_entropy", "reduction": "sum", "inputs": "one_hot",
        "tie_D_O": True, "sizes": {"B": 1}, "h0": ("vector",), "params": LAYER_PARAMS})
    # the checker compares with the true gradients clipped at c (comparisons.check.checker)
    set_clip(fn, lossFun, tree, where, strict_clip)
    fn.parameter_names = {role: n for role, (n, _) in names.items()}
    return fn


def set_clip(fn, lossFun, tree, where: str, strict_clip: bool) -> None:
    """``fn.clip`` (the c of the file's own ``np.clip(d, -c, c)``, or None) and the note the
    summary carries about it; ``strict_clip``: none, the gradients compared unclipped."""
    bound = None if strict_clip else clip_bound(lossFun, tree)
    fn.clip = None if bound is None else bound[0]
    fn.clip_note = None if bound is None else (
        f"clipped at ±{bound[0]:g}, as min-char-rnn does ({where}'s np.clip, line {bound[1]}): compared with the "
        f"true gradients clipped at ±{bound[0]:g}; --strict-clip compares them unclipped")

