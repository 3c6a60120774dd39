"""Every backend against every other, over every configuration of the contract."""

import itertools

import numpy as np
import pytest

from bptt_xval.model import HIDDEN, OUTPUT, REDUCTION
from comparisons.check import backends
from comparisons.check.cases import Case, make_problem
from comparisons.check.checker import check_case, reference_results
from comparisons.check.compare import compare

CONFIGS = [dict(hidden=h, output=o, loss=l, reduction=r)
           for h, o, l, r in itertools.product(HIDDEN, OUTPUT, ("squared_error", "cross_entropy"), REDUCTION)
           if not (l == "cross_entropy" and o != "identity")]
H0 = ("none", "vector", "batch")


def _case(i, config, truncate, dtype="float64"):
    return Case(seed=1000 + i, T=7, B=2, D=3, H=4, O=3, regime=("contractive", "edge", "expansive",
                "saturated", "generic")[i % 5], h0=H0[i % 3], dtype=dtype, truncate=truncate, **config)


@pytest.mark.parametrize("truncate", [None, 3])
@pytest.mark.parametrize("i,config", list(enumerate(CONFIGS)), ids=lambda c: "-".join(map(str, c.values()))
                         if isinstance(c, dict) else str(c))
def test_float64_every_configuration(i, config, truncate):
    """manual, torch, jax (and numeric without truncation) agree to float64 rounding."""
    case = _case(i, config, truncate)
    params, xs, ys = make_problem(case)
    loaded, _ = backends.available()
    results = {n: fn(params, xs, ys, **case.config()) for n, fn in loaded.items()
               if not (n == "numeric" and truncate is not None)}
    m = results["manual"]
    for name, r in results.items():
        # an independent, plain check beside the suite's own tolerance machinery
        central = name == "numeric" and case.hidden == "relu"
        rtol, atol = (1e-6, 1e-9) if central else (1e-10, 1e-13)
        assert np.isclose(r.loss, m.loss, rtol=1e-12), name
        for k in m.grads:
            assert r.grads[k].dtype == np.float64 and r.grads[k].shape == params[k].shape
            np.testing.assert_allclose(r.grads[k], m.grads[k], rtol=rtol, atol=atol, err_msg=f"{name} {k}")
        if r.dL_dh is not None:
            np.testing.assert_allclose(r.dL_dh, m.dL_dh, rtol=1e-10, atol=1e-13, err_msg=f"{name} dL_dh")
    outcome = check_case(loaded["manual"], case, {n: loaded[n] for n in ("torch", "jax", "numeric")})
    assert outcome.status == "agree", outcome


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("loss,reduction,truncate", [("squared_error", "mean", None),
                                                     ("cross_entropy", "sum", 2)])
def test_float32_against_float64(hidden, loss, reduction, truncate):
    """float32 in, float32 out, within the float32 tolerance of the float64 reference."""
    case = Case(seed=7, T=20, B=3, D=4, H=8, O=3, regime="near_edge", h0="vector", dtype="float32",
                hidden=hidden, loss=loss, reduction=reduction, truncate=truncate)
    params, xs, ys = make_problem(case)
    loaded, _ = backends.available(("manual", "torch", "jax"))
    refs, magnitude = reference_results(case, {"jax": loaded["jax"]}, params, xs, ys)
    for name, fn in loaded.items():
        r = fn(params, xs, ys, **case.config())
        assert all(g.dtype == np.float32 for g in r.grads.values()) and r.dL_dh.dtype == np.float32
        c = compare(r, refs["jax"], "jax", case, magnitude)
        assert c.ok, (name, c.failing(), {k: e for k, e in c.errors.items() if not e.ok})


@pytest.mark.parametrize("dtype,size", [("float32", 1e-2), ("float64", 1e-9)])
def test_tolerance_is_not_vacuous(dtype, size):
    """An error of 1e-2 (float32) or 1e-9 (float64) of the gradient's size is rejected."""
    case = Case(seed=7, T=20, B=3, D=4, H=8, O=3, dtype=dtype)
    params, xs, ys = make_problem(case)
    refs, magnitude = reference_results(case, {"jax": backends.load("jax")}, params, xs, ys)
    r = backends.load("manual")(params, xs, ys, **case.config())
    assert compare(r, refs["jax"], "jax", case, magnitude).ok
    r.grads["W_hh"][0, 0] += size * np.abs(r.grads["W_hh"]).max()
    assert not compare(r, refs["jax"], "jax", case, magnitude).errors["W_hh"].ok


