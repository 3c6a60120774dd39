"""The soak on Dask: the same seed gives the same verdicts whatever the number of workers,
an interrupted soak resumes from what it wrote, and the command line follows the contract."""

import json

import pytest

pytest.importorskip("dask.distributed")

from comparisons.cli import main  # noqa: E402
from comparisons.measure.soak import soak  # noqa: E402

KEYS = ("cases", "false_alarms", "inconclusive_by_reason", "max_error_over_tolerance", "histogram")


def test_same_seed_same_verdicts_with_one_or_two_workers(tmp_path):
    one = soak(24, 7, workers=1, references=("torch",), progress=lambda line: None)
    two = soak(24, 7, workers=2, references=("torch",), progress=lambda line: None)
    assert {k: one[k] for k in KEYS} == {k: two[k] for k in KEYS}
    assert one["cases"] == 24 and one["false_alarms"] == 0
    # per target, the largest error / tolerance and the case behind it: the same whoever ran it,
    # and the overall largest is one of them
    assert one["max_by_target"] == two["max_by_target"]
    for d, worst in one["max_error_over_tolerance"].items():
        by_target = one["max_by_target"][d]
        assert {"W_hh", "W_xh", "b_h", "W_hy", "b_y", "loss", "dL_dh"} <= set(by_target)
        assert max(w["ratio"] for w in by_target.values()) == worst
        assert all(w["case"]["dtype"] == d and w["reference"] == "torch" for w in by_target.values())


def test_resumes_from_what_it_wrote(tmp_path):
    out = tmp_path / "soak.json"
    lines = []
    first = soak(12, 3, workers=1, references=("torch",), out=out, progress=lines.append)
    saved = json.loads(out.read_text())
    assert saved["cases"] == 12 and sorted(saved["blocks_done"]) == list(range(12))
    second = soak(12, 3, workers=1, references=("torch",), out=out, progress=lines.append)
    assert any(line.startswith("resuming: 12 of 12") for line in lines)
    assert {k: first[k] for k in KEYS} == {k: second[k] for k in KEYS}
    # a resumed run adds its own time: the rate of a resumed soak stays honest
    assert second["seconds"] >= saved["seconds"] > 0


def test_cli_soak_prints_the_contract_json(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["soak", "--cases", "6", "--seed", "11", "--workers", "1", "--references", "torch",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[0] == "seed: 11"
    tally = json.loads(printed[-1])
    assert set(tally) == {"cases", "false_alarms", "inconclusive", "max_error_over_tolerance"}
    assert json.loads(out.read_text())["cases"] == 6
    # the distribution of error / tolerance, drawn next to the tally
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")


def test_cells_soak_same_verdicts_with_one_or_two_workers_and_never_mixes_tallies(tmp_path):
    """``--cells``: check_cell on the built-in cells' own derivations, block by block; the
    verdicts do not depend on the worker count, and an Elman tally in the same file is
    never resumed as a cells one."""
    out = tmp_path / "soak.json"
    soak(4, 5, workers=1, references=("torch",), out=out, progress=lambda line: None)
    lines = []
    one = soak(8, 5, workers=1, references=("torch",), out=out, progress=lines.append, cells=True)
    assert not any(line.startswith("resuming") for line in lines)
    two = soak(8, 5, workers=2, references=("torch",), progress=lambda line: None, cells=True)
    assert {k: one[k] for k in KEYS} == {k: two[k] for k in KEYS}
    assert one["kind"] == "cells" and one["cases"] == 8 and one["false_alarms"] == 0
    assert one["max_error_over_tolerance"]["float32"] > 0
    assert json.loads(out.read_text())["kind"] == "cells"


def test_cells_soak_refuses_a_gpu(tmp_path, capsys):
    assert main(["soak", "--cells", "--device", "cuda", "--cases", "2", "--out", str(tmp_path / "s.json")]) == 2
    assert "--cells" in capsys.readouterr().err


def test_a_soak_runs_exactly_the_cases_asked():
    # blocks of a fixed size used to round N up (100,000 gated cases in blocks of 384 ran
    # 100,224; the Elman soak of 600 ran 602): the last block runs what is left
    from comparisons.measure.soak import gated_blocks

    per_block, n_blocks = gated_blocks(13)
    assert per_block * n_blocks > 13                  # the case the old rounding got wrong
    total = soak(13, 9, workers=1, references=("torch",), progress=lambda line: None, gated=True)
    assert total["cases"] == 13 and total["false_alarms"] == 0 and total["kind"] == "gated"
