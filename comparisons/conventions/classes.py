"""Cells written as classes: parameters and gradients held as attributes, one step per call.

    cell = GRUCell(in_dim, hidden_dim)              CMU 11-785's layout (HW3P1)
    h_t = cell.forward(x, h_prev_t)                 x (D,), h (H,): one sequence, one step
    dx, dh_prev_t = cell.backward(delta)            delta = dL/dh_t; adds into cell.dWrx, ...
        r = sigmoid(Wrx x + brx + Wrh h + brh),  z = sigmoid(Wzx x + bzx + Wzh h + bzh)
        n = tanh(Wnx x + bnx + r * (Wnh h + bnh)),  h_t = (1 - z) * n + z * h

    cell = LSTMCell(in_dim, hidden_dim)             the same layout for an LSTM
    h_t, c_t = cell.forward(x, h_prev, c_prev)      gates i, f, g (or c), o: Wix, Wih, bi (or bix, bih), ...
    dx, dh_prev, dc_prev = cell.backward(delta_h, delta_c)

Mapping to the suite's cells (PyTorch's layout): W_ih = [Wrx; Wzx; Wnx] (GRU; LSTM: [Wix; Wfx;
Wgx; Wox]), W_hh likewise of the W?h, b_ih and b_hh of the b?x and b?h (or bir ... bhn); an LSTM
with one bias per gate gives b. The names are read from the class's own code (``self.Wrx``).

A class holds the state of its last forward (``self.r``, ``self.x``), so BPTT needs one object
per time step, as 11-785's own sequence code keeps: the harness makes a fresh cell per step
and per sequence, sets its weights (read-only: they are the caller's) and zero gradients,
runs forward over T steps, then backward in reverse with ``delta = dL/dh_t``'s direct part
plus the carried ``dh_prev_t``, and sums every cell's gradient attributes. The batch is B
sequences, each its own cells. Vectors are handed as (D,) first; a class that only takes row
vectors (1, D) gets them, and keeps them.
"""

from __future__ import annotations

import inspect
import types

import numpy as np

from bptt_xval.model import Gradients
from comparisons.check.outputs import BadOutput
from comparisons.course_helpers import sigmoid
from comparisons.conventions._adapt import Writes, as_numpy, head, read_only, returned
from comparisons.conventions._gates import TORCH_GATES, GatedProblem, gated

#: per cell, per PyTorch gate: the names a class may give its input and hidden matrices and biases
GATE_NAMES = {
    "gru": {"r": ("r",), "z": ("z",), "n": ("n", "h")},
    "lstm": {"i": ("i",), "f": ("f",), "g": ("g", "c"), "o": ("o",)},
}


def attributes(cls) -> set:
    """The names the class's own methods use (``self.Wrx`` among them): read from their code
    objects, which a class loaded from a notebook or a file no longer on disk still has."""
    names, stack = set(), []
    for klass in getattr(cls, "__mro__", ())[:-1]:          # its bases too, but not object
        for member in vars(klass).values():
            member = getattr(member, "__func__", member)     # staticmethod, classmethod
            code = getattr(member, "__code__", None)
            if code is not None:
                stack.append(code)
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return names


def roles(cell: str, cls) -> dict | None:
    """{(suite role, gate): attribute name} read from the class's code, or None where it does
    not name every weight of the cell. Roles: W_ih and W_hh (``W{g}x``, ``W{g}h``); the GRU's
    b_ih and b_hh (``b{g}x`` or ``bi{g}``, ``b{g}h`` or ``bh{g}``); the LSTM's b (``b{g}``, or
    ``b{g}x`` beside a ``b{g}h`` the harness sets to zero: their sum is the one bias)."""
    names = attributes(cls)

    def first(*candidates):
        return next((n for n in candidates if n in names), None)

    found = {}
    for gate, letters in GATE_NAMES[cell].items():
        found[("W_ih", gate)] = first(*(f"W{g}x" for g in letters))
        found[("W_hh", gate)] = first(*(f"W{g}h" for g in letters))
        if cell == "gru":
            found[("b_ih", gate)] = first(*(n for g in letters for n in (f"b{g}x", f"bi{g}")))
            found[("b_hh", gate)] = first(*(n for g in letters for n in (f"b{g}h", f"bh{g}")))
        else:
            found[("b", gate)] = first(*(n for g in letters for n in (f"b{g}", f"b{g}x", f"bi{g}")))
            paired = first(*(n for g in letters for n in (f"b{g}h", f"bh{g}")))
            if paired is not None:
                found[("zero", gate)] = paired
    if any(v is None for v in found.values()):
        return None
    return found


