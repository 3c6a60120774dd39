"""The report's studies: truncation against detach()/stop_gradient, lockstep training."""

import pytest

from comparisons.check import backends

from comparisons.report import studies


@pytest.fixture(scope="module")
def loaded():
    return backends.available()[0]


def test_truncation_distance_shrinks_with_k_and_matches_both_references(loaded):
    for reference in ("torch", "jax"):
        only = {"manual": loaded["manual"], reference: loaded[reference]}
        data = studies.truncation_study(0, only)
        assert data["references_agree"] and data["reference"] == reference
    for regime, distances in data["rel_distance"].items():
        assert distances[-1] < distances[0], regime   # longer windows are closer to full BPTT
        assert all(d > 0 for d in distances)


def test_lockstep_training_agrees_and_learns(loaded):
    data = studies.lockstep(0, loaded, steps=25)
    for model, run in data.items():
        assert run["agree"], (model, run["max_weight_deviation"])
        assert run["loss_drop"] < 0.9, model
        assert set(run["losses"]) >= {"manual", "torch", "jax"}
    assert "seed 000" in data["scalar"]["losses"]


def test_mlp_and_forward_mode_studies_agree():
    assert all(row["agree"] for row in studies.mlp_study(1))
    assert studies.forward_mode_study(1)["agree"]


def test_costs_time_every_method_at_every_T():
    data = studies.costs(Ts=(8, 64), repeats=1)
    assert set(data["seconds"]) == {"BPTT", "RTRL", "sum over products"}
    assert all(len(v) == 2 for v in data["seconds"].values())
