"""The rest of the assignment: the non-recurrent layers a course file pairs with its
forward, each checked against PyTorch's autograd of that forward, so that nothing the course
grades is left unchecked (cs231n's ``rnn_layers.py``: the word embedding, the temporal
affine layer, the temporal softmax loss; its ``layers.py``: the affine layer).

    out, cache = affine_forward(x, w, b)                  x (N, d_1, ..., d_k), w (D, M), b (M,)
    dx, dw, db = affine_backward(dout, cache)
    out, cache = word_embedding_forward(x, W)             x (N, T) integers in [0, V), W (V, D)
    dW = word_embedding_backward(dout, cache)
    out, cache = temporal_affine_forward(x, w, b)         x (N, T, D), w (D, M), b (M,)
    dx, dw, db = temporal_affine_backward(dout, cache)
    loss, dx = temporal_softmax_loss(x, y, mask)          x (N, T, V), y (N, T), mask (N, T) booleans

The upstream gradient ``dout`` is random; the reference is the VJP of the layer's own forward
(the course's equation, in float64 torch) with that ``dout``. The student's forward output is
compared too: a backward that is right for another forward is not right.

Tolerances are deterministic bounds, so no rounding can exceed them (Higham, Accuracy and
Stability, Lemma 3.1 and section 3.5): an entry of a product A B is off by at most gamma_k
(|A| |B|) with k its inner dimension, in the student's and the reference's rounding alike, so
the two differ by at most 2 gamma_k (|A| |B|); a sum of k terms likewise; the softmax loss's
entries are products, quotients and one exp and log each, bounded with k = V + 8. The
tolerance is C = 4 times that bound, and a tiny floor for exact zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from comparisons.check.outputs import to_numpy

U = float(np.finfo(np.float64).eps) / 2
C = 4.0
FLOOR = 1e-300


def gamma(k: int) -> float:
    return k * U / (1 - k * U)


#: piece -> (the forward's conventional name, the backward's, their arities)
PIECES = {
    "affine": ("affine_forward", "affine_backward", (3, 2)),
    "word_embedding": ("word_embedding_forward", "word_embedding_backward", (2, 2)),
    "temporal_affine": ("temporal_affine_forward", "temporal_affine_backward", (3, 2)),
    "temporal_softmax_loss": ("temporal_softmax_loss", None, (3, None)),
}


@dataclass
class PieceFailure:
    seed: int
    shapes: str
    status: str            # "disagree", "raised", "bad_output"
    reason: str


@dataclass
class PieceResult:
    """One piece's verdict, in the shape the CLI prints a check's (``CheckResult``)."""

    piece: str
    names: tuple
    cases: int
    failures: list = field(default_factory=list)
    hints: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def common_failure(self):
        return None

    def summary(self) -> str:
        agreed = self.cases - len(self.failures)
        if self.ok:
            return f"AGREES: {agreed} of {self.cases} cases agree with torch (autograd of the layer's own forward)"
        word = {"disagree": "DISAGREES", "raised": "RAISES", "bad_output": "BAD OUTPUT"}[self.failures[0].status]
        lines = [f"{word}: {agreed} of {self.cases} cases agree with torch (autograd of the layer's own forward)"]
        for f in self.failures[:3]:
            lines.append(f"case seed={f.seed} {f.shapes}: {f.status}\n  {f.reason}")
        if len(self.failures) > 3:
            lines.append(f"... and {len(self.failures) - 3} more case(s) fail; every one is in --json")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "piece": self.piece, "cases_run": self.cases, "hints": self.hints,
                "notes": self.notes, "failures": [vars(f) for f in self.failures]}


def _draw(piece: str, rng):
    """(inputs, shapes text) of one case of ``piece``: small random sizes, distinct where they can be."""
    N, T, D, M, V = (int(rng.integers(1, 5)), int(rng.integers(1, 6)), int(rng.integers(1, 7)),
                     int(rng.integers(1, 6)), int(rng.integers(2, 8)))
    if piece == "affine":
        dims = tuple(int(rng.integers(1, 4)) for _ in range(int(rng.integers(1, 3))))
        D = int(np.prod(dims))
        x = rng.normal(size=(N, *dims))
        return [x, rng.normal(size=(D, M)), rng.normal(size=M)], f"x {x.shape}, w ({D}, {M})"
    if piece == "word_embedding":
        return [rng.integers(0, V, size=(N, T)), rng.normal(size=(V, D))], f"x ({N}, {T}) of V={V}, W ({V}, {D})"
    if piece == "temporal_affine":
        return [rng.normal(size=(N, T, D)), rng.normal(size=(D, M)), rng.normal(size=M)], \
            f"x ({N}, {T}, {D}), w ({D}, {M})"
    mask = rng.random(size=(N, T)) < 0.7
    return [rng.normal(size=(N, T, V)) * 2, rng.integers(0, V, size=(N, T)), mask], f"x ({N}, {T}, {V})"


def _reference(piece: str, inputs: list, dout):
    """(out, grads, bounds): the forward in float64 torch, the VJP with ``dout``, and each
    entry's rounding bound (module docstring)."""
    import torch

    t = [torch.tensor(a) for a in inputs]
    if piece == "affine":
        x, w, b = t
        N = x.shape[0]
        x2 = x.reshape(N, -1).requires_grad_()
        w.requires_grad_(), b.requires_grad_()
        out = x2 @ w + b
        out.backward(torch.tensor(dout))
        a = lambda v: np.abs(np.asarray(v))
        X2, W = inputs[0].reshape(N, -1), inputs[1]
        D = W.shape[0]
        bounds = {"out": 2 * gamma(D + 1) * (a(X2) @ a(W) + a(inputs[2])),
                  "dx": (2 * gamma(W.shape[1]) * (a(dout) @ a(W).T)).reshape(inputs[0].shape),
                  "dw": 2 * gamma(N) * (a(X2).T @ a(dout)), "db": 2 * gamma(N) * a(dout).sum(0)}
        return out.detach().numpy(), {"dx": x2.grad.numpy().reshape(inputs[0].shape), "dw": w.grad.numpy(),
                                      "db": b.grad.numpy()}, bounds
    if piece == "word_embedding":
        x, W = t
        W.requires_grad_()
        out = W[x]
        out.backward(torch.tensor(dout))
        counts = np.bincount(inputs[0].ravel(), minlength=W.shape[0]).max()
        a = np.abs(dout).reshape(-1, dout.shape[-1])
        summed = np.zeros(W.shape)
        np.add.at(summed, inputs[0].ravel(), a)
        return out.detach().numpy(), {"dW": W.grad.numpy()}, {"out": np.zeros(out.shape),
                                                               "dW": 2 * gamma(int(counts)) * summed}
    if piece == "temporal_affine":
        x, w, b = (v.requires_grad_() for v in t)
        out = x @ w + b
        out.backward(torch.tensor(dout))
        a = np.abs
        N, T, D = inputs[0].shape
        x2, d2 = a(inputs[0]).reshape(N * T, D), a(dout).reshape(N * T, -1)
        bounds = {"out": 2 * gamma(D + 1) * (x2 @ a(inputs[1]) + a(inputs[2])).reshape(out.shape),
                  "dx": 2 * gamma(inputs[1].shape[1]) * (a(dout) @ a(inputs[1]).T),
                  "dw": 2 * gamma(N * T) * (x2.T @ d2), "db": 2 * gamma(N * T) * d2.sum(0)}
        return out.detach().numpy(), {"dx": x.grad.numpy(), "dw": w.grad.numpy(), "db": b.grad.numpy()}, bounds
    x, y, mask = t
    x.requires_grad_()
    N, T, V = x.shape
    logp = torch.log_softmax(x, -1)
    picked = logp.gather(-1, y[..., None])[..., 0]
    loss = -(picked * mask).sum() / N
    loss.backward()
    p = torch.softmax(x, -1).detach().numpy()
    onehot = np.eye(V)[inputs[1]]
    k = V + 8
    terms = np.abs(picked.detach().numpy()) * inputs[2]
    bounds = {"loss": 2 * gamma(k + N * T) * (terms.sum() + np.abs(x.detach().numpy()).max() * inputs[2].sum()) / N,
              "dx": 2 * gamma(k) * (p + onehot) * inputs[2][..., None] / N}
    return loss.item(), {"dx": x.grad.numpy()}, bounds


