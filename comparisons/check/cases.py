"""Random problems for the contract's model: one ``Case`` fixes everything, a seed included.

A ``Case`` is a small frozen record (shapes, regime, h0 kind, dtype, configuration and
a seed); :func:`make_problem` turns it into ``(params, xs, ys)`` deterministically, so a
case is replayed, shrunk or written to a report by value. :func:`draw_cases` gives the
default mixture used by the checker and the report; ``comparisons.check.strategies`` gives the
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
INPUTS = ("dense", "one_hot")
DTYPES = ("float64", "float32")
SIZE_NAMES = ("T", "B", "D", "H", "O")


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
    inputs: str = "dense"

    def __post_init__(self):
        for name in ("T", "B", "D", "H", "O"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected a positive int; got {value!r}")
        choices = {"regime": tuple(REGIMES), "h0": H0_KINDS, "dtype": DTYPES, "hidden": HIDDEN,
                   "output": OUTPUT, "loss": LOSS, "reduction": REDUCTION, "inputs": INPUTS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: expected one of {allowed}; got {getattr(self, name)!r}")

    @property
    def id(self) -> str:
        trunc = "" if self.truncate is None else f"-k{self.truncate}"
        one_hot = "-onehot" if self.inputs == "one_hot" else ""
        return (f"s{self.seed}-T{self.T}B{self.B}D{self.D}H{self.H}O{self.O}-{self.regime}"
                f"-h0{self.h0}-{self.dtype}-{self.hidden}-{self.output}-{self.loss}-{self.reduction}"
                f"{trunc}{one_hot}")

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
    if case.inputs == "one_hot":   # a language model's x_t: row i of the D x D identity
        xs = np.eye(D)[rng.integers(0, D, size=(T, B))]
    else:
        xs = rng.normal(size=(T, B, D))
    return in_dtype(case, params, xs, draw_targets(rng, case))


def draw_targets(rng, case: Case):
    """y_t for the case's loss: class indices (cross-entropy), values in (0, 1) for a sigmoid
    output, else in (-1, 1)."""
    T, B, O = case.T, case.B, case.O
    if case.loss == "cross_entropy":
        return rng.integers(0, O, size=(T, B))
    if case.output == "sigmoid":
        return rng.uniform(0, 1, size=(T, B, O))
    return rng.uniform(-1, 1, size=(T, B, O))


def in_dtype(case: Case, params: dict, xs, ys):
    """(params, xs, ys) cast to the case's dtype (integer class targets unchanged)."""
    dtype = np.dtype(case.dtype)
    params = {k: v.astype(dtype) for k, v in params.items()}
    return params, xs.astype(dtype), ys if case.loss == "cross_entropy" else ys.astype(dtype)


def as_float64(case: Case, params: dict, xs, ys):
    """The same values in float64 (integer cross-entropy targets unchanged): the references' inputs."""
    ys64 = ys if case.loss == "cross_entropy" else ys.astype(np.float64)
    return {k: v.astype(np.float64) for k, v in params.items()}, xs.astype(np.float64), ys64