def fits(cell: str, cls) -> bool:
    return isinstance(cls, type) and roles(cell, cls) is not None


def p_dtype(params):
    return params["W_hh"].dtype


def _new(cls, D: int, H: int):
    """A fresh cell: ``cls(D, H)`` as 11-785 makes one, else an instance without ``__init__``
    (the harness sets every attribute the check needs)."""
    try:
        return cls(D, H)
    except Exception:
        return cls.__new__(cls)


def _made(cls, D: int, H: int, values: dict):
    """A fresh cell of ``cls`` holding ``values`` read-only, each gradient ``d<name>`` zeroed."""
    obj = _new(cls, D, H)
    for name, v in values.items():
        setattr(obj, name, read_only(v))
        setattr(obj, "d" + name, np.zeros(v.shape))
    return obj


def _owner_class(forward, backward):
    owner = getattr(forward, "__self__", None)
    cls = owner if isinstance(owner, type) else type(owner) if owner is not None else None
    if cls is None or not callable(backward):
        raise TypeError("forward: expected a method of a cell class (Class.forward)")
    return cls


def class_cell(cell: str, forward, backward):
    """A cell class's bound ``forward`` and ``backward`` (module docstring), checked against
    the suite's ``cell`` ("gru" or "lstm")."""
    cls = _owner_class(forward, backward)
    found = roles(cell, cls)
    if found is None:
        raise TypeError(f"{cls.__name__}: its code does not name every weight of a {cell.upper()} cell in 11-785's "
                        f"layout (Wrx, Wzx, Wnx, Wrh, ... for a GRU)")
    gates = TORCH_GATES[cell]

    def weights(params, H, D):
        """attribute -> the suite's values in the class's layout."""
        out = {}
        for (role, gate), name in found.items():
            k = gates.index(gate)
            out[name] = (np.zeros(H, p_dtype(params)) if role == "zero" else params[role][k * H:(k + 1) * H])
        return out

    def gradients(sums, D, H):
        return {role: np.concatenate([sums[found[(role, g)]] for g in gates])
                for role in sorted({r for r, _ in found} - {"zero"})}

    layout = ", ".join(f"{role}[{g}] = {found[(role, g)]}" for role, g in found if role != "zero")
    lstm = cell == "lstm"
    note = f"names: {layout}; h0 = the first step's dh_prev" + ("; c0 = its dc_prev" if lstm else "")
    # rank 1 throughout, else row vectors (1, D) throughout, as the class's own code takes them
    return _cells(cell, cls, weights, gradients, note, modes=((1, 1), (2, 2)), retry=(ValueError, IndexError),
                  style=f"class-{cell}")


