"""check_derivation: correct derivations pass, every catalogued mutant is caught and named,
and a misbehaving derivation is a reported failure, never a crash (issue 5)."""

import functools

import numpy as np
import pytest

from comparisons import assert_derivation, check_derivation
from comparisons.check import backends, checker
from comparisons.check.cases import Case, make_problem
from comparisons.check.checker import replay
from comparisons.check.diagnosis import COMPUTED, MISTAKES, mistaken_loss_and_grads
from manual import rnn, scalar_rnn
from reference import jax_grad, torch_autograd

# A configuration in which every mistake changes the gradients.
DERIVED = [m for m in MISTAKES if m not in COMPUTED]
MUTANT_CONFIG = {m: dict(hidden="tanh", output="sigmoid", reduction="mean") for m in DERIVED}
MUTANT_CONFIG["ignored_truncation"] |= {"truncate": 3}
MUTANT_CONFIG["dx_wrong_weight"] |= {"sizes": {"D": 3, "H": 3}}   # W_hh fits where W_xh belongs
MUTANT_CONFIG["wrong_reduction"] |= {"reduction": "sum"}
# names that are mathematically the same mistake in this configuration
EQUIVALENT = {"forgotten_1_over_T": {"wrong_reduction"}}


@pytest.mark.parametrize("config", [
    dict(), dict(hidden="relu", reduction="sum"), dict(hidden="sigmoid", output="tanh", reduction="last"),
    dict(loss="cross_entropy", hidden="identity"), dict(truncate=3), dict(dtype="float32"),
])
def test_correct_derivations_pass(config):
    result = check_derivation(rnn.loss_and_grads, cases=24, seed=5, **config)
    assert result.ok, result.summary()
    assert result.cases_run == 24 and not result.failures


def test_references_pass_as_candidates():
    """torch and jax, handed in as 'user derivations', agree with the other references."""
    for fn in (torch_autograd.loss_and_grads, jax_grad.loss_and_grads):
        assert check_derivation(fn, cases=12, seed=1).ok


def test_seed000_form_passes_on_its_own_model():
    # seed 000's model only: one sequence, loss at the last step, no biases
    def fn(params, xs, ys, **config):
        if xs.shape[1:] != (1, 1) or params["W_hh"].shape != (1, 1):
            return rnn.loss_and_grads(params, xs, ys, **config)  # outside the seed's model
        p = {**params, "b_h": np.zeros_like(params["b_h"]), "b_y": np.zeros_like(params["b_y"])}
        if np.any(params["b_h"]) or np.any(params["b_y"]):
            return rnn.loss_and_grads(params, xs, ys, **config)
        return scalar_rnn.loss_and_grads(p, xs, ys, **config)
    assert check_derivation(fn, reduction="last", cases=16).ok


@pytest.mark.parametrize("mistake", DERIVED)
def test_every_mutant_caught_and_diagnosed(mistake):
    fn = functools.partial(mistaken_loss_and_grads, mistake)
    # each failure's diagnosis is made on its own case; shrinking (tested below) would only add time
    result = check_derivation(fn, cases=10, seed=11, shrink_failures=False, **MUTANT_CONFIG[mistake])
    assert not result.ok
    for failure in result.failures:
        assert failure.status == "disagree"
        assert mistake in failure.diagnosis, failure.describe()
        allowed = {mistake} | EQUIVALENT.get(mistake, set())
        if failure.case.T == failure.case.B:  # then a missing 1/T and a missing 1/B coincide
            allowed |= {"forgotten_1_over_T", "forgotten_1_over_B", "wrong_reduction"}
        if failure.case.T == 1 and failure.case.h0 == "none" and case_tanh(failure):
            # phi' at "the previous step" is tanh'(a_0 = 0) = 1: the same as no phi' at all
            allowed |= {"phi_prime_at_wrong_point", "phi_prime_missing"}
        assert set(failure.diagnosis) <= allowed, failure.describe()


def case_tanh(failure) -> bool:
    return failure.case.hidden == "tanh"


