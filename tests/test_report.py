"""The report: files, the contract's JSON schema, agreement, determinism, atomic writes."""

import json
import re

import pytest

from comparisons import atomic
from comparisons.report.build import write_report


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    report = write_report(out, seed=3, quick=True)
    return out, report


def test_files_written(quick_report):
    out, _ = quick_report
    for name in ("report.html", "report.md", "report.json", "timings.json", "norms.png",
                 "contributions.png", "seed000.png", "precision.png", "agreement.png"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*.tmp")), "temporary files left behind"


def test_json_follows_the_contract(quick_report):
    out, _ = quick_report
    data = json.loads((out / "report.json").read_text())
    assert isinstance(data["suite_version"], str) and data["seed"] == 3
    assert set(data["environment"]) >= {"python", "numpy", "torch", "jax"}
    assert set(data["summary"]) >= {"cases", "agree", "disagree", "skipped_backends"}
    assert data["summary"]["cases"] == len(data["cases"]) > 0
    for case in data["cases"]:
        assert set(case) >= {"id", "config", "shapes", "dtype", "agree", "errors", "dL_dh_norms"}
        assert set(case["errors"]) >= {"manual", "torch", "jax"}
        for errors in case["errors"].values():
            for e in errors.values():
                assert isinstance(e["max_abs"], float) and isinstance(e["rel"], float)
        for norms in case["dL_dh_norms"].values():
            assert len(norms) == case["shapes"]["T"] + 1
        per_step = case["errors"]["manual"]["dL_dh"]
        assert len(per_step["per_step_max_abs"]) == len(per_step["per_step_tol"]) == case["shapes"]["T"] + 1


def test_every_case_agrees(quick_report):
    _, report = quick_report
    assert report["summary"]["disagree"] == 0
    assert all(c["agree"] for c in report["cases"])


def test_norm_regimes_behave(quick_report):
    """The teaching claim: rho 0.5 vanishes, and every backend draws the same curve."""
    _, report = quick_report
    norms = {d["regime"]: d for d in report["figures_data"]["norms"]}
    contractive = norms["contractive"]["norms"]["manual"]
    assert contractive[0] < 1e-6 * contractive[-1]
    for d in norms.values():
        base = d["norms"]["manual"]
        for name, values in d["norms"].items():
            assert values == pytest.approx(base, rel=1e-9, abs=1e-300), name
        # the product bound bounds the norm at every step
        assert all(n <= b * (1 + 1e-9) for n, b in zip(base, d["bound"]))


def test_seed000_view_values_equal(quick_report):
    _, report = quick_report
    views = report["figures_data"]["seed000"]
    assert [v["w_r"] for v in views] == [0.5, 1.5]
    assert all(v["max_spread"] < 1e-12 for v in views)
    small, large = views
    assert abs(small["dL_dh"]["manual"][0]) < abs(small["dL_dh"]["manual"][-1])
    assert abs(large["dL_dh"]["manual"][0]) > abs(large["dL_dh"]["manual"][-1])


def test_html_and_markdown_structure(quick_report):
    out, report = quick_report
    html = (out / "report.html").read_text()
    assert html.count("<img src=\"data:image/png;base64,") == 12  # self-contained
    assert "<table>" in html and "Environment and reproduction" in html
    assert "bptt-xval report --out" in html
    md = (out / "report.md").read_text()
    for png in ("norms.png", "seed000.png", "precision.png"):
        assert f"]({png})" in md
    rows = re.findall(r"^\| s\d+", md, flags=re.M)
    assert len(rows) >= len(report["cases"])


def test_same_seed_same_bytes(quick_report, tmp_path):
    out, _ = quick_report
    write_report(tmp_path, seed=3, quick=True)
    assert (tmp_path / "report.json").read_bytes() == (out / "report.json").read_bytes()


def test_atomic_write_keeps_old_file_on_interrupt(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text("old")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_text(target, "new")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_gives_the_mode_the_umask_gives(tmp_path, mask, mode):
    # mkstemp's 0600 would keep a course's web server from serving a gradebook or a report
    import os
    import stat

    old = os.umask(mask)
    try:
        assert atomic.umask() == mask
        atomic.write_text(tmp_path / "gradebook.html", "<html/>")
        plain = tmp_path / "plain.txt"
        plain.write_text("as open() makes it")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "gradebook.html").stat().st_mode) == mode
    assert stat.S_IMODE(plain.stat().st_mode) == mode


def test_report_without_torch_and_jax(tmp_path, monkeypatch):
    """Missing libraries are skipped with their reason; numeric still checks manual."""
    from reference import jax_grad, torch_autograd
    monkeypatch.setattr(torch_autograd, "torch", None)
    monkeypatch.setattr(torch_autograd, "_IMPORT_ERROR", ImportError("No module named 'torch'"), raising=False)
    monkeypatch.setattr(jax_grad, "jax", None)
    monkeypatch.setattr(jax_grad, "_IMPORT_ERROR", ImportError("No module named 'jax'"), raising=False)
    report = write_report(tmp_path, seed=1, quick=True)
    assert report["summary"]["skipped_backends"] == ["jax", "torch"]
    assert report["environment"]["python"]
    checked = [c for c in report["cases"] if c["errors"]]
    assert checked and all(set(c["errors"]) == {"manual"} and c["errors_against"]["manual"] == "numeric"
                           for c in checked)
    assert all(c["agree"] for c in checked)
    assert not any(c["agree"] for c in report["cases"] if not c["errors"])
    assert "No module named 'torch'" in (tmp_path / "report.html").read_text()
    assert report["figures_data"]["truncation"]["references_agree"] is None
    assert report["summary"]["studies_agree"] is False


def test_resolving_power_and_inconclusive_share_are_shown(quick_report):
    out, report = quick_report
    rp = report["resolving_power"]
    # measured, not asserted: a planted error of 1e-2 (float32) and 1e-9 (float64) is seen
    # on every case, one of 1e-6 / 1e-14 (below rounding) on none
    for dtype, big, small in (("float32", "1e-02", "1e-06"), ("float64", "1e-09", "1e-14")):
        for target, shares in rp["power"][dtype]["caught"].items():
            assert shares[big] == 1.0 and shares[small] == 0.0, (dtype, target)
    assert rp["verdicts"]["false_alarms"] == 0
    assert rp["verdicts"]["inconclusive_share"] <= 0.01
    md = (out / "report.md").read_text()
    assert "What the check can see" in md and "resolve.png" in md and "inconclusive (" in md
    assert (out / "resolve.png").stat().st_size > 1000
