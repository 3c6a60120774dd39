"""Hypothesis strategies over the same case space as ``comparisons.cases``.

For property tests of your own derivation::

    from hypothesis import given
    from comparisons.strategies import cases
    from comparisons.checker import check_case
    from comparisons import backends

    @given(cases(hidden="tanh"))
    def test_mine(case):
        assert not check_case(my_loss_and_grads, case, {"torch": backends.load("torch")}).failed

Shrinking works on the case's fields, so Hypothesis reports the smallest failing shapes.
"""

from __future__ import annotations

from hypothesis import strategies as st

from bptt_xval.model import HIDDEN, LOSS, OUTPUT, REDUCTION
from comparisons.cases import DTYPES, H0_KINDS, REGIMES, Case


@st.composite
def configs(draw, hidden=None, output=None, loss=None, reduction=None, truncate=st.none()):
    """A valid configuration; each argument fixes that option (None: drawn)."""
    loss = loss or draw(st.sampled_from(LOSS))
    output = output or ("identity" if loss == "cross_entropy" else draw(st.sampled_from(OUTPUT)))
    return {"hidden": hidden or draw(st.sampled_from(HIDDEN)), "output": output, "loss": loss,
            "reduction": reduction or draw(st.sampled_from(REDUCTION)), "truncate": draw(truncate)}


def cases(*, max_T=200, max_H=32, dtype=None, **config) -> st.SearchStrategy:
    """Cases with T in 1..max_T (shrinking towards 1), H in 1..max_H, every regime and h0 kind."""
    return configs(**config).flatmap(lambda c: st.builds(
        Case,
        seed=st.integers(0, 2**31 - 1),
        T=st.integers(1, max_T), B=st.integers(1, 4), D=st.integers(1, 6), H=st.integers(1, max_H),
        O=st.integers(2 if c["loss"] == "cross_entropy" else 1, 4),
        regime=st.sampled_from(tuple(REGIMES)), h0=st.sampled_from(H0_KINDS),
        dtype=st.just(dtype) if dtype else st.sampled_from(DTYPES), **{k: st.just(v) for k, v in c.items()}))
