"""Diagnosis for the gated cells: which classic LSTM or GRU mistake does a failing derivation make?

As ``comparisons.check.diagnosis`` does for Elman, each entry is a real derivation with
exactly one mistake, computed on the failing case and compared with the candidate's
gradients under the checker's own tolerance; nothing is guessed from error sizes. The
derivations are ``manual.gated``'s (PyTorch's layout, gates i, f, g, o and r, z, n; every
course convention maps onto it, so a cs231n student's swapped gates are found here as the
same swap), with the contract's output layer and loss on top (``_adapt.head``: any output
and loss a convention checks).

    LSTM  c_t = f c_{t-1} + i g,  h_t = o tanh(c_t);  backward, correct:
          dc_t = dh_t o (1 - tanh(c_t)^2) + dc_{t+1} f_{t+1}
          da_t = [dc g i(1-i), dc c_{t-1} f(1-f), dc i (1-g^2), dh tanh(c_t) o(1-o)]
          dh_{t-1} += W_hh^T da_t
    GRU   h_t = (1 - z) n + z h_{t-1},  n = tanh(gi_n + r gh_n);  backward, correct:
          dn = dh (1 - z), dz = dh (h_{t-1} - n), dr = dn (1 - n^2) gh_n
          dh_{t-1} = dh z + W_hh^T [dr r(1-r), dz z(1-z), dn (1-n^2) r]
    d2l   h_t = z h_{t-1} + (1 - z) h~,  h~ = tanh(gi_c + W_hc (r h_{t-1}));  backward, correct:
          da_c = dh (1 - z)(1 - h~^2), d(rh) = W_hc^T da_c, dr = d(rh) h_{t-1}, dz = dh (h_{t-1} - h~)
          dh_{t-1} = dh z + d(rh) r + W_hh^T [dz z(1-z), dr r(1-r)]
"""

from __future__ import annotations

import itertools

import numpy as np

from bptt_xval.model import Gradients
from comparisons.check.compare import compare

sigmoid = lambda v: 1 / (1 + np.exp(-v))

LSTM_MISTAKES = {
    "cell_carry_dropped": "dropped the cell state's carry: dc_t = dh_t o (1 - tanh(c_t)^2) without "
                          "+ dc_{t+1} f_{t+1} (dnext_c never reaches the previous step)",
    "forget_gate_missing_in_carry": "carried dc_t back to c_{t-1} without the forget gate "
                                    "(dprev_c = dc instead of dc * f)",
    "hidden_carry_dropped": "never carried dL/dh_t back through W_hh (dprev_h computed but not added to "
                            "the previous step's upstream dh: `da[:, :, t]` where `da[:, :, t] + da_prevt` belongs)",
    "tanh_prime_missing": "left out tanh'(c_t) in dh_t -> dc_t (dc = dh * o, no (1 - tanh(c_t)^2))",
    "tanh_prime_of_h": "took tanh' at the output h_t (1 - h_t^2) instead of at c_t (1 - tanh(c_t)^2)",
    "c_t_for_c_prev": "used c_t where c_{t-1} belongs in the forget gate's gradient (df = dc * c_t)",
    "gate_order_swapped": "the backward stacks two gates' gradients in each other's place: its gate order "
                          "differs from the forward's",
    "off_by_one_hidden_state": "used h_t instead of h_{t-1} in dL/dWh = sum_t h_{t-1}^T da_t",
}
GRU_MISTAKES = {
    "reset_path_missing": "dropped the reset gate's path: dr = 0 (r gets no gradient through n)",
    "reset_not_applied": "left r out of the candidate's recurrent gradient (d(W_hn h) = dn (1 - n^2), "
                         "not times r)",
    "update_gate_sign": "differentiated h_t = (1 - z) n + z h_{t-1} with the update gate's sign flipped "
                        "(dz = dh (n - h_{t-1})): the d2l convention h = z h_{t-1} + (1 - z) n mixed with PyTorch's",
    "update_carry_dropped": "dropped the direct carry dh_t z to h_{t-1} (only the path through W_hh kept)",
    "hidden_carry_dropped": "never carried dL/dh_t back to h_{t-1} at all",
    "off_by_one_hidden_state": "used h_t instead of h_{t-1} in dL/dW_hh",
}
GRU_D2L_MISTAKES = {
    "reset_path_missing": "dropped the reset gate's path: dr = 0 (r gets no gradient through h~)",
    "reset_not_applied": "carried the candidate's gradient back to h_{t-1} without the reset gate "
                         "(dh_{t-1} += W_hh^T da_c instead of r * (W_hh^T da_c))",
    "reset_after_product": "differentiated PyTorch's candidate tanh(W_xh x + r * (W_hh h) + b) where d2l's "
                           "tanh(W_xh x + W_hh (r * h) + b) was computed: the reset gate placed after the product",
    "update_gate_sign": "differentiated h_t = z h_{t-1} + (1 - z) h~ with the update gate's sign flipped "
                        "(dz = dh (h~ - h_{t-1})): PyTorch's convention h = (1 - z) n + z h mixed with d2l's",
    "update_carry_dropped": "dropped the direct carry dh_t z to h_{t-1} (only the paths through the gates kept)",
    "hidden_carry_dropped": "never carried dL/dh_t back to h_{t-1} at all",
    "off_by_one_hidden_state": "used h_t instead of h_{t-1} in dL/dW_hz and dL/dW_hr",
}
MISTAKES = {"lstm": LSTM_MISTAKES, "gru": GRU_MISTAKES, "gru_d2l": GRU_D2L_MISTAKES}
GATE_NAMES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "gru_d2l": ("z", "r", "h~")}