@dataclass(frozen=True)
class CaseSpace:
    """The part of the case space a derivation supports (see docs/api.md, "case space").

    sizes:  {name: (lo, hi)} inclusive bounds for any of T, B, D, H, O;
    h0:     the initial-state kinds to draw ("none", "vector", "batch");
    inputs: "dense" (real-valued x_t) or "one_hot" (each x_t a row of the D x D identity);
    params: the parameter names whose gradients the candidate returns (None: all of them);
    tie_D_O: D == O in every case (a language model: the vocabulary is read and predicted).
    """

    sizes: tuple = ()
    h0: tuple = H0_KINDS
    inputs: str = "dense"
    params: tuple | None = None
    tie_D_O: bool = False

    @classmethod
    def make(cls, sizes=None, h0=None, inputs=None, params=None, tie_D_O=False, *,
             loss="squared_error") -> "CaseSpace":
        """Validate the user's narrowing of the case space; each error names its argument."""
        bounds = {}
        if sizes is not None:
            if not isinstance(sizes, dict):
                raise TypeError(f"sizes: expected a dict such as {{'B': 1, 'T': (2, 60)}}; "
                                f"got {type(sizes).__name__}")
            for name, value in sizes.items():
                if name not in SIZE_NAMES:
                    raise ValueError(f"sizes: unknown size {name!r}; expected some of {SIZE_NAMES}")
                if _is_int(value):
                    lo = hi = value
                elif isinstance(value, (tuple, list)) and len(value) == 2:
                    lo, hi = value
                else:
                    lo = hi = None
                if not (_is_int(lo) and _is_int(hi) and 1 <= lo <= hi):
                    raise ValueError(f"sizes[{name!r}]: expected a positive int or an inclusive "
                                     f"(lo, hi) range with 1 <= lo <= hi; got {value!r}")
                bounds[name] = (int(lo), int(hi))
        if loss == "cross_entropy" and bounds.get("O", (2, 2))[1] < 2:
            raise ValueError(f"sizes['O']: cross-entropy needs at least two classes; got {sizes['O']!r}")
        if tie_D_O and "D" in bounds and "O" in bounds:
            lo, hi = max(bounds["D"][0], bounds["O"][0]), min(bounds["D"][1], bounds["O"][1])
            if lo > hi:
                raise ValueError(f"sizes: D and O are tied (D == O) but their ranges "
                                 f"{bounds['D']} and {bounds['O']} do not meet")
        kinds = H0_KINDS if h0 is None else (h0,) if isinstance(h0, str) else h0
        if not isinstance(kinds, (tuple, list)) or not kinds or any(k not in H0_KINDS for k in kinds):
            raise ValueError(f"h0: expected one of {H0_KINDS} or a tuple of them; got {h0!r}")
        inputs = "dense" if inputs is None else inputs
        if inputs not in INPUTS:
            raise ValueError(f"inputs: expected one of {INPUTS}; got {inputs!r}")
        if params is not None:
            from bptt_xval.model import PARAM_KEYS
            known = PARAM_KEYS + ("h0",)
            if isinstance(params, str) or not isinstance(params, (tuple, list, set, frozenset)):
                raise TypeError(f"params: expected a list of parameter names from {known}; got {params!r}")
            bad = [p for p in params if p not in known]
            if bad or not params:
                raise ValueError(f"params: expected a non-empty list of names from {known}; got {list(params)!r}")
            params = tuple(p for p in known if p in params)
        return cls(tuple(sorted(bounds.items())), tuple(dict.fromkeys(kinds)), inputs, params, bool(tie_D_O))

    def bounds(self, name: str, loss: str = "squared_error") -> tuple:
        """Inclusive (lo, hi) for a size; D and O share theirs when tied."""
        b = dict(self.sizes)
        lo, hi = b.get(name, (1, None))
        if self.tie_D_O and name in ("D", "O"):
            other = b.get("O" if name == "D" else "D", (1, None))
            lo, hi = max(lo, other[0]), min(x for x in (hi, other[1], 10**9) if x is not None)
        if loss == "cross_entropy" and (name == "O" or (self.tie_D_O and name == "D")):
            lo = max(lo, 2)
        return lo, hi

    def fit(self, case: Case) -> Case:
        """``case`` moved into this space: sizes clipped to their bounds, D == O when tied,
        an h0 kind outside the space replaced, the input kind set."""
        changes = {}
        for name in SIZE_NAMES:
            lo, hi = self.bounds(name, case.loss)
            value = getattr(case, name)
            changes[name] = min(max(value, lo), hi if hi is not None else value)
        if self.tie_D_O:
            changes["O"] = changes["D"]
        if case.h0 not in self.h0:
            changes["h0"] = self.h0[H0_KINDS.index(case.h0) % len(self.h0)]
        changes["inputs"] = self.inputs
        return case.replace(**changes)

    def contains(self, case: Case) -> bool:
        return self.fit(case) == case

    def checked(self, case: Case) -> tuple:
        """The gradients compared on ``case``: the space's params among the case's own."""
        from bptt_xval.model import PARAM_KEYS
        own = PARAM_KEYS + (("h0",) if case.h0 != "none" else ())
        return own if self.params is None else tuple(p for p in own if p in self.params)

    def not_checked(self) -> tuple:
        from bptt_xval.model import PARAM_KEYS
        return () if self.params is None else tuple(p for p in PARAM_KEYS + ("h0",) if p not in self.params)

    def to_dict(self) -> dict:
        return {"sizes": {k: list(v) for k, v in self.sizes}, "h0": list(self.h0), "inputs": self.inputs,
                "params": None if self.params is None else list(self.params), "tie_D_O": self.tie_D_O}


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def draw_in_dtypes(cases: int, seed: int, dtype: str, **kwargs) -> list:
    """``draw_cases`` in one dtype, or ``dtype="both"``: half float64 (seed), half float32
    (seed + 1), ``cases`` in all."""
    dtypes = ("float64", "float32") if dtype == "both" else (dtype,)
    drawn = []
    for i, d in enumerate(dtypes):
        drawn += draw_cases(cases if len(dtypes) == 1 else (cases + i) // 2, seed + i, dtype=d, **kwargs)
    return drawn


def draw_cases(n: int, seed: int = 0, *, hidden="tanh", output="identity", loss="squared_error",
               reduction="mean", truncate=None, dtype="float64", space: CaseSpace | None = None) -> list[Case]:
    """The default mixture: ``n`` cases over shapes, regimes and h0 kinds for one configuration.

    Most cases are small (cheap to check, easy to read); one in eight is long (T up to
    200) and one in eight is wide (H up to 48), so hard regimes meet long sequences.
    ``space`` narrows the mixture (:meth:`CaseSpace.fit` on every drawn case): the same
    random stream is drawn either way, so a narrowed check keeps the default's variety
    (a long case stays as long as the bounds allow).
    """
    rng = np.random.default_rng(seed)
    regimes = list(REGIMES)
    cases = []
    for i in range(n):
        kind = i % 8
        T = int(rng.integers(100, 201)) if kind == 7 else int(rng.choice([1, 2, 3, 5, 8, 13, 21, 34]))
        H = int(rng.integers(24, 49)) if kind == 6 else int(rng.integers(1, 9))
        case = Case(
            seed=int(rng.integers(0, 2**31 - 1)), T=T, B=int(rng.integers(1, 5)),
            # cross-entropy over one class is identically 0: draw at least two
            D=int(rng.integers(1, 6)), H=H, O=int(rng.integers(2 if loss == "cross_entropy" else 1, 4)),
            regime=regimes[i % len(regimes)], h0=H0_KINDS[int(rng.integers(0, 3))], dtype=dtype,
            hidden=hidden, output=output, loss=loss, reduction=reduction, truncate=truncate)
        cases.append(case if space is None else space.fit(case))
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
