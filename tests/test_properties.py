"""Hypothesis over the whole case space: manual BPTT agrees with autodiff everywhere."""

from hypothesis import given, settings
from hypothesis import strategies as st

from comparisons.check import backends
from comparisons.check.checker import check_case
from comparisons.check.strategies import cases

REFS = {"torch": backends.load("torch")}


@settings(max_examples=60)
@given(cases(max_T=200, max_H=24, truncate=st.one_of(st.none(), st.integers(1, 6))))
def test_manual_agrees_with_torch(case):
    outcome = check_case(backends.load("manual"), case, REFS)
    assert outcome.status in ("agree", "inconclusive"), (outcome.status, outcome.reason, outcome.worst())


@settings(max_examples=20)
@given(cases(max_T=40, max_H=8, dtype="float64"))
def test_jax_agrees_with_torch(case):
    outcome = check_case(backends.load("jax"), case, REFS)
    assert outcome.status in ("agree", "inconclusive"), outcome.worst()