def _cells(cell, cls, weights, gradients, note, *, modes, retry, style, constant_input=False):
    """The harness of the module docstring around ``cls``: ``weights(params, H, D)`` gives
    {attribute: value} (each also zeroed as ``d<attribute>``), ``gradients(sums, D, H)`` the
    suite's gradients from the summed ``d<attribute>`` of every cell. ``modes``: the (forward,
    backward) ranks of the vectors handed over, tried in order on the errors in ``retry``; the
    first that works is kept. ``constant_input``: the cell is made for D + 1 inputs and each x_t
    has a 1 appended (a cell without biases carries the suite's as the weights on it)."""
    lstm = cell == "lstm"
    where_f, where_b = f"{cls.__name__}.forward", f"{cls.__name__}.backward"
    mode = {"index": 0}
    writes = Writes()

    def vector(a, rank):
        return a if rank == 1 else a[None, :]

    def run(p, ranks):
        H = p.H
        D = p.D + 1 if constant_input else p.D
        rank_f, rank_b = ranks
        values = weights(p.params, H, p.D)
        initial = np.zeros(H, p.dtype)
        sums = {name: np.zeros(v.shape) for name, v in values.items()}
        hs = np.zeros((p.T + 1, p.B, H), p.dtype)
        one = np.ones(1, p.dtype)
        cells = []
        for b in range(p.B):
            h, c = initial, initial
            row = []
            for t in range(p.T):
                obj = _made(cls, D, H, values)
                x = np.concatenate([p.xs[t, b], one]) if constant_input else p.xs[t, b]
                args = [vector(x, rank_f), vector(h, rank_f)] + ([vector(c, rank_f)] if lstm else [])
                out = getattr(obj, "forward")(*args)
                if lstm:
                    h, c = returned(where_f, out, 2, "(h_t, c_t)")
                    c = as_numpy(f"c_t ({where_f})", c, (H,), p.dtype)
                else:
                    h = out
                h = as_numpy(f"h_t ({where_f})", h, (H,), p.dtype)
                hs[t + 1, b] = h
                row.append(obj)
            cells.append(row)
        L, direct, top = head(p.params, hs, p.ys, p.config)
        dx = np.zeros((p.T, p.B, p.D))
        dh0 = np.zeros((p.B, H))
        dc0 = np.zeros((p.B, H))
        for b in range(p.B):
            dh, dc = np.zeros(H), np.zeros(H)
            for t in range(p.T - 1, -1, -1):
                obj = cells[b][t]
                upstream = [vector(direct[t, b] + dh, rank_b)] + ([vector(dc, rank_b)] if lstm else [])
                given = [writes.scratch("numpy", u) for u in upstream]
                out = getattr(obj, "backward")(*given)
                writes.check(where_b, ["delta_h", "delta_c"] if lstm else ["delta"], given, upstream)
                if lstm:
                    dx_t, dh, dc = returned(where_b, out, 3, "(dx, dh_prev, dc_prev)")
                    dc = as_numpy("dc_prev", dc, (H,), p.dtype)
                else:
                    dx_t, dh = returned(where_b, out, 2, "(dx, dh_prev_t)")
                dx[t, b] = as_numpy("dx", dx_t, (D,), p.dtype)[:p.D]
                dh = as_numpy("dh_prev_t", dh, (H,), p.dtype)
                for name in sums:
                    grad = getattr(obj, "d" + name, None)
                    if grad is None:
                        raise BadOutput(f"{where_b} left no gradient d{name} on the cell (expected it to add into "
                                        f"self.d{name})")
                    sums[name] += as_numpy(f"d{name}", grad, values[name].shape, p.dtype)
            dh0[b], dc0[b] = dh, dc
        grads = dict(top)
        grads.update({role: g.astype(p.dtype) for role, g in gradients(sums, p.D, H).items()})
        grads["h0"] = dh0.astype(p.dtype)
        if lstm:
            grads["c0"] = dc0.astype(p.dtype)
        return Gradients(L, {k: np.ascontiguousarray(v) for k, v in grads.items()}, None, dx.astype(p.dtype))

    def loss_and_grads(params, xs, ys, *, output="identity", loss="squared_error", reduction="mean",
                       truncate=None):
        p = GatedProblem(cell, params, xs, ys, output, loss, reduction, truncate, style)
        first = mode["index"]
        try:
            return run(p, modes[first])
        except retry as exc:
            if first != 0:
                raise
            # a class written for other ranks (row vectors (1, D)): try them, and keep the first that works
            for k in range(1, len(modes)):
                try:
                    result = run(p, modes[k])
                except Exception:
                    continue
                mode["index"] = k
                return result
            raise exc from None

    fn = gated(loss_and_grads, cell, f"{style.replace('-', '_')}({cls.__name__})")
    fn.names_note = note
    fn.writes = writes
    return fn


def class_gru(forward, backward):
    """11-785's ``GRUCell``: ``forward(x, h_prev_t)``, ``backward(delta)`` (module docstring)."""
    return class_cell("gru", forward, backward)


def class_lstm(forward, backward):
    """An ``LSTMCell`` in the same layout: ``forward(x, h_prev, c_prev)``, ``backward(delta_h, delta_c)``."""
    return class_cell("lstm", forward, backward)


# --- 11-785's GRU_Cell of 2019: no biases, the reset gate before the product, z's role reversed ---

#: the 2019 hand-out's attributes: z, r and the candidate's input and hidden matrices
GRU_2019 = ("Wzx", "Wrx", "Wx", "Wzh", "Wrh", "Wh")


def fits_2019(cls) -> bool:
    """A class naming the 2019 ``GRU_Cell``'s six weights, and not the later ``GRUCell``'s."""
    if not isinstance(cls, type):
        return False
    names = attributes(cls)
    return set(GRU_2019) <= names and not fits("gru", cls)