def _head(params, h, ys, config):
    from comparisons.conventions._adapt import head

    return head(params, h, ys, config)


def lstm(params, xs, ys, config, mistake=None, swap=None) -> Gradients:
    """LSTM BPTT (manual.gated's) with one ``mistake`` (a LSTM_MISTAKES key) or none;
    ``swap``: the two gate indices a gate_order_swapped backward exchanges."""
    T, B, _ = xs.shape
    H = params["W_hh"].shape[1]
    W_hh = params["W_hh"]
    h = np.zeros((T + 1, B, H))
    c = np.zeros((T + 1, B, H))
    gates = np.zeros((T + 2, 4, B, H))
    for t in range(1, T + 1):
        a = xs[t - 1] @ params["W_ih"].T + params["b"] + h[t - 1] @ W_hh.T
        i, f, g, o = (a[:, k * H:(k + 1) * H] for k in range(4))
        gates[t] = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
        c[t] = gates[t, 1] * c[t - 1] + gates[t, 0] * gates[t, 2]
        h[t] = gates[t, 3] * np.tanh(c[t])
    L, direct, top = _head(params, h, ys, config)
    dL_dh = np.zeros_like(h)
    dL_dh[1:] = direct
    da = np.zeros((T + 1, B, 4 * H))
    dc = np.zeros((B, H))
    dL_dc = np.zeros((T + 1, B, H))          # dL/dc_t, the total derivative (dc above), per step
    for t in range(T, 0, -1):
        i, f, g, o = gates[t]
        tanh_c = np.tanh(c[t])
        slope = {"tanh_prime_missing": 1.0, "tanh_prime_of_h": 1 - h[t] ** 2}.get(mistake, 1 - tanh_c ** 2)
        carried = 0.0 if mistake == "cell_carry_dropped" else dc * (1.0 if mistake == "forget_gate_missing_in_carry"
                                                                    else gates[t + 1, 1])
        dc = dL_dh[t] * o * slope + carried
        dL_dc[t] = dc
        c_prev = c[t] if mistake == "c_t_for_c_prev" else c[t - 1]
        blocks = [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g ** 2),
                  dL_dh[t] * tanh_c * o * (1 - o)]
        if swap is not None:
            blocks[swap[0]], blocks[swap[1]] = blocks[swap[1]], blocks[swap[0]]
        da[t] = np.concatenate(blocks, axis=1)
        if mistake != "hidden_carry_dropped" or t == 1:    # dh0 is the first step's dprev_h all the same
            dL_dh[t - 1] += da[t] @ W_hh
    A = da[1:].reshape(T * B, 4 * H)
    h_in = h[1:] if mistake == "off_by_one_hidden_state" else h[:-1]
    grads = {"W_ih": A.T @ xs.reshape(T * B, -1), "W_hh": A.T @ h_in.reshape(T * B, H), "b": A.sum(0), **top}
    dL_dc[0] = dc * gates[1, 1]
    grads.update(h0=dL_dh[0].copy(), c0=dL_dc[0].copy())
    return Gradients(L, grads, dL_dh, da[1:] @ params["W_ih"]), dL_dc