def test_failure_locates_parameter_step_and_shrinks():
    fn = functools.partial(mistaken_loss_and_grads, "missing_phi_prime_in_carry")
    result = check_derivation(fn, cases=6, seed=2)
    f = result.failures[0]
    assert f.parameter in {"dL_dh", "W_hh", "W_xh", "b_h", "h0"}
    # the error appears first at t = T - 1: the carry into h_{T-1} is the first wrong step
    assert f.step == f.case.T - 1
    assert f.max_abs > f.tol and f.rel > 1e-6
    s = f.shrunk
    # one step suffices: the wrong carry already reaches dL/dh_0
    assert (s.T, s.B, s.D, s.O) == (1, 1, 1, 1) and s.H <= f.case.H and s.h0 == "none"
    text = f.describe()
    assert "first departs at t =" in text and "smallest failing case" in text and "missing_phi_prime" in text


def test_hand_written_mutant_scaled_gradient_is_caught():
    def doubled(params, xs, ys, **config):
        r = rnn.loss_and_grads(params, xs, ys, **config)
        return r._replace(grads={**r.grads, "W_hh": 2 * r.grads["W_hh"]})
    result = check_derivation(doubled, cases=8)
    assert not result.ok and all(f.parameter == "W_hh" for f in result.failures)
    assert all(f.diagnosis == [] for f in result.failures)


@pytest.mark.parametrize("broken,status,reason", [
    (lambda p, x, y, **c: 1 / 0, "raised", "ZeroDivisionError"),
    (lambda p, x, y, **c: None, "bad_output", "returned None"),
    (lambda p, x, y, **c: rnn.loss_and_grads(p, x, y, **c)._replace(grads={}), "bad_output", "missing"),
    (lambda p, x, y, **c: rnn.loss_and_grads({k: v.astype(np.float32) for k, v in p.items()},
                                             x.astype(np.float32), y.astype(np.float32), **c),
     "bad_output", "dtype"),
    (lambda p, x, y, **c: rnn.loss_and_grads(p, x, y, **c)._replace(loss=float("nan")), "non_finite", "loss"),
    (lambda p, x, y, **c: rnn.loss_and_grads(p, x, y, **c)._replace(dL_dh=np.zeros(3)), "bad_output", "dL_dh"),
])
def test_misbehaving_derivation_is_a_reported_failure(broken, status, reason):
    result = check_derivation(broken, cases=3, shrink_failures=False)
    assert not result.ok and len(result.failures) == 3
    assert all(f.status == status and reason in f.reason for f in result.failures)


def test_in_place_modification_is_reported():
    def modifies(params, xs, ys, **config):
        xs *= 2
        return rnn.loss_and_grads(params, xs, ys, **config)
    f = check_derivation(modifies, cases=2, shrink_failures=False).failures[0]
    assert f.status == "raised" and "read-only" in f.reason and "Traceback" in f.traceback


def test_reproducer_round_trip(tmp_path):
    fn = functools.partial(mistaken_loss_and_grads, "off_by_one_hidden_state")
    result = check_derivation(fn, cases=3, reproducer_dir=tmp_path)
    path = result.failures[0].reproducer
    assert path.endswith(".json") and (tmp_path / path.split("/")[-1]).exists()
    assert replay(path, fn).status == "disagree"
    assert replay(path, rnn.loss_and_grads).status == "agree"


def test_corrupt_reproducer_is_rejected(tmp_path):
    from comparisons.check.reproducer import ReproducerError, load, save
    path = save(Case(seed=1, T=3, B=1, D=1, H=2, O=1), tmp_path)
    path.write_text('{"format": "something-else"}')
    with pytest.raises(ReproducerError, match="not a"):
        load(path)
    with pytest.raises(ReproducerError, match="no such file"):
        load(tmp_path / "missing.json")


def test_assert_derivation_message_shows_the_failure():
    fn = functools.partial(mistaken_loss_and_grads, "transposed_recurrence")
    with pytest.raises(AssertionError, match=r"(?s)differs from.*first departs.*smallest failing.*transposed"):
        assert_derivation(fn, cases=4)
    assert assert_derivation(rnn.loss_and_grads, cases=4).ok


