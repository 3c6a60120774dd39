"""The recurrent cells themselves, below both ways of checking them: a step each written
against the array-API namespace ``xp`` (the built-in Elman, LSTM, GRU, IndRNN and minimal
gated unit, with their hand derivations in ``manual/``), a case's arrays for a cell
(``make_cell_problem``), the contract's output layer and loss on its h_t (``cell_loss``, and
its torch form on a stack of cases), the rounding of dL/dz_t a Monte Carlo run adds, and the
rule that decides where central differences may judge (``finite_differences_hold``).

``comparisons.check.cells`` (``check_cell``: any cell, case by case) and
``comparisons.check.gated`` (the built-in LSTM and GRU stacked across cases) both import
from here; neither imports the other's internals, and this module neither of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bptt_xval.model import LOSS, OUTPUT
from comparisons.check.cases import REGIMES, Case, draw_targets, in_dtype, spectral_radius

STATE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz_0123456789")


def _theta(xp, name, z):
    if name == "identity":
        return z
    if name == "tanh":
        return xp.tanh(z)
    if name == "sigmoid":
        return 1 / (1 + xp.exp(-z))
    return xp.where(z > 0, z, xp.zeros_like(z))


def cell_loss(xp, hs, W_hy, b_y, target, *, output, loss, w, on_z=None):
    """The contract's output layer and loss on h_1..h_T (hs (T, B, H)), against ``xp``:
    z_t = h_t W_hy^T + b_y, squared error on theta(z_t) or cross-entropy of softmax(z_t)
    (``target`` one-hot then), batch mean, the reduction's step weights ``w`` (T,).
    ``on_z``: called on z, its result used instead (the Monte Carlo runs hook z's gradient)."""
    z = hs @ W_hy.T + b_y
    if on_z is not None:
        z = on_z(z)
    if loss == "squared_error":
        l = 0.5 * xp.sum((_theta(xp, output, z) - target) ** 2, axis=-1)
    else:
        shifted = z - xp.max(z, axis=-1, keepdims=True)
        log_p = shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
        l = -xp.sum(log_p * target, axis=-1)
    return xp.sum(w * xp.mean(l, axis=-1))


def _targets(ys, loss, O, dtype):
    return np.eye(O, dtype=dtype)[ys] if loss == "cross_entropy" else ys


# --- problems ---------------------------------------------------------------------------------

def _resolve(shape, D, H) -> tuple:
    out = []
    for dim in shape:
        if isinstance(dim, (int, np.integer)):
            out.append(int(dim))
            continue
        letters = str(dim).replace(" ", "")
        factor, _, letter = letters.rpartition("*") if "*" in letters else ("", "", letters)
        size = {"D": D, "H": H}.get(letter.strip())
        if size is None:
            raise ValueError(f"param_shapes: a dimension is an int, 'D', 'H' or 'k*H'; got {dim!r}")
        out.append(int(factor or 1) * size)
    return tuple(out)


def make_cell_problem(case: Case, param_shapes: dict, recurrent=()):
    """(params, xs, ys) for ``case`` and the cell's ``param_shapes`` (letters D and H),
    W_hy and b_y added; deterministic in the case's seed."""
    rng = np.random.default_rng(case.seed)
    T, B, D, H, O = case.T, case.B, case.D, case.H, case.O
    rho = REGIMES[case.regime]
    if rho is None:
        rho = float(rng.uniform(0.3, 1.3))
    scale_in = 4.0 if case.regime == "saturated" else 1.0
    params = {}
    for name, shape in param_shapes.items():
        dims = _resolve(shape, D, H)
        if name in recurrent:                # a vector u multiplying h_{t-1}: IndRNN's u in (0, rho]
            params[name] = rho * rng.uniform(0.5, 1.0, size=dims)
        elif len(dims) == 2 and dims[1] == H and dims[0] % H == 0:
            # H x H blocks (W_hh, or LSTM's four stacked): the regime's spectral radius each
            blocks = []
            for _ in range(dims[0] // H):
                M = rng.normal(size=(H, H))
                blocks.append(rho * M / max(spectral_radius(M), 1e-12))
            params[name] = np.concatenate(blocks, 0)
        elif len(dims) == 2:
            params[name] = rng.normal(size=dims) * scale_in / np.sqrt(dims[1])
        else:
            params[name] = rng.normal(size=dims) * 0.1
    params["W_hy"] = rng.normal(size=(O, H)) / np.sqrt(H)
    params["b_y"] = rng.normal(size=O) * 0.1
    if case.inputs == "one_hot":       # a language model's x_t (min-char-rnn): a row of the identity
        xs = np.eye(D)[rng.integers(0, D, size=(T, B))]
    else:
        xs = rng.normal(size=(T, B, D))
    return in_dtype(case, params, xs, draw_targets(rng, case))


# --- the output layer's rounding and the loss of a stack -----------------------------------

def rounding_terms(torch, z, target, output: str, loss: str):
    """The terms whose sum a derivation's dL/dz_t rounds, per entry, before the step and batch
    weights: (|o| + |y|) (|theta'| + 2) for squared error (theta' from a rounded o errs by 2u
    absolute; identity output: theta' = 1 exactly), p + y for softmax cross-entropy."""
    if loss == "squared_error":
        o = _theta(torch, output, z)
        slope = {"identity": torch.ones_like(o), "tanh": 1 - o ** 2, "sigmoid": o * (1 - o)}[output]
        return (o.abs() + target.abs()) * (slope.abs() + (0.0 if output == "identity" else 2.0))
    return torch.softmax(z, -1) + target


def stack_loss(torch, z, target, w, w_b, output, loss):
    if loss == "squared_error":
        l = 0.5 * ((_theta(torch, output, z) - target) ** 2).sum(-1)
    else:
        shifted = z - z.max(-1, keepdim=True).values
        log_p = shifted - torch.log(torch.exp(shifted).sum(-1, keepdim=True))
        l = -(log_p * target).sum(-1)
    return (l * w[:, :, None] * w_b[:, None, :]).sum((1, 2))           # (N,)


def stack_rounding(torch, rounding, target, w, w_b, output, loss):
    """``cells._output_rounding`` for a stack: dL/dz_t's rounding as a derivation makes it,
    w_t w_b (|o| + |y|) (|theta'| + 2) u delta, per case."""

    u, generator = rounding

    def on_z(z):
        with torch.no_grad():
            terms = rounding_terms(torch, z, target, output, loss) * (w[:, :, None, None] * w_b[:, None, :, None])
            noise = u * (torch.rand(z.shape, generator=generator, dtype=z.dtype) * 2 - 1) * terms
        if z.requires_grad:
            z.register_hook(lambda g: g + noise)
        return z
    return on_z


# --- when central differences may judge -------------------------------------------------------

def finite_differences_hold(results: dict, case: Case, magnitude: dict | None) -> bool:
    """Do the central differences agree with autodiff on this case, within their own
    (float64, central) tolerance? A step of 6e-6 that crosses a kink of the user's step
    (ReLU, a max, a where) is off by far more (soak seed 2140288438: IndRNN's W 1.4e-4
    relative, 144 times its tolerance), and no cell's kinks can be located from outside as
    Elman's ReLU pre-activations are (``checker.near_a_kink``). Decided from the references
    alone, so a wrong derivation cannot drop its own oracle: where finite differences
    disagree with torch (else JAX), autodiff judges the case without them."""
    from comparisons.check.compare import compare

    autodiff = results.get("torch") or results.get("jax")
    if "numeric" not in results or autodiff is None:
        return True
    check = compare(results["numeric"], autodiff, "numeric", case.replace(dtype="float64"), magnitude,
                    kind="central")
    return check.ok


# --- the cells ------------------------------------------------------------------------------------

def _gates(param_shapes) -> int:
    """How many H-blocks the widest parameter stacks (LSTM: 4): n counts them."""
    widest = 1
    for shape in param_shapes.values():
        first = str(shape[0]).replace(" ", "")
        if "*" in first and first.endswith("H"):
            widest = max(widest, int(first.split("*")[0]))
    return widest


@dataclass
class Cell:
    """A cell: its step, parameter shapes, state names, and (built-in ones) a hand derivation."""

    name: str
    step: object
    param_shapes: dict
    state: tuple = ("h",)
    derivation: object = None
    recurrent: tuple = ()
    outputs: tuple = OUTPUT
    losses: tuple = LOSS
    notes: dict = field(default_factory=dict)


# --- the built-in cells: a step each, against xp, and the hand derivation in manual/ ----------

def elman_step(xp, p, x_t, state):
    """The contract's model: h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)."""
    (h,) = state
    return (xp.tanh(x_t @ p["W_xh"].T + h @ p["W_hh"].T + p["b_h"]),)


def _sigmoid(xp, v):
    return 1 / (1 + xp.exp(-v))


def _affine(xp, v, W, b=None):
    """v W^T (+ b), for one problem (v (B, n), W (m, n), b (m,)) or a stack of them (a case
    axis first: v (N, B, n), W (N, m, n), b (N, m)): ``comparisons.check.gated`` runs the
    same step over many cases at once."""
    out = v @ xp.matrix_transpose(W)
    return out if b is None else out + b[..., None, :]


def _gate(xp, v):
    """sigmoid(v) = (1 + tanh(v / 2)) / 2, the gated cells' gates: the same function as
    1 / (1 + exp(-v)) in four operations instead of five, and differentiated from its own
    output (tanh's backward is 1 - t^2), as a derivation's i (1 - i) is; the stacked Monte
    Carlo runs spend their time per operation (comparisons.check.gated)."""
    return 0.5 * xp.tanh(0.5 * v) + 0.5


def lstm_step(xp, p, x_t, state):
    """PyTorch's LSTM (gates i, f, g, o stacked in W_ih (4H, D), W_hh (4H, H), one bias b)."""
    h, c = state
    H = h.shape[-1]
    a = _affine(xp, x_t, p["W_ih"], p["b"]) + _affine(xp, h, p["W_hh"])
    i, f = _gate(xp, a[..., :H]), _gate(xp, a[..., H:2 * H])
    g, o = xp.tanh(a[..., 2 * H:3 * H]), _gate(xp, a[..., 3 * H:])
    c = f * c + i * g
    return o * xp.tanh(c), c


def gru_step(xp, p, x_t, state):
    """PyTorch's GRU (gates r, z, n stacked; b_ih and b_hh apart, r applied to W_hn h + b_hn)."""
    (h,) = state
    H = h.shape[-1]
    gi = _affine(xp, x_t, p["W_ih"], p["b_ih"])
    gh = _affine(xp, h, p["W_hh"], p["b_hh"])
    r = _gate(xp, gi[..., :H] + gh[..., :H])
    z = _gate(xp, gi[..., H:2 * H] + gh[..., H:2 * H])
    n = xp.tanh(gi[..., 2 * H:] + r * gh[..., 2 * H:])
    return ((1 - z) * n + z * h,)


def gru_d2l_step(xp, p, x_t, state):
    """d2l's GRU (gates z, r, h~ stacked in W_ih, one bias b; W_hh (2H, H) for z and r; the
    reset gate applied before the candidate's product, W_hc (r * h); h = z h + (1 - z) h~)."""
    (h,) = state
    H = h.shape[-1]
    gi = _affine(xp, x_t, p["W_ih"], p["b"])
    gh = _affine(xp, h, p["W_hh"])
    z = _gate(xp, gi[..., :H] + gh[..., :H])
    r = _gate(xp, gi[..., H:2 * H] + gh[..., H:])
    c = xp.tanh(gi[..., 2 * H:] + _affine(xp, r * h, p["W_hc"]))
    return (z * h + (1 - z) * c,)


def indrnn_step(xp, p, x_t, state):
    """IndRNN: h_t = relu(W x_t + u * h_{t-1} + b), each unit recurring on itself."""
    (h,) = state
    a = x_t @ p["W"].T + p["u"] * h + p["b"]
    return (xp.where(a > 0, a, xp.zeros_like(a)),)


def mgu_step(xp, p, x_t, state):
    """The minimal gated unit: one gate f scales both the carry and the candidate's input."""
    (h,) = state
    f = _sigmoid(xp, x_t @ p["W_f"].T + h @ p["U_f"].T + p["b_f"])
    s = xp.tanh(x_t @ p["W_h"].T + (f * h) @ p["U_h"].T + p["b_h"])
    return ((1 - f) * h + f * s,)


def _gated(cell):
    def loss_and_grads(params, xs, ys, *, output="identity", loss="squared_error", reduction="mean",
                       truncate=None):
        from manual.gated import CELLS as GATED

        if output != "identity" or loss != "squared_error" or truncate is not None:
            raise ValueError(f"manual.gated.{cell}: identity output, squared error and full BPTT only")
        return GATED[cell](params, xs, ys, reduction=reduction)
    loss_and_grads.__name__ = f"{cell}_loss_and_grads"
    return loss_and_grads


#: the gated built-in cells' (parameter shapes, state names), importable without their
#: derivations (a grading sandbox's child reads them to make a case's arrays)
GATED_LAYOUTS = {
    "lstm": ({"W_ih": ("4*H", "D"), "W_hh": ("4*H", "H"), "b": ("4*H",)}, ("h", "c")),
    "gru": ({"W_ih": ("3*H", "D"), "W_hh": ("3*H", "H"), "b_ih": ("3*H",), "b_hh": ("3*H",)}, ("h",)),
    "gru_d2l": ({"W_ih": ("3*H", "D"), "W_hh": ("2*H", "H"), "W_hc": ("H", "H"), "b": ("3*H",)}, ("h",)),
}


def _builtin():
    from manual import indrnn, mgu, rnn

    return {
        "elman": Cell("elman", elman_step, {"W_xh": ("H", "D"), "W_hh": ("H", "H"), "b_h": ("H",)},
                      derivation=rnn.loss_and_grads),
        **{name: Cell(name, step, *GATED_LAYOUTS[name], derivation=_gated(name), outputs=("identity",),
                      losses=("squared_error",))
           for name, step in (("lstm", lstm_step), ("gru", gru_step), ("gru_d2l", gru_d2l_step))},
        "indrnn": Cell("indrnn", indrnn_step, {"W": ("H", "D"), "u": ("H",), "b": ("H",)},
                       derivation=indrnn.loss_and_grads, recurrent=("u",)),
        "mgu": Cell("mgu", mgu_step, {"W_f": ("H", "D"), "U_f": ("H", "H"), "b_f": ("H",),
                                      "W_h": ("H", "D"), "U_h": ("H", "H"), "b_h": ("H",)},
                    derivation=mgu.loss_and_grads),
    }


def builtin_cells() -> dict:
    """The built-in cells by name: each a step and its hand derivation in manual/."""
    return _builtin()
