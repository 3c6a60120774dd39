"""Random problems for the contract's model: one ``Case`` fixes everything, a seed included.

A ``Case`` is a small frozen record (shapes, regime, h0 kind, dtype, configuration and
a seed); :func:`make_problem` turns it into ``(params, xs, ys)`` deterministically, so a
case is replayed, shrunk or written to a report by value. :func:`draw_cases` gives the
default mixture used by the checker and the report; ``comparisons.strategies`` gives the
same space as Hypothesis strategies.

Regimes set the spectral radius rho of W_hh exactly (W_hh = rho M / rho(M)):

- ``contractive`` rho = 0.5: dL/dh_t vanishes geometrically going back in time;
- ``near_edge``   rho = 0.9: vanishes slowly;
- ``edge``        rho = 1.0: the boundary;
- ``expansive``   rho = 1.5: the linearised recurrence explodes (tanh saturation bounds h);
- ``saturated``   rho = 0.9 with inputs scaled up so |a_t| >> 1 and phi' ~ 0;
- ``generic``     rho drawn from [0.3, 1.3].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from bptt_xval.model import HIDDEN, LOSS, OUTPUT, REDUCTION

REGIMES = {"contractive": 0.5, "near_edge": 0.9, "edge": 1.0, "expansive": 1.5, "saturated": 0.9,
           "generic": None}
H0_KINDS = ("none", "vector", "batch")
DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class Case:
    seed: int
    T: int
    B: int
    D: int
    H: int
    O: int
    regime: str = "generic"
    h0: str = "none"
    dtype: str = "float64"
    hidden: str = "tanh"
    output: str = "identity"
    loss: str = "squared_error"
    reduction: str = "mean"
    truncate: int | None = None

    def __post_init__(self):
        for name in ("T", "B", "D", "H", "O"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected a positive int; got {value!r}")
        choices = {"regime": tuple(REGIMES), "h0": H0_KINDS, "dtype": DTYPES, "hidden": HIDDEN,
                   "output": OUTPUT, "loss": LOSS, "reduction": REDUCTION}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: expected one of {allowed}; got {getattr(self, name)!r}")

    @property
    def id(self) -> str:
        trunc = "" if self.truncate is None else f"-k{self.truncate}"
        return (f"s{self.seed}-T{self.T}B{self.B}D{self.D}H{self.H}O{self.O}-{self.regime}"
                f"-h0{self.h0}-{self.dtype}-{self.hidden}-{self.output}-{self.loss}-{self.reduction}{trunc}")

    def shapes(self) -> dict:
        return {"T": self.T, "B": self.B, "D": self.D, "H": self.H, "O": self.O}

    def config(self) -> dict:
        """The keyword arguments of ``loss_and_grads`` for this case."""
        return {"hidden": self.hidden, "output": self.output, "loss": self.loss,
                "reduction": self.reduction, "truncate": self.truncate}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "Case":
        return dataclasses.replace(self, **changes)


def spectral_radius(W: np.ndarray) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(W))))


def make_problem(case: Case):
    """``(params, xs, ys)`` for ``case``, in ``case.dtype``; the same case gives the same arrays."""
    rng = np.random.default_rng(case.seed)
    T, B, D, H, O = case.T, case.B, case.D, case.H, case.O
    rho = REGIMES[case.regime]
    if rho is None:
        rho = float(rng.uniform(0.3, 1.3))
    M = rng.normal(size=(H, H))
    W_hh = rho * M / max(spectral_radius(M), 1e-12)
    input_scale = 4.0 if case.regime == "saturated" else 1.0
    params = {
        "W_xh": rng.normal(size=(H, D)) * input_scale / np.sqrt(D),
        "W_hh": W_hh,
        "b_h": rng.normal(size=H) * 0.1,
        "W_hy": rng.normal(size=(O, H)) / np.sqrt(H),
        "b_y": rng.normal(size=O) * 0.1,
    }
    if case.h0 == "vector":
        params["h0"] = rng.normal(size=H) * 0.5
    elif case.h0 == "batch":
        params["h0"] = rng.normal(size=(B, H)) * 0.5
    xs = rng.normal(size=(T, B, D))
    if case.loss == "cross_entropy":
        ys = rng.integers(0, O, size=(T, B))
    elif case.output == "sigmoid":
        ys = rng.uniform(0, 1, size=(T, B, O))
    else:
        ys = rng.uniform(-1, 1, size=(T, B, O))
    dtype = np.dtype(case.dtype)
    params = {k: v.astype(dtype) for k, v in params.items()}
    return params, xs.astype(dtype), ys if case.loss == "cross_entropy" else ys.astype(dtype)


def as_float64(case: Case, params: dict, xs, ys):
    """The same values in float64 (integer cross-entropy targets unchanged): the references' inputs."""
    ys64 = ys if case.loss == "cross_entropy" else ys.astype(np.float64)
    return {k: v.astype(np.float64) for k, v in params.items()}, xs.astype(np.float64), ys64