def computes_2019(cls) -> str | None:
    """What the class's forward computes on one random step, in float64: "handout" (the 2019
    write-up's h_t = (1 - z) h + z tanh(Wh (r * h) + Wx x)), "pytorch" (torch.nn.GRUCell without
    biases: h_t = (1 - z) n + z h, n = tanh(Wx x + r * (Wh h))), or None (neither, or it raised:
    the check then says what it does)."""
    rng = np.random.default_rng(2019)
    D, H = 4, 3
    w = {n: rng.standard_normal((H, D if n.endswith("x") else H)) * 0.5 for n in GRU_2019}
    x, h = rng.standard_normal(D), rng.standard_normal(H)
    try:
        obj = _made(cls, D, H, w)
        with np.errstate(all="ignore"):
            got = np.asarray(obj.forward(read_only(x), read_only(h)), dtype=float).reshape(-1)
    except Exception:
        return None
    z = sigmoid(w["Wzx"] @ x + w["Wzh"] @ h)
    r = sigmoid(w["Wrx"] @ x + w["Wrh"] @ h)
    handout = (1 - z) * h + z * np.tanh(w["Wh"] @ (r * h) + w["Wx"] @ x)
    pytorch = (1 - z) * np.tanh(w["Wx"] @ x + r * (w["Wh"] @ h)) + z * h
    for name, want in (("handout", handout), ("pytorch", pytorch)):
        if got.shape == want.shape and np.allclose(got, want, rtol=1e-9, atol=1e-12):
            return name
    return None


def class_gru_2019(forward, backward):
    """11-785's 2019 ``GRU_Cell``: ``forward(x, h)``, ``backward(delta) -> (dx, dh)``, the
    gradients added into ``self.dWzx``, ... (the hand-out's equations, no biases):

        z = sigmoid(Wzh h + Wzx x),  r = sigmoid(Wrh h + Wrx x)
        h~ = tanh(Wh (r * h) + Wx x),  h_t = (1 - z) * h + z * h~

    It is the suite's ``gru_d2l`` cell (d2l's GRU: h_t = z' h + (1 - z') h~) with z' = 1 - z,
    i.e. z's weights negated (sigmoid(-a) = 1 - sigmoid(a)), and without biases. The suite's
    biases are carried exactly as weights on a constant input: the cell is made for D + 1 inputs,
    each x_t has a 1 appended, and the last columns of Wzx, Wrx and Wx are -b_z, b_r and b_h~
    (their gradients those of the biases; dx's last entry is dropped). Every gradient of the
    cell is checked. The course handed x (D,) and h (H,) to forward and delta (1, H) to backward;
    a class written for another rank gets what it takes."""
    cls = _owner_class(forward, backward)
    if not set(GRU_2019) <= attributes(cls):
        raise TypeError(f"{cls.__name__}: its code does not name the 2019 GRU_Cell's weights {', '.join(GRU_2019)}")
    if computes_2019(cls) == "pytorch":
        raise TypeError(f"{cls.__name__}.forward computes torch.nn.GRUCell's equations without biases "
                        f"(n = tanh(Wx x + r * (Wh h)), h_t = (1 - z) n + z h), not the 2019 hand-out's "
                        f"(h~ = tanh(Wh (r * h) + Wx x), h_t = (1 - z) h + z h~): a GRU without biases is not one "
                        f"of the suite's cells yet; wrap it in a loss_and_grads (docs/conventions.md) to check it")

    def weights(params, H, D):
        W_ih, W_hh, b = params["W_ih"], params["W_hh"], params["b"]
        rows = {g: slice(k * H, (k + 1) * H) for k, g in enumerate(TORCH_GATES["gru_d2l"])}

        def with_bias(g):
            return np.concatenate([W_ih[rows[g]], b[rows[g]][:, None]], axis=1)

        return {"Wzx": -with_bias("z"), "Wrx": with_bias("r"), "Wx": with_bias("h~"),
                "Wzh": -W_hh[rows["z"]], "Wrh": W_hh[rows["r"]], "Wh": params["W_hc"]}

    def gradients(sums, D, H):
        z, r, c = -sums["Wzx"], sums["Wrx"], sums["Wx"]
        return {"W_ih": np.concatenate([z[:, :D], r[:, :D], c[:, :D]]), "b": np.concatenate([z[:, D], r[:, D], c[:, D]]),
                "W_hh": np.concatenate([-sums["Wzh"], sums["Wrh"]]), "W_hc": sums["Wh"]}

    note = ("names (d2l's GRU, z' = 1 - z): W_ih = [-Wzx; Wrx; Wx] and b = their last columns (the weights on the "
            "appended 1), W_hh = [-Wzh; Wrh], W_hc = Wh; h0 = the first step's dh")
    return _cells("gru_d2l", cls, weights, gradients, note, modes=((1, 2), (1, 1), (2, 2)),
                  retry=(ValueError, IndexError, BadOutput), style="class-gru-2019", constant_input=True)