def _compare(name: str, got, want, bound) -> str | None:
    got = to_numpy(got)
    if not isinstance(got, np.ndarray) and not np.isscalar(got):
        return f"{name}: expected an array; got {type(got).__name__}"
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        if got.size == want.size and tuple(d for d in got.shape if d != 1) == tuple(d for d in want.shape if d != 1):
            got = got.reshape(want.shape)
        else:
            return f"{name}: expected shape {want.shape}; got {got.shape}"
    if not np.all(np.isfinite(got)):
        return f"{name}: NaN or Inf where the reference is finite"
    tol = C * np.asarray(bound) + FLOOR
    err = np.abs(got - want)
    if np.any(err > tol):
        i = np.unravel_index(int(np.argmax(err / tol)), err.shape) if err.ndim else ()
        return (f"{name} differs from torch: max |error| {err.max():.3g} at {tuple(int(v) for v in i)} "
                f"(|reference| {np.abs(want).max():.3g}) > tolerance {tol[i] if np.ndim(tol) else tol:.3g} "
                f"(C = {C:g} times the deterministic bound 2 gamma_k of the products)")
    return None


def check_case(piece: str, forward, backward, seed: int) -> PieceFailure | None:
    """One random case of ``piece``; None where it agrees."""
    from comparisons.check.candidate import user_line

    rng = np.random.default_rng(seed)
    inputs, shapes = _draw(piece, rng)
    given = [np.array(a, copy=True) for a in inputs]
    for g in given:
        g.flags.writeable = False
    try:
        if piece == "temporal_softmax_loss":
            ref_loss, ref, bounds = _reference(piece, inputs, None)
            out = forward(*given)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                return PieceFailure(seed, shapes, "bad_output", f"{PIECES[piece][0]} returned {type(out).__name__}; "
                                    f"expected (loss, dx)")
            problems = [_compare("loss", np.float64(to_numpy(out[0])), ref_loss, bounds["loss"]),
                        _compare("dx", out[1], ref["dx"], bounds["dx"])]
        else:
            out = forward(*given)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                return PieceFailure(seed, shapes, "bad_output", f"{PIECES[piece][0]} returned {type(out).__name__}; "
                                    f"expected (out, cache)")
            value, cache = out
            dout = rng.normal(size=np.shape(to_numpy(value)))
            ref_out, ref, bounds = _reference(piece, inputs, dout)
            problems = [_compare(f"out ({PIECES[piece][0]})", value, ref_out, bounds["out"])]
            if problems[0] is None:
                d = np.array(dout, copy=True)
                d.flags.writeable = False
                grads = backward(d, cache)
                names = list(ref)
                grads = (grads,) if len(names) == 1 and not isinstance(grads, (tuple, list)) else grads
                if not isinstance(grads, (tuple, list)) or len(grads) != len(names):
                    return PieceFailure(seed, shapes, "bad_output", f"{PIECES[piece][1]} returned "
                                        f"{type(grads).__name__}; expected ({', '.join(names)})")
                problems += [_compare(n, g, ref[n], bounds[n]) for n, g in zip(names, grads)]
    except Exception as exc:                       # the student's own failure is a verdict
        return PieceFailure(seed, shapes, "raised", f"{type(exc).__name__}: {exc}{user_line(exc)}")
    problems = [p for p in problems if p]
    if not problems:
        return None
    status = "bad_output" if any("expected" in p for p in problems) else "disagree"
    return PieceFailure(seed, shapes, status, "; ".join(problems))


def detect(functions: dict) -> list:
    """(piece, names) for each piece whose functions ``functions`` holds (by name and arity)."""
    from comparisons.conventions import fits_arity

    found = []
    for piece, (fwd, bwd, (fa, ba)) in PIECES.items():
        f = functions.get(fwd)
        b = functions.get(bwd) if bwd else None
        if callable(f) and fits_arity(f, fa) and (bwd is None or (callable(b) and fits_arity(b, ba))):
            found.append((piece, (fwd,) + ((bwd,) if bwd else ())))
    return found


def check_piece(piece: str, forward, backward=None, *, cases: int = 100, seed: int = 0) -> PieceResult:
    """``cases`` random cases of ``piece``, each from its own seed drawn from ``seed``."""
    if piece not in PIECES:
        raise ValueError(f"piece: expected one of {list(PIECES)}; got {piece!r}")
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=cases)
    names = (PIECES[piece][0],) + ((PIECES[piece][1],) if PIECES[piece][1] else ())
    result = PieceResult(piece, names, cases)
    for s in seeds:
        failure = check_case(piece, forward, backward, int(s))
        if failure is not None:
            result.failures.append(failure)
    return result