def draw_cases(n: int, seed: int = 0, *, hidden="tanh", output="identity", loss="squared_error",
               reduction="mean", truncate=None, dtype="float64") -> list[Case]:
    """The default mixture: ``n`` cases over shapes, regimes and h0 kinds for one configuration.

    Most cases are small (cheap to check, easy to read); one in eight is long (T up to
    200) and one in eight is wide (H up to 48), so hard regimes meet long sequences.
    """
    rng = np.random.default_rng(seed)
    regimes = list(REGIMES)
    cases = []
    for i in range(n):
        kind = i % 8
        T = int(rng.integers(100, 201)) if kind == 7 else int(rng.choice([1, 2, 3, 5, 8, 13, 21, 34]))
        H = int(rng.integers(24, 49)) if kind == 6 else int(rng.integers(1, 9))
        cases.append(Case(
            seed=int(rng.integers(0, 2**31 - 1)), T=T, B=int(rng.integers(1, 5)),
            # cross-entropy over one class is identically 0: draw at least two
            D=int(rng.integers(1, 6)), H=H, O=int(rng.integers(2 if loss == "cross_entropy" else 1, 4)),
            regime=regimes[i % len(regimes)], h0=H0_KINDS[int(rng.integers(0, 3))], dtype=dtype,
            hidden=hidden, output=output, loss=loss, reduction=reduction, truncate=truncate))
    return cases


def make_mlp_problem(widths, B, *, seed=0, dtype="float64", loss="squared_error"):
    """Random (params, X, Y) for seed 002's MLP with layer widths [n_0, n_1, ..., n_L]."""
    if len(widths) < 2 or not all(isinstance(n, (int, np.integer)) and n >= 1 for n in widths):
        raise ValueError(f"widths: expected at least two positive ints; got {widths!r}")
    rng = np.random.default_rng(seed)
    params = {}
    for l in range(1, len(widths)):
        params[f"W{l}"] = (rng.standard_normal((widths[l], widths[l - 1])) / np.sqrt(widths[l - 1])).astype(dtype)
        params[f"b{l}"] = (0.1 * rng.standard_normal(widths[l])).astype(dtype)
    X = rng.standard_normal((B, widths[0])).astype(dtype)
    Y = (rng.integers(0, widths[-1], B) if loss == "cross_entropy"
         else rng.standard_normal((B, widths[-1])).astype(dtype))
    return params, X, Y


def make_gated_problem(cell: str, T: int, B: int, D: int, H: int, O: int, *, seed=0, dtype="float64"):
    """Random (params, xs, ys) for ``manual.gated``'s LSTM ("lstm") or GRU ("gru")."""
    gates = {"lstm": 4, "gru": 3}[cell]
    rng = np.random.default_rng(seed)
    params = {"W_ih": rng.normal(size=(gates * H, D)) / np.sqrt(D),
              "W_hh": rng.normal(size=(gates * H, H)) / np.sqrt(H),
              "W_hy": rng.normal(size=(O, H)) / np.sqrt(H), "b_y": 0.1 * rng.normal(size=O)}
    biases = ("b",) if cell == "lstm" else ("b_ih", "b_hh")
    params.update({b: 0.1 * rng.normal(size=gates * H) for b in biases})
    xs, ys = rng.normal(size=(T, B, D)), rng.uniform(-1, 1, size=(T, B, O))
    return {k: v.astype(dtype) for k, v in params.items()}, xs.astype(dtype), ys.astype(dtype)
