"""Autodiff runs the same recurrence: evidence taken from the engines while they run.

The report shows that the backends return the same numbers; this module shows that they
compute them the same way, from the engines themselves, nothing drawn by hand:

- :func:`torch_order`: hooks on every h[k] of seed 000's scalar RNN record the order in
  which ``loss.backward()`` delivers dL/dh[k] (T, T-1, ..., 0: backward through time) and
  the values, each equal to the seed's e[k+1] w_r at that moment;
  :func:`torch_matrix_order` does the same on the contract's matrix RNN;
- :func:`torch_graph`: the autograd graph of the unrolled model, walked from
  ``loss.grad_fn``, each node labelled with the seed equation it implements, identified
  by what it saved from the forward pass (TanhBackward0 keeps h[k+1], MulBackward0 keeps
  w_r and h[k]); with ``truncate=k`` the cut is visible as the missing edges;
- :func:`jax_backward_loop`: the jaxpr of ``jax.grad`` of a ``lax.scan`` RNN, its backward
  scan (``reverse=True``) found by structure and its body annotated with the lines of
  ``manual/rnn.py`` that do the same, and the residuals JAX keeps from the forward pass
  (``jax.ad_checkpoint.print_saved_residuals``): the memory BPTT costs.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import re

import numpy as np

from manual.scalar_rnn import seed000

# seed 000's example: small inputs, a loss at the last step
W_X, W_Y, Y_STAR = 0.5, 1.0, 1.0


def seed000_inputs(T: int, seed: int = 0) -> np.ndarray:
    return 0.5 * np.random.default_rng(seed).standard_normal(T)


def _torch():
    import torch
    return torch


def _scalar_model(T: int, w_r: float, dtype: str, truncate, seed: int):
    """Seed 000 in torch, every h[k] a graph node of its own (h[0] a leaf)."""
    torch = _torch()
    tdtype = getattr(torch, dtype)
    x = torch.tensor(seed000_inputs(T, seed), dtype=tdtype)
    w = {name: torch.tensor(v, dtype=tdtype, requires_grad=True) for name, v in
         (("w_r", w_r), ("w_x", W_X), ("w_y", W_Y))}
    h = [torch.tensor(0.0, dtype=tdtype, requires_grad=True)]
    h_in = h[0]
    for k in range(T):
        h.append(torch.tanh(w["w_r"] * h_in + w["w_x"] * x[k]))
        # truncated BPTT: h[k+1] is detached before it feeds step k+2 (cut after k+1 = j, 2j, ...)
        h_in = h[-1].detach() if truncate is not None and (k + 1) % truncate == 0 else h[-1]
    L = 0.5 * (w["w_y"] * h[T] - Y_STAR) ** 2
    return x, w, h, L


def torch_order(T: int = 6, w_r: float = 0.9, dtype: str = "float64", truncate=None, seed: int = 0) -> dict:
    """The order in which ``loss.backward()`` delivers dL/dh[k] on seed 000, and the values.

    Returns {"order": [k, ...] as delivered, "values": {k: dL/dh[k]}, "seed": seed 000's
    dL/dh[k] from manual.scalar_rnn, "recursion": {k: e[k+1] w_r computed from the value
    delivered just before}, "max_difference": largest |hook - seed|}."""
    torch = _torch()
    x, w, h, L = _scalar_model(T, w_r, dtype, truncate, seed)
    order, values, recursion = [], {}, {}

    def hook(k):
        def record(grad):
            g = float(grad)
            if k + 1 in values:     # the seed's recursion from what autograd delivered a moment ago
                h_next = float(h[k + 1])
                recursion[k] = values[k + 1] * (1 - h_next * h_next) * float(w["w_r"])
            order.append(k)
            values[k] = g
        return record

    for k, h_k in enumerate(h):
        h_k.register_hook(hook(k))
    L.backward()
    s = seed000(w_r, W_X, W_Y, x.detach().numpy().astype(np.float64), Y_STAR, truncate=truncate)
    seed_values = {k: float(s.dL_dh[k]) for k in range(T + 1)}
    diff = max((abs(values[k] - seed_values[k]) for k in values), default=0.0)
    return {"T": T, "w_r": w_r, "dtype": dtype, "truncate": truncate, "order": order,
            "values": {str(k): v for k, v in values.items()}, "seed": {str(k): v for k, v in seed_values.items()},
            "recursion": {str(k): v for k, v in recursion.items()}, "max_difference": diff}


def torch_matrix_order(T: int = 5, H: int = 3, dtype: str = "float64", seed: int = 0) -> dict:
    """The same on the contract's matrix RNN (a loss at every step): hooks on h_0..h_T, the
    order delivered and the largest difference from manual.rnn's dL/dh_t."""
    torch = _torch()
    from comparisons.check.cases import Case, make_problem
    from manual.rnn import loss_and_grads

    case = Case(seed=seed, T=T, B=1, D=2, H=H, O=2, h0="vector", dtype=dtype)
    params, xs, ys = make_problem(case)
    P = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    x = torch.tensor(xs)
    hs = [P["h0"].expand(1, H)]
    for t in range(T):
        hs.append(torch.tanh(x[t] @ P["W_xh"].T + hs[-1] @ P["W_hh"].T + P["b_h"]))
    z = torch.stack(hs[1:]) @ P["W_hy"].T + P["b_y"]
    L = 0.5 * ((z - torch.tensor(ys)) ** 2).sum(-1).mean(-1).mean()
    order, values = [], {}
    def hook(t):
        def record(grad):
            order.append(t)
            values[t] = grad.detach().numpy().copy()
        return record

    for t, h_t in enumerate(hs):
        h_t.register_hook(hook(t))
    L.backward()
    manual = loss_and_grads(params, xs, ys)
    diff = max(float(np.max(np.abs(values[t] - manual.dL_dh[t]))) for t in values)
    return {"T": T, "H": H, "dtype": dtype, "order": order, "max_difference": diff}