def gru(params, xs, ys, config, mistake=None, swap=None) -> Gradients:
    """GRU BPTT (manual.gated's) with one ``mistake`` (a GRU_MISTAKES key) or none."""
    T, B, _ = xs.shape
    H = params["W_hh"].shape[1]
    W_hh = params["W_hh"]
    gi = xs @ params["W_ih"].T + params["b_ih"]
    h = np.zeros((T + 1, B, H))
    gh, r, z, n = (np.zeros((T + 1, B, k * H)) for k in (3, 1, 1, 1))
    for t in range(1, T + 1):
        gh[t] = h[t - 1] @ W_hh.T + params["b_hh"]
        r[t] = sigmoid(gi[t - 1, :, :H] + gh[t, :, :H])
        z[t] = sigmoid(gi[t - 1, :, H:2 * H] + gh[t, :, H:2 * H])
        n[t] = np.tanh(gi[t - 1, :, 2 * H:] + r[t] * gh[t, :, 2 * H:])
        h[t] = (1 - z[t]) * n[t] + z[t] * h[t - 1]
    L, direct, top = _head(params, h, ys, config)
    dL_dh = np.zeros_like(h)
    dL_dh[1:] = direct
    dgi, dgh = np.zeros((T + 1, B, 3 * H)), np.zeros((T + 1, B, 3 * H))
    for t in range(T, 0, -1):
        dh = dL_dh[t]
        dgi_n = dh * (1 - z[t]) * (1 - n[t] ** 2)
        dr = 0.0 * dgi_n if mistake == "reset_path_missing" else dgi_n * gh[t, :, 2 * H:]
        dz = dh * ((n[t] - h[t - 1]) if mistake == "update_gate_sign" else (h[t - 1] - n[t]))
        blocks = [dr * r[t] * (1 - r[t]), dz * z[t] * (1 - z[t]), dgi_n]
        if swap is not None:
            blocks[swap[0]], blocks[swap[1]] = blocks[swap[1]], blocks[swap[0]]
        dgi[t] = np.concatenate(blocks, axis=1)
        dgh[t] = np.concatenate([dgi[t, :, :2 * H], dgi[t, :, 2 * H:] * (1.0 if mistake == "reset_not_applied"
                                                                          else r[t])], axis=1)
        if mistake == "hidden_carry_dropped" and t > 1:
            continue
        dL_dh[t - 1] += (0.0 if mistake == "update_carry_dropped" else dh * z[t]) + dgh[t] @ W_hh
    Gi, Gh = dgi[1:].reshape(T * B, 3 * H), dgh[1:].reshape(T * B, 3 * H)
    h_in = h[1:] if mistake == "off_by_one_hidden_state" else h[:-1]
    grads = {"W_ih": Gi.T @ xs.reshape(T * B, -1), "W_hh": Gh.T @ h_in.reshape(T * B, H),
             "b_ih": Gi.sum(0), "b_hh": Gh.sum(0), **top, "h0": dL_dh[0].copy()}
    return Gradients(L, grads, dL_dh, dgi[1:] @ params["W_ih"]), None


def gru_d2l(params, xs, ys, config, mistake=None, swap=None) -> Gradients:
    """d2l's GRU BPTT (manual.gated's) with one ``mistake`` (a GRU_D2L_MISTAKES key) or none."""
    T, B, _ = xs.shape
    H = params["W_hc"].shape[1]
    W_hh, W_hc = params["W_hh"], params["W_hc"]
    gi = xs @ params["W_ih"].T + params["b"]
    h = np.zeros((T + 1, B, H))
    z, r, c = (np.zeros((T + 1, B, H)) for _ in range(3))
    for t in range(1, T + 1):
        gh = h[t - 1] @ W_hh.T
        z[t] = sigmoid(gi[t - 1, :, :H] + gh[:, :H])
        r[t] = sigmoid(gi[t - 1, :, H:2 * H] + gh[:, H:])
        c[t] = np.tanh(gi[t - 1, :, 2 * H:] + (r[t] * h[t - 1]) @ W_hc.T)
        h[t] = z[t] * h[t - 1] + (1 - z[t]) * c[t]
    L, direct, top = _head(params, h, ys, config)
    dL_dh = np.zeros_like(h)
    dL_dh[1:] = direct
    dgi = np.zeros((T + 1, B, 3 * H))
    dW_hc = np.zeros_like(W_hc)
    after = mistake == "reset_after_product"
    for t in range(T, 0, -1):
        dh = dL_dh[t]
        da_c = dh * (1 - z[t]) * (1 - c[t] ** 2)
        if after:            # c = tanh(gi_c + r * (W_hc h)): r scales the product's result
            dr = da_c * (h[t - 1] @ W_hc.T)
            d_h_c = (da_c * r[t]) @ W_hc
            dW_hc += (da_c * r[t]).T @ h[t - 1]
        else:
            d_rh = da_c @ W_hc
            dr = 0.0 * d_rh if mistake == "reset_path_missing" else d_rh * h[t - 1]
            d_h_c = d_rh if mistake == "reset_not_applied" else d_rh * r[t]
            dW_hc += da_c.T @ (r[t] * h[t - 1])
        dz = dh * ((c[t] - h[t - 1]) if mistake == "update_gate_sign" else (h[t - 1] - c[t]))
        blocks = [dz * z[t] * (1 - z[t]), dr * r[t] * (1 - r[t]), da_c]
        if swap is not None:
            blocks[swap[0]], blocks[swap[1]] = blocks[swap[1]], blocks[swap[0]]
        dgi[t] = np.concatenate(blocks, axis=1)
        if mistake == "hidden_carry_dropped" and t > 1:
            continue
        dL_dh[t - 1] += ((0.0 if mistake == "update_carry_dropped" else dh * z[t]) + d_h_c
                         + dgi[t, :, :2 * H] @ W_hh)
    G = dgi[1:].reshape(T * B, 3 * H)
    h_in = h[1:] if mistake == "off_by_one_hidden_state" else h[:-1]
    grads = {"W_ih": G.T @ xs.reshape(T * B, -1), "W_hh": G[:, :2 * H].T @ h_in.reshape(T * B, H), "W_hc": dW_hc,
             "b": G.sum(0), **top, "h0": dL_dh[0].copy()}
    return Gradients(L, grads, dL_dh, dgi[1:] @ params["W_ih"]), None


