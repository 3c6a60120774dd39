"""The grading bench's machinery (issue 42, items 5 and 6), never its timings: the synthetic
class gets the verdicts it must, every submission of a class larger than the grader's window
of tasks in flight gets its row, and a class grades the same on a ``dask scheduler`` with
``dask worker`` processes started here as on the grader's own cluster."""

import pytest

from comparisons.measure import classroom, grading_rate
from comparisons.measure.cluster import separate_cluster


def test_the_class_mixes_every_kind_in_its_proportions():
    kinds = [classroom.kind_of(i) for i in range(1000)]
    assert {k: kinds.count(k) for k in set(kinds)} == {"right": 700, "wrong": 180, "hostile": 100, "slow": 20}
    sources = [classroom.submission(i)[1] for i in range(100)]
    assert len(set(sources)) == 100                     # no two files alike
    # every mistake and trick is drawn within the first 50
    drawn = " ".join(classroom.submission(i)[1].splitlines()[0] for i in range(50))
    for name in list(classroom.WRONG) + list(classroom.HOSTILE):
        assert name in drawn


def test_write_class_rejects_an_empty_class(tmp_path):
    with pytest.raises(ValueError, match="n: expected a positive number"):
        classroom.write_class(tmp_path, 0)


def test_a_class_of_fifty_gets_every_verdict_it_must():
    # 50 submissions against a window of 4 in flight (2 threads): the one slow student, the
    # cheat and the flood included; none lost, none misjudged
    run = grading_rate.grade_class(50, cases=4, timeout=4.0, workers=2)
    assert run["wrong_verdicts"] == 0, run["wrong_examples"]
    # hostile 44..48 are cheat, flood, writes_outside, reads_grader, cheat
    assert run["verdicts"] == {"agree": 35 + 3, "disagree": 9 + 2, "timeout": 1}
    assert run["submissions_per_s"] > 0 and run["peak_rss_mb"] >= run["rss_before_grading_mb"] > 0


def test_a_separate_dask_cluster_grades_as_the_local_one():
    with separate_cluster(workers=1, threads=2) as address:
        assert address.startswith("tcp://127.0.0.1:")
        run = grading_rate.grade_class(8, cases=3, timeout=10.0, scheduler=address)
    assert run["scheduler"] == "separate" and run["wrong_verdicts"] == 0, run["wrong_examples"]
    assert sum(run["verdicts"].values()) == 8


def test_separate_cluster_rejects_no_workers():
    with pytest.raises(ValueError, match="workers: expected a positive number"):
        with separate_cluster(workers=0):
            pass
