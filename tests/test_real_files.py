"""Issue 25: files as students hand them in reach a verdict as stored (tests/wild.py holds
them): scripts that read data, parse argv and train at top level, Python 2, notebooks with
magics, course helpers, renamed globals, a class; usage slips are said as such."""

import json
import subprocess
import sys
import time

import pytest

import wild
from comparisons import check_derivation, loading
from comparisons.cli import main


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- min-char-rnn as written --------------------------------------------------------------------

def test_min_char_python2_script_agrees_without_running_its_training(write, capsys):
    path = write("min-char-rnn.py", wild.min_char_py2_source())     # no input.txt beside it
    started = time.perf_counter()
    code, out, err = run(["check", str(path), "--cases", "12"], capsys)
    assert code == 0, out + err
    assert time.perf_counter() - started < 120            # the `while True:` training loop never ran
    assert out.startswith("AGREES: 12 of 12")
    assert "clipped at ±5, as min-char-rnn does" in out
    assert "convention detected: min-char-rnn (lossFun)" in out
    assert "line 9: print statement -> print()" in out and "xrange -> range" in out
    assert "line 6 `data = open('input.txt', 'r').read()`" in out and "a top-level loop" in out
    assert "functions not checked" in out and "sample (line " in out


def test_min_char_strict_clip_keeps_the_old_verdict(write, capsys):
    path = write("min-char-rnn.py", wild.min_char_py2_source())
    code, out, _ = run(["check", str(path), "--cases", "8", "--seed", "4", "--strict-clip"], capsys)
    assert code == 1 and "clipped_gradients" in out and "as min-char-rnn does" not in out


def test_min_char_tanh_prime_missing_is_caught_and_named(write, capsys):
    path = write("min-char-rnn.py", wild.min_char_py2_source("tanh_prime_missing"))
    code, out, _ = run(["check", str(path), "--cases", "8"], capsys)
    assert code == 1 and out.startswith("DISAGREES") and "phi_prime_missing" in out


def test_argparse_script_with_renamed_globals_reads_its_own_argv(write, capsys, monkeypatch):
    path = write("char_rnn.py", wild.MIN_CHAR_ARGPARSE)
    # the tool's own argv must not reach the script's argparse (it never runs anyway)
    code, out, err = run(["check", str(path), "--cases", "10", "--seed", "2"], capsys)
    assert code == 0, out + err
    assert "args = parser.parse_args()" in out and "__main__" in out
    assert "clipped at ±5" in out                                  # c read through the global GRAD_CLIP


def test_renamed_parameters_are_found_by_their_role(write):
    from comparisons.conventions import min_char_rnn

    module = loading.load(write("char_rnn.py", wild.MIN_CHAR_ARGPARSE)).module
    fn = min_char_rnn(module.lossFun)
    assert fn.parameter_names == {"W_xh": "U", "W_hh": "W", "W_hy": "V", "b_h": "b", "b_y": "c"}
    assert fn.clip == 5.0


def test_a_class_instance_is_checked_with_fn_class_method(write, capsys):
    path = write("model.py", wild.MIN_CHAR_CLASS)
    code, out, err = run(["check", str(path), "--convention", "min-char-rnn", "--fn", "CharRNN.lossFun",
                          "--cases", "8"], capsys)
    assert code == 0, out + err
    assert "model = CharRNN(100, len(set(data)))" in out        # named as not run
    # detected without being told, too
    code, out, err = run(["check", str(path), "--cases", "4"], capsys)
    assert code == 0 and "min-char-rnn (CharRNN.lossFun)" in out, out + err


def test_an_instance_of_an_inert_class_is_made_and_a_constructor_is_not_run(write):
    """A global made from a class of the file with no constructor of its own (a cache, a
    threading.local) is run, since the functions read it; one whose __init__ may load or
    train is not, nor one on a base from outside the standard library."""
    source = ("import threading\nimport numpy as np\n\nclass Memo(threading.local):\n    hits = 0\n\n"
              "memo = Memo()\n\nclass Net:\n    def __init__(self):\n        self.data = open('data.txt').read()\n\n"
              "net = Net()\n\nclass Grid(np.ndarray):\n    pass\n\ngrid = Grid((2,))\n\n"
              "def step(x):\n    memo.hits += 1\n    return np.tanh(x)\n")
    loaded = loading.load(write("memo.py", source))
    assert loaded.module.step(0.0) == 0.0 and loaded.module.memo.hits == 1
    skipped = str(loaded.skipped)
    assert "net = Net()" in skipped and "grid = Grid((2,))" in skipped and "memo = Memo()" not in skipped