def test_missing_backend_is_skipped(monkeypatch):
    """A reference whose library is absent is reported as skipped, never a crash."""
    monkeypatch.setattr(torch_autograd, "torch", None)
    monkeypatch.setattr(torch_autograd, "_IMPORT_ERROR", ImportError("No module named 'torch'"), raising=False)
    result = check_derivation(rnn.loss_and_grads, cases=4)
    assert result.ok and "torch" in result.skipped_backends and "torch" not in result.references
    assert "No module named 'torch'" in result.summary()


def _verdict(outcome):
    """What a verdict is: the status, every failing target (by any reference: the slow path
    asks finite differences too), the first departing step by torch."""
    failing = sorted({t for c in outcome.comparisons for t in c.failing()})
    steps = [c.first_bad_step for c in outcome.comparisons if c.reference == "torch"]
    return outcome.status, failing, steps


@pytest.mark.parametrize("mistake", [None, "forgotten_1_over_B", "missing_phi_prime_in_carry"])
def test_fast_path_verdicts_equal_the_slow_paths(mistake):
    """Padded JAX buckets and finite differences only where cheap change no verdict: per
    case, the same status, the same failing targets, the same first departing step."""
    from comparisons.check.cases import draw_cases

    fn = backends.load("manual") if mistake is None else functools.partial(mistaken_loss_and_grads, mistake)
    refs, _ = backends.available(backends.REFERENCES)
    cases = draw_cases(8, seed=5, output="sigmoid") + draw_cases(4, seed=6, dtype="float32")
    assert any(not checker.numeric_is_cheap(c) and checker.numeric_applies(c) for c in cases)
    for case in cases:
        fast_outcome = checker.check_case(fn, case, refs)
        slow_outcome = checker.check_case(fn, case, refs, fast=False)
        assert _verdict(fast_outcome) == _verdict(slow_outcome), case.id
        if not checker.numeric_is_cheap(case) and checker.numeric_applies(case):
            assert "numeric" in slow_outcome.references and "numeric" not in fast_outcome.references
    failures = {f.case_id: (f.parameter, f.step, f.shrunk.id) for f in
                check_derivation(fn, cases=6, seed=7).failures}
    assert failures == {f.case_id: (f.parameter, f.step, f.shrunk.id) for f in
                        check_derivation(fn, cases=6, seed=7, fast=False).failures}
    assert bool(failures) == (mistake is not None)


def test_slow_path_compiles_jax_for_the_exact_shape():
    params, xs, ys = make_problem(Case(seed=1, T=5, B=3, D=2, H=3, O=2))
    padded, exact = jax_grad.loss_and_grads(params, xs, ys), jax_grad.loss_and_grads(params, xs, ys, pad=False)
    np.testing.assert_allclose(exact.dL_dh, padded.dL_dh, rtol=1e-13, atol=1e-16)
    with pytest.raises(TypeError, match="pad"):
        jax_grad.loss_and_grads(params, xs, ys, pad="no")
    with pytest.raises(TypeError, match="fast"):
        check_derivation(backends.load("manual"), cases=1, fast=None)


def test_float32_overflow_is_inconclusive_not_a_false_alarm():
    """Soak seed 777 flagged manual.rnn here: relu, expansive, T = 155 grows past float32's
    range (as torch's float32 forward does); the float64 references stay finite."""
    case = Case(seed=1447484037, T=155, B=2, D=1, H=6, O=3, regime="expansive", h0="none", dtype="float32",
                hidden="relu", output="tanh", loss="squared_error", reduction="last", truncate=4,
                inputs="one_hot")
    refs, _ = backends.available(("torch", "jax"))
    outcome = checker.check_case(rnn.loss_and_grads, case, refs)
    assert outcome.status == "inconclusive" and "float32 overflows" in outcome.reason
    assert checker.check_case(rnn.loss_and_grads, case.replace(dtype="float64"), refs).status == "agree"
