"""Hypothesis strategies over the same case space as ``comparisons.check.cases``.

For property tests of your own derivation::

    from hypothesis import given
    from comparisons.check.strategies import cases
    from comparisons.check.checker import check_case
    from comparisons.check import backends

    @given(cases(hidden="tanh"))
    def test_mine(case):
        assert not check_case(my_loss_and_grads, case, {"torch": backends.load("torch")}).failed

The same narrowed spaces as ``check_derivation`` (docs/api.md): ``cases(sizes={"B": 1,
"T": (2, 60)}, h0="none", inputs="one_hot")``.

Shrinking works on the case's fields, so Hypothesis reports the smallest failing shapes.
"""

from __future__ import annotations

from hypothesis import strategies as st

from bptt_xval.model import HIDDEN, LOSS, OUTPUT, REDUCTION
from comparisons.check.cases import DTYPES, REGIMES, Case, CaseSpace


@st.composite
def configs(draw, hidden=None, output=None, loss=None, reduction=None, truncate=st.none()):
    """A valid configuration; each argument fixes that option (None: drawn)."""
    loss = loss or draw(st.sampled_from(LOSS))
    output = output or ("identity" if loss == "cross_entropy" else draw(st.sampled_from(OUTPUT)))
    return {"hidden": hidden or draw(st.sampled_from(HIDDEN)), "output": output, "loss": loss,
            "reduction": reduction or draw(st.sampled_from(REDUCTION)), "truncate": draw(truncate)}


def cases(*, max_T=200, max_H=32, dtype=None, sizes=None, h0=None, inputs=None, tie_D_O=False,
          **config) -> st.SearchStrategy:
    """Cases with T in 1..max_T (shrinking towards 1), H in 1..max_H, every regime and h0 kind,
    narrowed as ``check_derivation`` narrows them (``sizes``, ``h0``, ``inputs``, ``tie_D_O``)."""
    defaults = {"T": (1, max_T), "B": (1, 4), "D": (1, 6), "H": (1, max_H), "O": (1, 4)}

    def build(c):
        space = CaseSpace.make(sizes, h0, inputs, tie_D_O=tie_D_O, loss=c["loss"])

        def size(name):
            lo, hi = space.bounds(name, c["loss"])
            # the user's bounds win; the defaults keep unbounded sizes small enough to check
            return st.integers(lo, hi if hi is not None else max(defaults[name][1], lo))

        return st.builds(
            Case, seed=st.integers(0, 2**31 - 1),
            T=size("T"), B=size("B"), D=size("D"), H=size("H"), O=size("O"),
            regime=st.sampled_from(tuple(REGIMES)), h0=st.sampled_from(space.h0),
            dtype=st.just(dtype) if dtype else st.sampled_from(DTYPES), inputs=st.just(space.inputs),
            **{k: st.just(v) for k, v in c.items()}).map(space.fit)

    return configs(**config).flatmap(build)