def test_the_suites_own_manual_rnn_checks_as_a_file(capsys):
    # its `_workspace = _Workspace()` (a threading.local of class attributes) used to be skipped,
    # so every case raised NameError
    from pathlib import Path

    import manual.rnn
    code, out, err = run(["check", f"{Path(manual.rnn.__file__)}:loss_and_grads", "--cases", "6"], capsys)
    assert code == 0 and out.startswith("AGREES: 6 of 6"), out + err


@pytest.mark.parametrize("hang", ["max(i for i in range(10 ** 12))",    # Python: SIGALRM
                                  "sum(range(10 ** 12))"])                # one C call: the watchdog
def test_a_hang_at_import_is_one_line_exit_2(write, hang):
    path = write("slow.py", f"import numpy as np\nN = {hang}\n\ndef lossFun(inputs, targets, hprev):\n"
                            "    return None\n")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "comparisons.cli", "check", str(path), "--import-timeout", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "did not finish in 1 s" in proc.stderr and proc.stderr.count("\n") == 1
    assert time.perf_counter() - started < 60


def test_a_hang_in_a_library_call_is_a_load_error(write):
    path = write("slow.py", "N = max(i for i in range(10 ** 12))\n")
    with pytest.raises(loading.LoadError, match="did not finish in 0.5 s"):
        loading.load(path, timeout=0.5)


def test_stdin_and_argv_are_the_students(write):
    loaded = loading.load(write("s.py", "import sys\nARGS = list(sys.argv)\nLINE = sys.stdin.read()\n"))
    assert loaded.module.ARGS == [str(loaded.path)]
    assert not hasattr(loaded.module, "LINE") and "LINE = sys.stdin.read()" in str(loaded.skipped)


# --- Python 2 -----------------------------------------------------------------------------------

def test_python2_division_in_an_index_becomes_floor_division(write):
    source = ("import numpy as np\nprint 'hi'\ndef half(x):\n    n = len(x)\n    return x[:n/2], n/2.0\n"
              "def grid(n):\n    return [i for i in xrange(n/2)]\n")
    loaded = loading.load(write("old.py", source))
    assert loaded.module.half([1, 2, 3, 4, 5]) == ([1, 2], 2.5)          # only the index is //
    assert loaded.module.grid(5) == [0, 1]
    assert any("line 5: `/` in an index -> `//`" in r for r in loaded.rewrites)


def test_python2_that_cannot_be_rewritten_names_the_line_and_the_fix(write, capsys):
    source = "import numpy as np\n\ndef lossFun(inputs, targets, hprev):\n    print `inputs`\n    return 0\n"
    code, _, err = run(["check", str(write("bad.py", source)), "--convention", "min-char-rnn"], capsys)
    assert code == 2 and "bad.py, line 4: `print `inputs``" in err and "backquotes: write repr(x)" in err and err.count("\n") == 1


# --- cs231n rnn_layers.py as stored ----------------------------------------------------------------

def test_cs231n_python2_file_detects_and_checks_both_pairs_and_names_the_lstm(write, capsys):
    path = write("rnn_layers.py", wild.cs231n_py2_source())
    code, out, err = run(["check", str(path), "--cases", "8"], capsys)
    assert code == 0, out + err
    assert "== cs231n: rnn_forward, rnn_backward ==" in out and "== cs231n-step:" in out
    # the word embedding pair is checked as a layer of its own (issue 41): a third verdict
    assert out.count("AGREES") == 3 and "== layer:word_embedding: word_embedding_forward, word_embedding_backward" in out
    not_checked = out.split("functions not checked")[1].splitlines()[0]
    for name in ("lstm_step_forward", "lstm_forward", "sigmoid"):
        assert name in not_checked
    assert "rnn_step_forward" not in not_checked


