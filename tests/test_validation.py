"""Bad input fails at the boundary with a typed error naming the argument (issue 8)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bptt_xval.model import BackendUnavailable
from comparisons import check_derivation
from comparisons.check import backends
from conftest import small_problem
from manual import scalar_rnn

BACKENDS = sorted(backends.available()[0].items())
DOCUMENTED = (ValueError, TypeError, KeyError, BackendUnavailable)


def _call(fn, params, xs, ys, **kw):
    return fn(params, xs, ys, **kw)


@pytest.fixture(params=[name for name, _ in BACKENDS])
def backend(request):
    return backends.load(request.param)


def _bad_inputs():
    p, xs, ys = small_problem()
    T, B, D = xs.shape
    H, O = p["W_hh"].shape[0], p["W_hy"].shape[0]
    nan_xs = xs.copy()
    nan_xs[0, 0, 0] = np.nan
    inf_W = p["W_hh"].copy()
    inf_W[0, 0] = np.inf
    drop = {k: v for k, v in p.items() if k != "b_h"}
    return [
        ("NaN in xs", p, nan_xs, ys, {}, ValueError, "xs: contains NaN"),
        ("Inf in W_hh", p | {"W_hh": inf_W}, xs, ys, {}, ValueError, r"W_hh'\]: contains NaN or Inf"),
        ("xs 2-D", p, xs[0], ys, {}, ValueError, "xs: expected 3 dimensions"),
        ("T = 0", p, xs[:0], ys[:0], {}, ValueError, "T = 0"),
        ("W_hh not square", p | {"W_hh": np.zeros((H, H + 1))}, xs, ys, {}, ValueError, r"expected shape \(4, 4\)"),
        ("W_xh wrong D", p | {"W_xh": np.zeros((H, D + 1))}, xs, ys, {}, ValueError, r"W_xh'\]: expected shape \(4, 3\)"),
        ("b_y wrong", p | {"b_y": np.zeros(O + 1)}, xs, ys, {}, ValueError, r"b_y'\]: expected shape"),
        ("missing b_h", drop, xs, ys, {}, KeyError, "missing key"),
        ("unknown key", p | {"W_extra": np.zeros(1)}, xs, ys, {}, ValueError, "unknown key"),
        ("params not dict", list(p.values()), xs, ys, {}, TypeError, "params: expected a dict"),
        ("xs a list", p, xs.tolist(), ys, {}, TypeError, "xs: expected a numpy.ndarray"),
        ("int xs", p, xs.astype(np.int64), ys, {}, TypeError, "xs: expected dtype float32 or float64"),
        ("complex W", p | {"W_hh": p["W_hh"].astype(complex)}, xs, ys, {}, TypeError, "float32 or float64"),
        ("mixed dtypes", p | {"W_hh": p["W_hh"].astype(np.float32)}, xs, ys, {}, TypeError, "differs from xs"),
        ("ys wrong shape", p, xs, ys[:, :, :1], {}, ValueError, r"ys: expected shape \(5, 2, 2\)"),
        ("unknown hidden", p, xs, ys, {"hidden": "softplus"}, ValueError, "hidden: expected one of"),
        ("hidden not str", p, xs, ys, {"hidden": 3}, TypeError, "hidden: expected a string"),
        ("unknown reduction", p, xs, ys, {"reduction": "max"}, ValueError, "reduction"),
        ("truncate 0", p, xs, ys, {"truncate": 0}, ValueError, "truncate"),
        ("truncate float", p, xs, ys, {"truncate": 2.0}, TypeError, "truncate"),
        ("truncate bool", p, xs, ys, {"truncate": True}, TypeError, "truncate"),
        ("CE with sigmoid", p, xs, ys, {"loss": "cross_entropy", "output": "sigmoid"}, ValueError, "output"),
        ("CE float targets", p, xs, ys[..., 0], {"loss": "cross_entropy"}, TypeError, "integer class"),
        ("CE out of range", p, xs, np.full((T, B), O), {"loss": "cross_entropy"}, ValueError, r"\[0, 2\)"),
        ("h0 wrong shape", p | {"h0": np.zeros(H + 1)}, xs, ys, {}, ValueError, r"h0'\]: expected shape"),
        ("h0 a list", p | {"h0": [0.0] * H}, xs, ys, {}, TypeError, "h0"),
    ]


@pytest.mark.parametrize("label,params,xs,ys,kw,error,match", _bad_inputs(), ids=[c[0] for c in _bad_inputs()])
def test_every_backend_rejects(backend, label, params, xs, ys, kw, error, match):
    with pytest.raises(error, match=match):
        backend(params, xs, ys, **kw)


def test_read_only_float32_inputs_accepted(backend):
    params, xs, ys = small_problem(dtype=np.float32)
    for a in list(params.values()) + [xs, ys]:
        a.flags.writeable = False
    r = backend(params, xs, ys)
    assert all(g.dtype == np.float32 for g in r.grads.values())


# --- Hypothesis fuzz: malformed inputs of every kind; only documented exceptions escape ---

arrays = st.one_of(
    # default elements include NaN and +-Inf for the float dtypes
    hnp.arrays(st.sampled_from([np.float64, np.float32, np.int32, np.complex128, np.bool_]),
               hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)),
    st.none(), st.integers(), st.text(max_size=3), st.lists(st.floats(), max_size=3))


@st.composite
def malformed(draw):
    params, xs, ys = small_problem(h0=draw(st.sampled_from([None, "vector", "batch"])))
    params = dict(params)
    target = draw(st.sampled_from(["xs", "ys", "W_xh", "W_hh", "b_h", "W_hy", "b_y", "h0", "drop", "option"]))
    kw = {}
    if target == "xs":
        xs = draw(arrays)
    elif target == "ys":
        ys = draw(arrays)
    elif target == "drop":
        params.pop(draw(st.sampled_from(sorted(params))))
    elif target == "option":
        name = draw(st.sampled_from(["hidden", "output", "loss", "reduction", "truncate"]))
        kw[name] = draw(st.one_of(st.text(max_size=8), st.integers(-3, 3), st.none(), st.floats()))
    else:
        params[target] = draw(arrays)
    return params, xs, ys, kw


@given(malformed())
def test_fuzz_only_documented_errors(case):
    params, xs, ys, kw = case
    for name, fn in BACKENDS:
        try:
            r = fn(params, xs, ys, **kw)
        except DOCUMENTED:
            continue
        # accepted: then it must be a valid result of the input dtype
        assert np.isfinite(r.loss), name


def test_fuzz_scalar_rnn_rejects_with_documented_errors():
    for bad in [None, "x", np.zeros((2, 2)), np.array([np.nan]), [1.0]]:
        with pytest.raises((ValueError, TypeError)):
            scalar_rnn.seed000(0.5, 0.5, 1.0, bad, 0.0)


@pytest.mark.parametrize("kw,error,match", [
    (dict(cases=0), ValueError, "cases"), (dict(cases=2.5), ValueError, "cases"),
    (dict(seed=-1), ValueError, "seed"), (dict(dtype="float16"), ValueError, "dtype"),
    (dict(hidden="gelu"), ValueError, "hidden"), (dict(truncate=-2), ValueError, "truncate"),
    (dict(references=("mxnet",)), ValueError, "references"),
])
def test_check_derivation_validates(kw, error, match):
    with pytest.raises(error, match=match):
        check_derivation(backends.load("manual"), **kw)


def test_check_derivation_rejects_non_callable():
    with pytest.raises(TypeError, match="fn"):
        check_derivation("manual.rnn")
