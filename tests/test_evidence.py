"""Autodiff runs the same recurrence (comparisons.report.evidence): the order torch delivers
dL/dh[k], its values, the graph, JAX's backward loop, and the teaching notebook."""

from pathlib import Path

import numpy as np
import pytest

from comparisons.report import evidence

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("T", [1, 2, 5, 17])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_delivers_dL_dh_backward_through_time(T, dtype):
    o = evidence.torch_order(T, 0.9, dtype=dtype)
    assert o["order"] == list(range(T, -1, -1))
    rtol = 1e-12 if dtype == "float64" else 1e-5
    for k in range(T + 1):
        assert o["values"][str(k)] == pytest.approx(o["seed"][str(k)], rel=rtol, abs=1e-300)
    for k, v in o["recursion"].items():          # each one the seed's e[k+1] w_r of the one before
        assert v == pytest.approx(o["values"][k], rel=rtol)
    assert len(o["recursion"]) == T


def test_truncation_is_a_cut():
    o = evidence.torch_order(8, 1.2, truncate=3)
    assert o["order"] == [8, 7]                  # h[6] feeds step 7 detached: nothing flows past it
    assert all(o["seed"][str(k)] == 0.0 for k in range(6))   # the seed's cut: dL/dh[k] = 0


def test_matrix_rnn_order_and_values():
    o = evidence.torch_matrix_order(T=6, H=4)
    assert o["order"] == list(range(6, -1, -1)) and o["max_difference"] < 1e-13


def test_graph_nodes_are_the_seed_equations():
    T = 4
    g = evidence.torch_graph(T)
    tanh = sorted(n["step"] for n in g["nodes"] if n["type"] == "TanhBackward0")
    assert tanh == list(range(1, T + 1))
    recurrent = sorted(n["step"] for n in g["nodes"] if n["label"].startswith("dL/dh[") and "w_r" in n["label"])
    assert recurrent == list(range(T))
    ids = {n["id"] for n in g["nodes"]}
    assert all(a in ids and b in ids for a, b in g["edges"])
    cut = evidence.torch_graph(T, truncate=2)
    assert min(n["step"] for n in cut["nodes"] if n["type"] == "TanhBackward0") == 3
    assert any("detached" in n["label"] for n in cut["nodes"])


def test_jax_backward_loop_is_a_reverse_scan_with_the_W_hh_product():
    loop = evidence.jax_backward_loop(T=5, H=3)
    assert loop["reverse"] and loop["length"] == 5
    roles = [b["role"] for b in loop["body"]]
    assert "recurrent" in roles and "accumulate" in roles and "phi'" in roles
    recurrent = next(b for b in loop["body"] if b["role"] == "recurrent")
    assert "np.dot(e_t, W_hh" in recurrent["manual"]
    assert loop["per_step_residuals"] >= 1 and all("/" not in r["what"] for r in loop["residuals"])


def test_a_jax_without_the_structure_fails_loudly(monkeypatch):
    def no_scan(W_hh, W_xh, h0, xs, ys):
        import jax.numpy as jnp
        return jnp.sum(jnp.tanh(xs @ W_xh.T) ** 2) + jnp.sum(W_hh)

    monkeypatch.setattr(evidence, "_model", no_scan)
    with pytest.raises(evidence.JaxStructureChanged, match="no reverse scan.*needs updating"):
        evidence.jax_backward_loop()


def test_the_notebook_runs_and_is_stored_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = ROOT / "docs" / "teaching.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")    # stripped in the repo
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "order: [6, 5, 4, 3, 2, 1, 0]" in printed and "missing_phi_prime_in_carry" in printed
