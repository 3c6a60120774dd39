"""bptt-xval: hand-derived backpropagation through time, cross-checked against autodiff.

The shared contract (option names, ``Gradients``, input validation) lives in
:mod:`bptt_xval.model`; the derivations in ``manual``, the references in ``reference``,
and the checker and report in ``comparisons``.
"""

__version__ = "0.1.0"
