"""The benchmark's arithmetic and its output (never its timings: tests assert correctness)."""

import json

import pytest

from comparisons.measure import bench


def test_paired_ratio_is_the_median_of_per_round_ratios():
    times = {"manual": [1.0, 2.0, 9.0], "a": [2.0, 2.0, 2.0], "b": [4.0, 1.0, 3.0]}
    # rounds: 1/min(2,4), 2/min(2,1), 9/min(2,3) = 0.5, 2, 4.5
    assert bench.paired_ratio(times, "manual", ["a", "b"]) == 2.0
    assert bench.paired_ratio(times, "manual", ["missing"]) is None


def test_flop_limit_uses_each_rounds_best_sgemm():
    n = 10
    times = {"sgemm numpy": [2e-6, 1e-6], "sgemm torch": [1e-6, 4e-6]}
    assert bench.flop_limit_times(times, 2 * n ** 3, n=n) == pytest.approx([1e-6, 1e-6])


def test_scaling_exponent():
    assert bench.scaling_exponent([10, 100, 1000], [1, 10, 100]) == pytest.approx(1.0)
    assert bench.scaling_exponent([10, 100], [1, 100]) == pytest.approx(2.0)


def test_bptt_flops_counts_every_product():
    # forward x W_xh, h W_hh, h W_hy; backward W_hy^T dz, W_hh^T e, and dW_xh, dW_hh, dW_hy
    T, B, D, H, O = 2, 3, 4, 5, 6
    assert bench.bptt_flops(T, B, D, H, O) == 2 * T * B * (2 * H * D + 3 * H * H + 3 * H * O)


def test_a_small_run_writes_results_and_a_table(tmp_path):
    results = bench.run(repeats=1, out_dir=tmp_path, progress=lambda m: None,
                        headline=[("tiny", 5, 2, 3, 4, 2), ("scalar", 6, 1, 1, 1, 1)],
                        sweep_T=[4, 8], sweep_H=[2, 4], checker_cases=2, fresh_processes=0,
                        gated_repeats=1, cold_cases=2, gated_cells=("lstm",), sweep_rounds=3)
    saved = json.loads((tmp_path / "latest.json").read_text())
    assert saved["headline"][0]["label"] == "tiny" and (tmp_path / "scaling.png").stat().st_size > 0
    row = saved["headline"][0]
    assert {"manual", "FLOP limit"} <= set(row["seconds"]) and row["ratios"]["manual / FLOP limit"] > 0
    assert results["checker"]["identical_verdicts"] is True
    text = bench.table(results)
    assert "tiny" in text and "scalar" in text and "cost ~ T^p" in text