# --- the autograd graph ---------------------------------------------------------------------

def _same(a, b) -> bool:
    if a is None or not hasattr(a, "shape"):     # a Python number the node saved (the loss's 0.5)
        return False
    return a.shape == b.shape and bool((a.detach() == b.detach()).all())


def torch_graph(T: int = 3, w_r: float = 0.9, truncate=None, seed: int = 0) -> dict:
    """The autograd graph of seed 000 unrolled over T steps, walked from ``loss.grad_fn``.

    Returns {"nodes": [{"id", "type", "step", "label"}], "edges": [[from, to]]}: an edge
    a -> b means the backward pass goes from node a to node b (b receives a's output
    gradient). Each node's step and equation are read from what it saved: TanhBackward0's
    saved result is h[k+1]; a MulBackward0 that saved w_r and h[k] is the recurrent product."""
    x, w, h, L = _scalar_model(T, w_r, "float64", truncate, seed)
    nodes, edges, ids = [], [], {}

    def describe(fn):
        kind = type(fn).__name__
        if kind == "TanhBackward0":
            k = next(k for k in range(T) if _same(fn._saved_result, h[k + 1]))
            return k + 1, f"e[{k + 1}] = dL/dh[{k + 1}] (1 - h[{k + 1}]^2)"
        if kind == "MulBackward0":
            # a factor that needs no gradient is not saved (w_x x[k] keeps x[k] only; a
            # detached h[k] keeps no w_r): identify by what is there
            saved = [s for s in (fn._saved_self, fn._saved_other) if s is not None and hasattr(s, "shape")]
            if any(_same(s, w["w_y"]) for s in saved):
                return T, f"dL/dh[{T}] = (y - y*) w_y;  dL/dw_y = (y - y*) h[{T}]"
            for k in range(T):
                if any(_same(s, x[k]) for s in saved):
                    return k, f"dL/dw_x += e[{k + 1}] x[{k}]"
            for k in range(T):
                if any(_same(s, h[k]) for s in saved):
                    if not any(_same(s, w["w_r"]) for s in saved):   # h[k] detached: the cut
                        return k, f"dL/dw_r += e[{k + 1}] h[{k}] only (h[{k}] detached: no dL/dh[{k}])"
                    return k, f"dL/dh[{k}] = e[{k + 1}] w_r;  dL/dw_r += e[{k + 1}] h[{k}]"
            return T + 1, "L = 1/2 r^2, r = y - y*: dL/d(r^2) = 1/2"
        if kind == "PowBackward0":
            return T + 1, "dL/dr = 2 r * 1/2 = y - y*"
        if kind == "SubBackward0":
            return T + 1, "dL/dy = dL/dr"
        if kind == "AddBackward0":
            return None, "passes e[k+1] to both terms of w_r h[k] + w_x x[k]"
        if kind == "AccumulateGrad":
            leaf = fn.variable
            for name, v in w.items():
                if leaf is v:
                    return None, {"w_r": "dL/dw_r = sum_k e[k+1] h[k]", "w_x": "dL/dw_x = sum_k e[k+1] x[k]",
                                  "w_y": "dL/dw_y"}[name]
            return 0, "dL/dh[0]"
        return T + 1, "dL/dy (the loss)"

    def visit(fn):
        if fn in ids:
            return ids[fn]
        i = ids[fn] = len(nodes)
        step, label = describe(fn)
        nodes.append({"id": i, "type": type(fn).__name__, "step": step, "label": label})
        for nxt, _ in fn.next_functions:
            if nxt is not None:
                edges.append([i, visit(nxt)])
        return i

    visit(L.grad_fn)
    # an AddBackward0 sits between TanhBackward0 at k+1 and the products of step k
    for node in nodes:
        if node["type"] == "AddBackward0":
            steps = [nodes[b]["step"] for a, b in edges if a == node["id"] and nodes[b]["step"] is not None]
            node["step"] = min(steps) if steps else None
            if node["step"] is not None:
                node["label"] = f"passes e[{node['step'] + 1}] to w_r h[{node['step']}] and w_x x[{node['step']}]"
    return {"T": T, "truncate": truncate, "nodes": nodes, "edges": edges}