# --- Karpathy's batched LSTM class: one stacked WLSTM, the bias its first row -----------------

#: the gates' order along WLSTM's columns (input, forget, output, then the candidate g)
KARPATHY_ORDER = ("i", "f", "o", "g")


def is_karpathy(forward, backward) -> bool:
    """``forward(X, WLSTM, ...)``: the second argument's name says it."""
    try:
        names = list(inspect.signature(forward).parameters)
    except (TypeError, ValueError):
        return False
    return len(names) >= 2 and names[1].upper() == "WLSTM" and callable(backward)


def karpathy_lstm(forward, backward):
    """``LSTM.forward(X, WLSTM, c0, h0) -> (Hout, c_T, h_T, cache)`` and ``LSTM.backward(dHout,
    cache) -> (dX, dWLSTM, dc0, dh0)``: X (T, B, D) time-major, WLSTM (1 + D + H, 4H) with the
    bias as row 0, then the input's rows, then the hidden state's; gates i, f, o, g. Mapping:
    WLSTM = [b; W_ih^T; W_hh^T] with PyTorch's gate blocks i, f, g, o put in that order."""
    from comparisons.conventions._adapt import arg_names, call, handed, name_of, require_callables
    from comparisons.conventions._gates import back, reorder

    require_callables(forward=forward, backward=backward)
    fwd, bwd = name_of(forward, "forward"), name_of(backward, "backward")
    owner = getattr(forward, "__qualname__", fwd).split(".")[0]
    fwd, bwd = (f"{owner}.{fwd}", f"{owner}.{bwd}") if owner != fwd else (fwd, bwd)
    inputs_text = f"an input ({', '.join(arg_names(forward, ('X', 'WLSTM', 'c0', 'h0')))})"
    upstream = arg_names(backward, ("dHout",))[0]

    def loss_and_grads(params, xs, ys, *, output="identity", loss="squared_error", reduction="mean",
                       truncate=None):
        p = GatedProblem("lstm", params, xs, ys, output, loss, reduction, truncate, "karpathy-lstm")
        WLSTM = np.vstack([reorder(params["b"], KARPATHY_ORDER, "lstm")[None],
                           reorder(params["W_ih"], KARPATHY_ORDER, "lstm").T,
                           reorder(params["W_hh"], KARPATHY_ORDER, "lstm").T])
        zeros = np.zeros((p.B, p.H), p.dtype)
        inputs = [p.xs, WLSTM, zeros, zeros]
        given = [handed("numpy", a) for a in inputs]
        out = call(fwd, inputs_text, forward, *given)
        Hout, _, _, cache = returned(fwd, out, 4, "(Hout, c_T, h_T, cache)")
        Hout = as_numpy(f"Hout ({fwd})", Hout, (p.T, p.B, p.H), p.dtype)
        L, direct, top = head(params, np.concatenate([zeros[None], Hout]), ys, p.config)
        dH = handed("numpy", direct)
        out = call(bwd, f"its upstream gradient {upstream}", backward, dH, cache)
        dX, dW, dc0, dh0 = returned(bwd, out, 4, "(dX, dWLSTM, dc0, dh0)")
        dW = as_numpy("dWLSTM", dW, WLSTM.shape, p.dtype)
        grads = {"b": back(dW[0], KARPATHY_ORDER, "lstm"), "W_ih": back(dW[1:p.D + 1].T, KARPATHY_ORDER, "lstm"),
                 "W_hh": back(dW[p.D + 1:].T, KARPATHY_ORDER, "lstm"), **top,
                 "h0": as_numpy("dh0", dh0, (p.B, p.H), p.dtype), "c0": as_numpy("dc0", dc0, (p.B, p.H), p.dtype)}
        return Gradients(L, {k: np.ascontiguousarray(v) for k, v in grads.items()}, None,
                         np.ascontiguousarray(as_numpy("dX", dX, (p.T, p.B, p.D), p.dtype)))

    fn = gated(loss_and_grads, "lstm", f"karpathy_lstm({fwd}, {bwd})")
    fn.names_note = ("names: b = dWLSTM[0], W_ih = dWLSTM[1:D+1]^T, W_hh = dWLSTM[D+1:]^T, each with the gate "
                     "blocks i, f, o, g put in PyTorch's order i, f, g, o; h0 = dh0, c0 = dc0; dL_dx = dX")
    return fn