def test_inputs_never_modified(problem):
    params, xs, ys = problem
    frozen = {k: v.copy() for k, v in params.items()}
    for arr in list(params.values()) + [xs, ys]:
        arr.flags.writeable = False
    for name, fn in backends.available()[0].items():
        fn(params, xs, ys, hidden="sigmoid", truncate=2 if name != "numeric" else None)
        for k in params:
            np.testing.assert_array_equal(params[k], frozen[k])


def test_complex_step_survives_exploding_regime():
    """Soak regression: derivatives ~1e31 once pushed the complex step across log's branch cut."""
    case = Case(seed=1767478570, T=177, B=2, D=4, H=2, O=3, regime="expansive", hidden="identity",
                loss="cross_entropy")
    outcome = check_case(backends.load("manual"), case, backends.available(("torch", "numeric"))[0])
    assert outcome.status == "agree", outcome.worst()
    assert {c.reference for c in outcome.comparisons} == {"torch", "numeric"}


@pytest.mark.parametrize("setting", ["folder", "off", "unset"])
def test_jax_compilation_cache_follows_the_environment(tmp_path, setting):
    """BPTT_XVAL_JAX_CACHE=<folder> keeps compiled functions there; "off" or unset keeps none
    (the setting is the whole process's: the suite changes it only when asked)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    folder = tmp_path / "cache"
    env = {**os.environ, "BPTT_XVAL_JAX_CACHE": {"folder": str(folder), "off": "off", "unset": ""}[setting],
           "JAX_COMPILATION_CACHE_DIR": ""}
    code = ("from comparisons.check.cases import Case, make_problem; from reference import jax_grad; "
            "jax_grad.loss_and_grads(*make_problem(Case(seed=0, T=3, B=2, D=2, H=3, O=2))); "
            "print(jax_grad.CACHE_DIR)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(__file__)), timeout=300)
    assert out.returncode == 0, out.stderr
    if setting == "folder":
        assert out.stdout.strip() == str(folder) and any(folder.iterdir())
    else:
        assert out.stdout.strip() == "None" and not folder.exists()


@pytest.mark.parametrize("hidden", ["tanh", "sigmoid", "identity"])
@pytest.mark.parametrize("h0", ["vector", "batch"])
def test_complex_step_shared_product_is_the_batched_one(hidden, h0):
    """The complex step's rows share their real parts and differ by one imaginary entry each:
    numeric.forward multiplies them all with one shared matrix and scatters the perturbed
    entries (``numeric._shared``). It must give what each row's own recurrence, written out,
    gives, imaginary parts (the derivatives) included; a row perturbed twice is not shared."""
    from reference import numeric

    case = Case(seed=5, T=6, B=3, D=4, H=5, O=2, h0=h0, hidden=hidden)
    params, xs, _ = make_problem(case)
    flat = {k: v.astype(np.complex128) for k, v in params.items() if k not in ("W_hy", "b_y")}
    rng = np.random.default_rng(0)
    rows = []
    for k, v in flat.items():                     # one perturbed entry per row, any parameter
        for _ in range(3):
            p = {name: a.copy() for name, a in flat.items()}
            p[k].flat[rng.integers(v.size)] += 1j * numeric.COMPLEX_STEP
            rows.append(p)
    rows.append(flat)                             # the unperturbed row rides along
    batch = {k: np.stack([r[k] for r in rows]) for k in flat}
    N = len(rows)
    batch.update(W_hy=np.broadcast_to(params["W_hy"], (N,) + params["W_hy"].shape),
                 b_y=np.broadcast_to(params["b_y"], (N,) + params["b_y"].shape))
    assert all(numeric._shared(batch[k]) is not None for k in ("W_xh", "W_hh", "b_h"))
    hs, z, _ = numeric.forward(batch, xs, hidden=hidden, output="identity")
    for n, r in enumerate(rows):                  # each row's recurrence written out on its own
        h = np.zeros((case.B, case.H), complex) + r.get("h0", 0)
        for t in range(case.T):
            h = numeric._phi(hidden, xs[t] @ r["W_xh"].T + h @ r["W_hh"].T + r["b_h"])
            np.testing.assert_allclose(hs[t + 1, n].real, h.real, rtol=1e-14, atol=1e-15)
            np.testing.assert_allclose(hs[t + 1, n].imag, h.imag, rtol=1e-12, atol=1e-165)
        np.testing.assert_allclose(z[-1, n].imag, (h @ params["W_hy"].T).imag, rtol=1e-12, atol=1e-165)
    twice = {k: v.copy() for k, v in batch.items()}
    twice["W_hh"][0].flat[:2] += 1j * numeric.COMPLEX_STEP
    assert numeric._shared(twice["W_hh"]) is None