def test_tanh_prime_twice_is_diagnosed_in_the_students_names(write, capsys):
    path = write("rnn_layers.py", wild.cs231n_py2_source("tanh_prime_twice"))
    code, out, _ = run(["check", str(path), "--convention", "cs231n-step", "--cases", "8"], capsys)
    assert code == 1 and "phi_prime_twice" in out


def test_a_missing_import_is_headlined_with_the_files_line(write, capsys):
    path = write("rnn_layers.py", wild.cs231n_py2_source("no_numpy"))
    code, out, _ = run(["check", str(path), "--convention", "cs231n", "--cases", "4"], capsys)
    assert code == 1
    assert out.startswith("RAISES NameError")
    assert "name 'np' is not defined (at rnn_layers.py, line 33, in rnn_forward: `h = np.zeros((N, T, H))`)" in out
    assert "an import missing" in out


def test_a_layer_function_given_as_the_contract_says_which_convention(write, capsys):
    path = write("rnn_layers.py", wild.cs231n_py2_source())
    code, _, err = run(["check", f"{path}:rnn_backward"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "rnn_backward(dh, cache) is not loss_and_grads" in err
    assert f"it looks like the cs231n convention: bptt-xval check {path} --convention cs231n" in err


def test_a_file_of_no_convention_lists_its_functions(write, capsys):
    code, _, err = run(["check", str(write("misc.py", "def f(x):\n    return x\n"))], capsys)
    assert code == 2 and "defines no function of a known convention (its functions: f)" in err


# --- EECS 498: a course helper that imports torchvision --------------------------------------------

def test_course_helper_with_a_heavy_import_gets_a_placeholder_and_a_way_round(write, capsys):
    pytest.importorskip("torch")
    helper = write("course/a4_helper.py", wild.A4_HELPER)
    path = write("student/rnn_lstm_attention.py", wild.EECS498)
    code, out, err = run(["check", str(path), "--path", str(helper.parent), "--cases", "6"], capsys)
    assert code == 0, out + err
    assert "cs231n-step (rnn_step_forward, rnn_step_backward)" in out
    # the helper's torchvision is not installed here: its import is named, with the way round
    assert "a4_helper.py: not run" not in out
    assert "hello_rnn_lstm_attention" in out                      # not checked, named


def test_stub_replaces_a_module_on_purpose(write):
    loaded = loading.load(write("s.py", "import torchvision.transforms as T\nfrom torchvision import datasets\n"
                                        "def f():\n    return T.Compose\n"), stubs=("torchvision",))
    with pytest.raises(ImportError, match="--stub torchvision"):
        loaded.module.f()()


def test_a_failed_import_binds_a_placeholder_that_names_it(write):
    loaded = loading.load(write("s.py", "import numpy as np\nimport no_such_module_xyz as nsm\n"
                                        "def f():\n    return nsm.thing(1)\n"))
    assert "no_such_module_xyz" in str(loaded.skipped) and "--stub no_such_module_xyz" in str(loaded.skipped)
    with pytest.raises(ImportError, match="no_such_module_xyz"):
        loaded.module.f()


# --- deeplearning.ai notebooks ---------------------------------------------------------------------

def test_notebook_as_stored_agrees(course, capsys, tmp_path):
    path = course("student/Building_RNN_Step_by_Step.ipynb", wild.notebook(wild.dlai_cells()))
    started = time.perf_counter()
    code, out, err = run(["check", str(path), "--convention", "deeplearning-ai", "--path",
                          str(tmp_path / "course"), "--cases", "8"], capsys)
    assert code == 0, out + err
    assert time.perf_counter() - started < 120            # the %%time cell's loop never ran
    assert "cell 4, line 1 `np.random.seed(1)`" in out and "a %%time" not in out
    assert "cell 9, line 2 `for i in range(10**9):`" in out
    assert "rnn_cell_forward_tests(rnn_cell_forward)" in out


def test_notebook_messages_use_cell_numbers(course, capsys, tmp_path):
    path = course("student/nb.ipynb", wild.notebook(wild.dlai_cells("no_return")))
    code, out, _ = run(["check", str(path), "--path", str(tmp_path / "course"), "--cases", "4"], capsys)
    # the cells are checked on their own too (issue 41): the sequence pair's verdict is under its heading
    assert code == 1 and out.startswith("== deeplearning-ai: rnn_forward, rnn_backward ==\nRETURNS NOTHING")
    assert "rnn_backward returned None (nothing: is its `return` missing?)" in out
    source = wild.dlai_cells()[2].replace("np.dot(Waa, a_prev)", "np.dot(Waa, a_prev_)")
    path = course("student/nb2.ipynb", wild.notebook([*wild.dlai_cells()[:2], source, *wild.dlai_cells()[3:]]))
    code, out, _ = run(["check", str(path), "--path", str(tmp_path / "course"), "--cases", "4"], capsys)
    assert code == 1 and "at nb2.ipynb, cell 3, line 9, in rnn_cell_forward" in out, out


def test_check_result_displays_as_html_in_jupyter(tmp_path):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    cells = ["", "import sys\nsys.path[:0] = [%r]\nfrom comparisons import check_derivation\n"
                 "from manual.rnn import loss_and_grads\n"
                 "def wrong(params, xs, ys, **config):\n"
                 "    r = loss_and_grads(params, xs, ys, **config)\n"
                 "    return r._replace(grads={**r.grads, 'b_h': 2 * r.grads['b_h']})\n"
                 "check_derivation(wrong, cases=3)" % str(__import__("pathlib").Path(__file__).parents[1])]
    nb = nbformat.reads(wild.notebook(cells), as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    html = nb.cells[1].outputs[0]["data"]["text/html"]
    assert "<b style='color:#b03a2e'>DISAGREES</b>" in html and "b_h" in html
    assert "smallest failing case" in html and "full summary" in html


# --- grading a mixed folder ------------------------------------------------------------------------

def test_grade_a_mixed_folder(course, tmp_path, capsys):
    from styles import cs231n_source

    sub = tmp_path / "class"
    course("class/alice.py", cs231n_source())
    course("class/bob.ipynb", wild.notebook(["", cs231n_source()]))
    course("class/carol/rnn_layers.py", "from helpers import tanh\n" + cs231n_source().replace("np.tanh", "tanh"))
    course("class/carol/helpers.py", "import numpy as np\ndef tanh(a):\n    return np.tanh(a)\n")
    course("class/dan/notes.py", "x = 1\n")
    course("class/erin.py", wild.cs231n_py2_source("tanh_prime_twice"))
    course("class/rnn_utils.py", wild.RNN_UTILS)                     # the course's helper, copied in
    course("class/README.txt", "hand in by Friday")
    out = tmp_path / "book"
    code, printed, err = run(["grade", str(sub), "--convention", "cs231n", "--path", str(tmp_path / "course"),
                              "--cases", "6", "--timeout", "60", "--out", str(out)], capsys)
    assert code == 0, printed + err
    book = json.loads((out / "gradebook.json").read_text())
    verdicts = {name: row["verdict"] for name, row in book["rows"].items()}
    assert verdicts == {"alice.py": "agree", "bob.ipynb": "agree", "carol/": "agree", "dan/": "import_error",
                        "erin.py": "disagree"}
    assert "phi_prime_twice" in book["rows"]["erin.py"]["diagnosis"]
    assert "no file of the folder defines rnn_forward, rnn_backward" in book["rows"]["dan/"]["detail"]
    assert book["skipped"] == {"README.txt": "not a .py or .ipynb file",
                               "rnn_utils.py": "a course helper (in --path): never graded"}
    assert "skipped rnn_utils.py: a course helper" in printed


def test_the_command_in_a_process_on_a_script(write):
    path = write("min-char-rnn.py", wild.min_char_py2_source())
    proc = subprocess.run([sys.executable, "-m", "comparisons.cli", "check", str(path), "--cases", "4", "--json"],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.PIPE)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ok"] and out["convention"] == "min-char-rnn" and out["notes"]
    assert any("while True" in s for s in out["loading"]["not_run"])


def test_the_wrong_convention_is_a_usage_slip_that_names_the_right_one(course, capsys, tmp_path):
    path = course("student/nb.ipynb", wild.notebook(wild.dlai_cells()))
    code, _, err = run(["check", str(path), "--convention", "cs231n", "--path", str(tmp_path / "course")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "rnn_forward(x, a0, parameters) takes 3 argument(s) where the cs231n convention's rnn_forward takes 5" in err
    assert "it looks like the deeplearning-ai convention" in err