# --- the loop JAX runs ----------------------------------------------------------------------

def _manual_lines() -> dict:
    """The lines of manual/rnn.py's backward pass the JAX body is annotated with."""
    from manual import rnn

    lines, start = inspect.getsourcelines(rnn.backward)
    wanted = {"phi_prime": "e_t *= dL_dh_t", "recurrent": "np.dot(e_t, W_hh", "W_hh": '"W_hh": E.T @',
              "direct": "np.matmul(dL_dz.reshape"}
    out = {}
    for role, needle in wanted.items():
        for i, line in enumerate(lines):
            if needle in line:
                out[role] = f"manual/rnn.py:{start + i}: {line.strip()}"
                break
    return out


def _model(W_hh, W_xh, h0, xs, ys):
    import jax.numpy as jnp
    from jax import lax

    def step(h, x_t):
        h = jnp.tanh(x_t @ W_xh.T + h @ W_hh.T)
        return h, h

    _, hs = lax.scan(step, h0, xs)
    return 0.5 * jnp.sum((hs - ys) ** 2)


class JaxStructureChanged(RuntimeError):
    """JAX's grad of lax.scan no longer has the structure the teaching evidence reads."""


def _namer():
    """Names for a jaxpr's variables in order of appearance (a, b, ..., z, ba, ...): the
    printed ids of JAX's Var objects differ from run to run."""
    names = {}

    def name(var) -> str:
        if not hasattr(var, "aval"):                   # a literal
            return str(getattr(var, "val", var))
        if var not in names:
            i, text = len(names), ""
            while True:
                text = chr(ord("a") + i % 26) + text
                i = i // 26 - 1
                if i < 0:
                    break
            names[var] = text
        return names[var]

    def typed(var) -> str:
        return f"{name(var)}:{var.aval.str_short()}" if hasattr(var, "aval") else name(var)
    return name, typed


