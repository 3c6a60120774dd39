"""Hand-derived BPTT in NumPy, written in the seed documents' terms.

- :mod:`manual.rnn`: the matrix Elman RNN of seed 003, every option of the contract.
- :mod:`manual.scalar_rnn`: seed 000 (w_r, w_x, w_y, e[k+1], dL/dh[k]) and seed 001
  (s_t, dL/ds_t from dL/ds_{T+1} = 0) in their own notation.

Imports NumPy (and the NumPy-only contract module ``bptt_xval.model``) and nothing else.
"""
