"""Shared test set-up: Hypothesis profiles, JAX's compilation cache, and small helpers."""

import atexit
import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# "ci": derandomized, so a CI run is reproducible; "dev": random, more examples.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=100,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# JAX's compiled references kept on disk for this run only, as the command keeps them between
# its runs (reference/jax_grad.py, BPTT_XVAL_JAX_CACHE): the tests' own processes (the CLI, the
# soak's workers) and check_cell, which frees its executables after each call, then load an
# executable compiled once instead of compiling it again. A fresh folder each run: a test
# never finds another run's compilations, and nothing is left in the user's ~/.cache. Set
# before reference.jax_grad is imported (it reads the variable once); tests of the cache
# itself set their own.
if "BPTT_XVAL_JAX_CACHE" not in os.environ:
    _jax_cache = tempfile.mkdtemp(prefix="bptt-xval-tests-jax-")
    os.environ["BPTT_XVAL_JAX_CACHE"] = _jax_cache
    atexit.register(shutil.rmtree, _jax_cache, ignore_errors=True)


def gpu_available() -> bool:
    """torch sees a CUDA device and JAX has a GPU backend: what the gpu-marked tests need."""
    try:
        import jax
        import torch
        return torch.cuda.is_available() and bool(jax.devices("gpu"))
    except (ImportError, RuntimeError):
        return False


def pytest_collection_modifyitems(config, items):
    if any("gpu" in item.keywords for item in items) and not gpu_available():
        skip = pytest.mark.skip(reason="no NVIDIA GPU with CUDA builds of torch and JAX (run them with nox -s gpu)")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def small_problem(T=5, B=2, D=3, H=4, O=2, dtype=np.float64, seed=0, h0=None, cross_entropy=False):
    """A plain random problem for the contract's model."""
    rng = np.random.default_rng(seed)
    params = {"W_xh": rng.normal(size=(H, D)), "W_hh": 0.5 * rng.normal(size=(H, H)),
              "b_h": 0.1 * rng.normal(size=H), "W_hy": rng.normal(size=(O, H)), "b_y": 0.1 * rng.normal(size=O)}
    if h0 == "vector":
        params["h0"] = rng.normal(size=H)
    elif h0 == "batch":
        params["h0"] = rng.normal(size=(B, H))
    params = {k: v.astype(dtype) for k, v in params.items()}
    xs = rng.normal(size=(T, B, D)).astype(dtype)
    ys = rng.integers(0, O, size=(T, B)) if cross_entropy else rng.normal(size=(T, B, O)).astype(dtype)
    return params, xs, ys


@pytest.fixture
def problem():
    return small_problem()


@pytest.fixture
def write(tmp_path):
    """write(name, text) -> the path of a file written under tmp_path (folders made): a
    student's file as handed in (tests/test_real_files.py, tests/test_gated_conventions.py)."""
    def put(name, text):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path
    return put


@pytest.fixture
def course(write):
    """``write``, with deeplearning.ai's course helpers (rnn_utils.py, public_tests.py) already
    in tmp_path/course, as the course hands them out beside its notebook."""
    import wild
    write("course/rnn_utils.py", wild.RNN_UTILS)
    write("course/public_tests.py", wild.PUBLIC_TESTS)
    return write
