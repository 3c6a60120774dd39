"""Stacked references (``reference.stacked``; ``batch_loss_and_grads`` of torch and JAX,
``references_for`` and ``magnitudes_many`` in the checker) give what the case-by-case path
gives, to float64 rounding: the padding is exact, so the verdicts cannot move."""

import numpy as np
import pytest

from comparisons.check import backends
from comparisons.check.cases import Case, as_float64, draw_cases, make_problem
from comparisons.check.checker import reference_results, references_for
from reference.stacked import groups

CONFIGS = [dict(),
           dict(hidden="relu", loss="cross_entropy", reduction="last"),
           dict(hidden="sigmoid", output="sigmoid", reduction="sum", truncate=3),
           dict(hidden="identity", output="tanh", reduction="mean")]


def _close(a, b, what):
    scale = max(float(np.max(np.abs(a), initial=0.0)), 1e-300)
    assert a.shape == b.shape, what
    assert float(np.max(np.abs(a - b), initial=0.0)) <= 1e-12 * scale, what


def _same(one, many, label):
    assert set(one.grads) == set(many.grads), label
    assert abs(one.loss - many.loss) <= 1e-12 * max(abs(one.loss), 1e-300), label
    for k in one.grads:
        _close(one.grads[k], many.grads[k], f"{label} {k}")
    _close(one.dL_dh, many.dL_dh, f"{label} dL_dh")
    _close(one.dL_dx, many.dL_dx, f"{label} dL_dx")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())) or "default")
@pytest.mark.parametrize("name", ["torch", "jax"])
def test_batch_loss_and_grads_equals_one_by_one(name, config):
    import importlib

    module = importlib.import_module(backends.MODULES[name])
    cases = draw_cases(12, 7, **config)           # long, wide and every h0 kind among them:
    assert max(c.T for c in cases) > 100 and max(c.H for c in cases) > 20 and \
        {c.h0 for c in cases} == {"none", "vector", "batch"}
    problems = [as_float64(c, *make_problem(c)) for c in cases]
    conf = cases[0].config()
    for idx, sizes in groups([(c.T, c.B, c.D, c.H, c.O) for c in cases], 8):
        stacked = module.batch_loss_and_grads([problems[i] for i in idx], **conf, sizes=sizes, cases=8)
        assert len(stacked) == len(idx)
        for i, many in zip(idx, stacked):
            _same(module.loss_and_grads(*problems[i], **conf), many, f"{name} {cases[i].id}")


def test_a_padded_tail_cannot_overflow():
    """A case at the edge of float64 (h_T ~ 1e150, finite) stacked with a longer one: one
    more step would reach 1e300 and then inf; its padded steps are 0, so its gradients
    stay finite and equal to its own."""
    from reference import torch_autograd

    config = dict(hidden="relu", loss="cross_entropy")
    cases = draw_cases(16, 3, **config)
    long = next(c for c in cases if c.T >= 100)
    short = Case(seed=5, T=3, B=1, D=2, H=2, O=2, regime="expansive", **config)
    problems = [as_float64(c, *make_problem(c)) for c in (short, long)]
    problems[0][0]["W_hh"] = problems[0][0]["W_hh"] * 1e75
    one = torch_autograd.loss_and_grads(*problems[0], **config)
    assert np.isfinite(one.loss) and one.loss > 1e100       # at the edge, but finite
    stacked = torch_autograd.batch_loss_and_grads(problems, **config)
    _same(one, stacked[0], "short")


def test_references_for_equals_reference_results():
    refs, _ = backends.available(backends.REFERENCES)
    cases = draw_cases(40, 11, hidden="tanh", dtype="float32")
    prepared = references_for(cases, refs)
    for case, (references, magnitude) in zip(cases, prepared):
        one, one_magnitude = reference_results(case, refs)
        assert list(references) == list(one), case.id        # the same references, same order
        for name in one:
            if one[name].dL_dh is not None:
                _same(one[name], references[name], f"{name} {case.id}")
        assert (magnitude is None) == (one_magnitude is None)
        if magnitude is not None:
            for k, v in one_magnitude.items():
                if isinstance(v, dict):                      # the targets' own C
                    assert magnitude[k] == v, f"{case.id} {k}"
                    continue
                np.testing.assert_allclose(magnitude[k], v, rtol=1e-9, err_msg=f"{case.id} {k}")


def test_groups_plan_few_shapes():
    cases = draw_cases(200, 1)
    plan = groups([(c.T, c.B, c.D, c.H, c.O) for c in cases], 16)
    assert sorted(i for idx, _ in plan for i in idx) == list(range(200))
    assert len({sizes for _, sizes in plan}) <= 3          # one JAX compilation each
    for idx, (T, B, D, H, O) in plan:
        assert len(idx) <= 16
        assert all(cases[i].T <= T and cases[i].H <= H and cases[i].B <= B for i in idx)


def test_groups_shapes_do_not_depend_on_the_draw():
    """Any call on the default mixture pads to the same shapes, so a small first call compiles
    what a larger later one needs (a 10-case warm-up and the 300 cases after it)."""
    shapes = set()
    for seed in range(40):
        for n in (10, 300):
            cases = draw_cases(n, seed)
            shapes |= {sizes for _, sizes in groups([(c.T, c.B, c.D, c.H, c.O) for c in cases], 16)}
    assert len(shapes) <= 3, shapes
