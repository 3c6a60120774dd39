"""LSTM and GRU: manual BPTT equals torch.nn.LSTM / nn.GRU and JAX."""

import numpy as np
import pytest

from bptt_xval.model import REDUCTION
from comparisons.report import studies
from comparisons.check.cases import make_gated_problem
from manual import gated
from reference import jax_grad, torch_autograd


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("reduction", REDUCTION)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1, 1), (13, 3, 4, 5, 2)])
def test_gated_equals_torch_nn_and_jax(cell, reduction, shape):
    params, xs, ys = make_gated_problem(cell, *shape, seed=sum(shape))
    m = gated.CELLS[cell](params, xs, ys, reduction=reduction)
    t = torch_autograd.gated_loss_and_grads(cell, params, xs, ys, reduction=reduction)
    j = jax_grad.gated_loss_and_grads(cell, params, xs, ys, reduction=reduction)
    assert m.loss == pytest.approx(t.loss, rel=1e-12) == j.loss
    for k in params:
        np.testing.assert_allclose(m.grads[k], t.grads[k], rtol=1e-9, atol=1e-13, err_msg=f"torch {k}")
        np.testing.assert_allclose(m.grads[k], j.grads[k], rtol=1e-9, atol=1e-13, err_msg=f"jax {k}")
    np.testing.assert_allclose(m.dL_dh, j.dL_dh, rtol=1e-9, atol=1e-13)


def test_gated_study_agrees_in_both_dtypes():
    rows = studies.gated_study(0)
    assert {(r["cell"], r["dtype"]) for r in rows} == {(c, d) for c in ("lstm", "gru") for d in ("float64", "float32")}
    assert all(r["agree"] for r in rows)


def test_gated_study_catches_a_small_error(monkeypatch):
    """The comparison is not vacuous: cells whose sigmoid is off by 1e-4 (relative) fail it."""
    real = gated.sigmoid
    calls = {"n": 0}

    def biased(a):  # perturb every sigmoid slightly: the derivative no longer matches
        calls["n"] += 1
        return real(a) * (1 + 1e-4)
    monkeypatch.setattr(gated, "sigmoid", biased)
    rows = studies.gated_study(0)
    assert calls["n"] > 0 and not any(r["agree"] for r in rows if r["dtype"] == "float64")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_validation(cell):
    params, xs, ys = make_gated_problem(cell, 3, 2, 2, 3, 1)
    with pytest.raises(KeyError, match="params"):
        gated.CELLS[cell]({k: v for k, v in params.items() if k != "W_hh"}, xs, ys)
    with pytest.raises(ValueError, match="W_ih"):
        gated.CELLS[cell]({**params, "W_ih": params["W_ih"][:-1]}, xs, ys)
    with pytest.raises(ValueError, match="reduction"):
        gated.CELLS[cell](params, xs, ys, reduction="median")
    with pytest.raises(TypeError, match="differs from xs"):
        gated.CELLS[cell](params, xs.astype(np.float32), ys)