DERIVATIONS = {"lstm": lstm, "gru": gru, "gru_d2l": gru_d2l}


def mistaken(cell: str, mistake: str | None, params, xs, ys, *, output="identity", loss="squared_error",
             reduction="mean", swap=None, with_cell_state=False):
    """The cell's derivation with ``mistake`` (None: the correct one), float64: its
    ``Gradients`` (and, ``with_cell_state``, dL/dc_t (T+1, B, H) or None for the GRU)."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    y = ys if loss == "cross_entropy" else np.asarray(ys, np.float64)
    config = dict(output=output, loss=loss, reduction=reduction)
    with np.errstate(all="ignore"):
        out = DERIVATIONS[cell](p, np.asarray(xs, np.float64), y, config, mistake, swap)
    return out if with_cell_state else out[0]


def departs(wrong: np.ndarray, right: np.ndarray) -> int | None:
    """The largest t at which a per-step quantity (T+1, B, H) departs from the correct one
    (beyond float64 rounding of its size): where the mistake first shows, counting back from T."""
    diff = np.abs(wrong - right).reshape(len(right), -1).max(1)
    size = np.abs(right).max(initial=0.0)
    bad = np.nonzero(diff > 1e-9 * size + 1e-300)[0]
    return int(bad.max()) if bad.size else None


def _where(cell, mistake, params, xs, ys, config, swap=None) -> str:
    """"dL/dh_t first departs at t = k, dL/dc_t at t = j" for the mistake on this case."""
    G, C = mistaken(cell, mistake, params, xs, ys, swap=swap, with_cell_state=True, **config)
    G0, C0 = mistaken(cell, None, params, xs, ys, with_cell_state=True, **config)
    parts = []
    for name, a, b in (("dL/dh_t", G.dL_dh, G0.dL_dh), ("dL/dc_t", C, C0)):
        t = None if a is None else departs(a, b)
        if t is not None:
            parts.append(f"{name} at t = {t}")
    return f" (on this case it first shows in {' and in '.join(parts)})" if parts else ""


def diagnose(cell: str, outcome, gates: int) -> tuple[list, dict]:
    """(names, notes) of the catalogued mistakes that ``outcome``'s candidate gradients match
    on its case, within the checker's tolerance; a gate swap's note names the two gates."""
    if outcome.result is None or outcome.arrays is None:
        return [], {}
    case = outcome.case
    tol_case = case.replace(H=gates * case.H)
    params, xs, ys = outcome.arrays
    config = dict(output=case.output, loss=case.loss, reduction=case.reduction)
    result = outcome.result

    def matches(wrong) -> bool:
        wrong = wrong._replace(grads={k: wrong.grads[k] for k in result.grads},
                               dL_dh=wrong.dL_dh if result.dL_dh is not None else None,
                               dL_dx=wrong.dL_dx if result.dL_dx is not None else None)
        comparison = compare(result, wrong, "diagnosis", tol_case, outcome.magnitude)
        return all(e.ok for k, e in comparison.errors.items() if k != "loss")

    found, notes = [], {}
    names = GATE_NAMES[cell]
    for mistake in MISTAKES[cell]:
        if mistake == "gate_order_swapped":
            for pair in itertools.combinations(range(len(names)), 2):
                if matches(mistaken(cell, None, params, xs, ys, swap=pair, **config)):
                    found.append(mistake)
                    notes[mistake] = (f"the gradients of gates {names[pair[0]]} and {names[pair[1]]} are in each "
                                      f"other's place: the backward's gate order differs from the forward's"
                                      + _where(cell, None, params, xs, ys, config, swap=pair))
                    break
            continue
        if case.T == 1 and mistake in ("cell_carry_dropped", "forget_gate_missing_in_carry", "hidden_carry_dropped",
                                       "update_carry_dropped"):
            continue                           # one step carries nothing: cannot be told apart
        if matches(mistaken(cell, mistake, params, xs, ys, **config)):
            found.append(mistake)
            notes[mistake] = MISTAKES[cell][mistake] + _where(cell, mistake, params, xs, ys, config)
    return found, notes
