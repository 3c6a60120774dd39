"""The grader's expectations of an answer (comparisons.grading.answers) against what each
convention's adapter really returns: a correct file of each style, run in-process on one
of the plan's cases, returns exactly the arrays ``answers.expected`` requires, with the
shapes it names. (deeplearning-ai-lstm and min-char-rnn-lstm are held by the grading tests
of their conventions only.)"""

import pytest

import gated_wild
import styles
from comparisons.check.candidate import Outcome, run_candidate, run_gated_candidate
from comparisons.check.cases import make_problem
from comparisons.check.cells import GATED_LAYOUTS, make_cell_problem
from comparisons.cli import convention_check, load_file
from comparisons.grading import answers
from comparisons.grading.gradebook import make_plan

SOURCES = {"min-char-rnn": styles.min_char_source, "cs231n": styles.cs231n_source,
           "cs231n-step": styles.cs231n_source, "deeplearning-ai": styles.dlai_source,
           "cs231n-lstm": gated_wild.cs231n_lstm_source, "cs231n-lstm-step": gated_wild.cs231n_lstm_source,
           "gru": gated_wild.gru_source, "d2l-gru": gated_wild.d2l_gru_source}


@pytest.mark.parametrize("convention", sorted(SOURCES))
def test_each_convention_returns_what_the_grader_expects(convention, tmp_path):
    path = tmp_path / "submission.py"
    path.write_text(SOURCES[convention]())
    plan = make_plan(convention, cases=2, seed=3)
    fn = convention_check(load_file(str(path)), str(path), convention, None)
    for case, checked, want in zip(plan.cases, plan.checked, plan.expected):
        if getattr(fn, "cell", None):
            shapes, state = GATED_LAYOUTS[fn.cell]
            got = run_gated_candidate(fn, case, make_cell_problem(case, shapes), state)
        else:
            got = run_candidate(fn, case, *make_problem(case), tuple(checked))
        assert not isinstance(got, Outcome), got.reason
        returned = {"loss": ()} | {k: v.shape for k, v in got.grads.items()}
        returned |= {k: getattr(got, k).shape for k in ("dL_dh", "dL_dx") if getattr(got, k) is not None}
        assert returned == want.required, (convention, returned, want.required)


def test_a_header_declaring_more_than_the_case_needs_is_refused_before_its_data():
    import io
    import zipfile

    import numpy as np

    want = answers.Expected({"loss": (), "W_hh": (2, 2)}, {}, "float64", ("W_hh",))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("record.json", '{"import_error": null, "cases": [{"status": "returned"}], "loading": []}')
        member = io.BytesIO()
        np.lib.format.write_array(member, np.zeros(()))
        z.writestr("0/loss.npy", member.getvalue())
        member = io.BytesIO()
        np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": (4096, 4096)})
        member.write(bytes(2 ** 24))
        z.writestr("0/W_hh.npy", member.getvalue())
    read = answers.read(buffer.getvalue(), [want])
    assert "shape (4096, 4096)" in read.problems[0] and "W_hh" not in read.cases[0]


def test_the_harness_header_and_any_other_read_alike():
    # the byte-for-byte match of the harness's own header and NumPy's reader for anything
    # else (Fortran order, a big-endian dtype) give the same arrays and the same refusals
    import io
    import zipfile

    import numpy as np

    values = np.arange(6.0).reshape(2, 3)

    def one(array, wanted=None):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            member = io.BytesIO()
            np.lib.format.write_array(member, array)
            z.writestr("a.npy", member.getvalue())
        z = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
        return answers._array(z, z.getinfo("a.npy"), (2, 3), wanted)

    for array in (values, np.asfortranarray(values), values.astype(">f8"), values.astype(np.float32)):
        assert np.array_equal(one(array), values)
    with pytest.raises(ValueError, match="dtype float32: expected float64"):
        one(values.astype(np.float32), "float64")
    with pytest.raises(ValueError, match=r"shape \(3, 2\): expected \(2, 3\)"):
        one(values.T.copy())