def jax_backward_loop(T: int = 4, B: int = 1, D: int = 2, H: int = 3, seed: int = 0) -> dict:
    """The backward scan of ``jax.grad`` of a ``lax.scan`` tanh RNN, found by structure and
    annotated: {"length", "reverse", "body": [{"eqn", "role", "meaning", "manual"}],
    "residuals": [{"shape", "what"}], "residual_bytes"}. Raises JaxStructureChanged (with
    the JAX version) if no reverse scan multiplies by W_hh: a JAX upgrade that changes how
    scan is transposed must fail loudly, not annotate the wrong lines."""
    import jax
    from jax.ad_checkpoint import print_saved_residuals

    rng = np.random.default_rng(seed)
    args = (rng.normal(size=(H, H)) * 0.5, rng.normal(size=(H, D)), np.zeros((B, H)),
            rng.normal(size=(T, B, D)), rng.normal(size=(T, B, H)))
    with jax.enable_x64(True):
        closed = jax.make_jaxpr(jax.grad(_model, argnums=0))(*args)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            print_saved_residuals(_model, *args)
    scans = [e for e in closed.jaxpr.eqns if e.primitive.name == "scan"]
    backward = [e for e in scans if e.params.get("reverse")]
    if not backward:
        raise JaxStructureChanged(f"jax {jax.__version__}: jax.grad of lax.scan has no reverse scan "
                                  f"(primitives: {[e.primitive.name for e in closed.jaxpr.eqns]}); "
                                  f"comparisons/evidence.py needs updating")
    scan = backward[0]
    body = scan.params["jaxpr"].jaxpr
    n_consts, n_carry = scan.params["num_consts"], scan.params["num_carry"]
    consts = set(body.invars[:n_consts])
    carries = set(body.invars[n_consts:n_consts + n_carry])
    xs_in = set(body.invars[n_consts + n_carry:])
    carry_out = set(body.outvars[:n_carry])
    lines = _manual_lines()
    name_of, _short = _namer()
    for v in body.invars:
        name_of(v)
    annotated, found_recurrent = [], False
    derived = {}                      # var -> the role that produced it
    for eqn in body.eqns:
        prim = eqn.primitive.name
        ins = [v for v in eqn.invars if hasattr(v, "aval")]
        role, meaning, manual = "", "", ""
        if prim == "dot_general" and any(v in consts and v.aval.shape == (H, H) for v in ins):
            role, found_recurrent = "recurrent", True
            meaning = "dL/dh_{t-1} += e_t W_hh: the product with W_hh^T (seed 000: dL/dh[k] = e[k+1] w_r)"
            manual = lines.get("recurrent", "")
        elif prim == "dot_general":
            role, meaning = "weight term", "e_t^T h_{t-1}: this step's term of dL/dW_hh"
            manual = lines.get("W_hh", "") + "  (manual sums every step's term in one product after the loop)"
        elif prim in ("add_any", "add") and any(v in carries for v in ins) and any(v in xs_in for v in ins):
            role, meaning = "dL/dh_t", "dL/dh_t = the loss's own part at t + what step t+1 carried back"
            manual = lines.get("direct", "")
        elif prim in ("add_any", "add") and any(o in carry_out for o in eqn.outvars) and any(v in carries for v in ins):
            role, meaning = "accumulate", "dL/dW_hh += this step's term (a carry of the loop)"
        elif prim == "mul" and any(v in xs_in for v in ins):
            role, meaning = "phi'", "times a residual of tanh's derivative: e_t = dL/dh_t phi'(a_t)"
            manual = lines.get("phi_prime", "")
        elif prim in ("mul", "add_any", "add", "sub") and any(derived.get(v) == "phi'" for v in ins):
            role, meaning = "phi'", "the rest of e_t = dL/dh_t (1 - h_t^2)"
            manual = lines.get("phi_prime", "")
        elif prim == "transpose":
            role, meaning = "layout", "a transpose (no arithmetic)"
        for o in eqn.outvars:
            derived[o] = role
        params = {k: v for k, v in eqn.params.items() if k in ("dimension_numbers", "permutation")}
        text = (f"{' '.join(_short(o) for o in eqn.outvars)} = {prim}"
                f"{'[' + ', '.join(f'{k}={v}' for k, v in params.items()) + ']' if params else ''} "
                f"{' '.join(name_of(v) for v in eqn.invars)}")
        annotated.append({"eqn": text, "role": role, "meaning": meaning, "manual": manual})
    if not found_recurrent:
        raise JaxStructureChanged(f"jax {jax.__version__}: the reverse scan's body has no dot_general with "
                                  f"W_hh (an H x H loop constant); comparisons/evidence.py needs updating")
    residuals = []
    for line in printed.getvalue().splitlines():
        shape, _, what = line.partition(" ")
        # "output of scan from /path/file.py:10:12 (L)": the path varies by machine
        residuals.append({"shape": shape, "what": re.sub(r" from \S+:\d+:\d+ \(.*\)$", "", what).strip()})
    per_step = [r for r in residuals if r["shape"].startswith(f"f64[{T},")]
    size = lambda s: int(np.prod([int(n) for n in re.findall(r"\d+", s.split("[", 1)[1])] or [1])) * 8
    return {"T": T, "B": B, "D": D, "H": H, "length": int(scan.params["length"]), "reverse": True,
            "consts": [_short(v) for v in body.invars[:n_consts]],
            "carries": [_short(v) for v in body.invars[n_consts:n_consts + n_carry]],
            "xs": [_short(v) for v in body.invars[n_consts + n_carry:]],
            "body": annotated, "residuals": residuals, "per_step_residuals": len(per_step),
            "residual_bytes": sum(size(r["shape"]) for r in per_step), "jax": jax.__version__}


def collect(seed: int = 0) -> dict:
    """Everything the report's section "Autodiff runs the same recurrence" shows
    ({"skipped": why} without torch and JAX: the evidence is theirs)."""
    from comparisons.check import backends

    _, skipped = backends.available(("torch", "jax"))
    if skipped:
        return {"skipped": "; ".join(f"{k}: {v}" for k, v in sorted(skipped.items()))}
    return {"torch_order": torch_order(6, 0.9, seed=seed),
            "torch_order_truncated": torch_order(6, 0.9, truncate=2, seed=seed),
            "torch_matrix_order": torch_matrix_order(5, 3, seed=seed),
            "graph": torch_graph(3, 0.9, seed=seed),
            "graph_truncated": torch_graph(3, 0.9, truncate=2, seed=seed),
            "jax_loop": jax_backward_loop(4, 1, 2, 3, seed=seed)}
