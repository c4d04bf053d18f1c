"""More recurrent cells, by hand in NumPy, each forward with its backward beside it (the
conventions of numpy_layers.py: time-major (T, N, ...), PyTorch's weight layouts, the whole
window's input projection as one product before the loop):

* `cho_gru_forward` / `cho_gru_backward`: the GRU with the reset gate applied before the
  recurrent product, as Cho et al. (2014) and d2l write it (torch twin: models/cho_gru.py);
* `min_rnn_forward` / `min_rnn_backward`: minGRU and minLSTM (Feng et al. 2024), whose gates
  read only the input, so the recurrence is linear, h_t = a_t h_{t-1} + b_t (torch twin with
  the parallel log-space scan: models/minrnn.py);
* `stacked_product`: why one concatenated matrix product is the same cell as two products.

All are checked against finite differences (studies/gradcheck.py, tests/test_gradcheck.py) and
against the torch modules (tests/test_numpy_cells.py).
"""

from __future__ import annotations

import numpy as np

from .numpy_layers import Cache, _recurrent_weight_grads, input_projection, input_projection_backward

MIN_GATES = {"mingru": 2, "minlstm": 3}


# --------------------------------------------------------------------------- the concatenation identity


def stacked_product(x: np.ndarray, h: np.ndarray, w_xh: np.ndarray, w_hh: np.ndarray) -> np.ndarray:
    """[X, H] [W_xh; W_hh]: one product of the inputs and the state side by side (N, D+H) with
    the two weight matrices stacked (D+H, G*H). Block multiplication gives

        [X, H] [W_xh; W_hh] = X W_xh + H W_hh

    so an RNN cell may keep one matrix of both or two separate ones: the same function. (The
    cells here keep them apart, as PyTorch does, so the input half of every step is done for the
    whole window in one product before the loop; see numpy_layers.input_projection.)
    x (N, D), h (N, H), w_xh (D, G*H), w_hh (H, G*H) -> (N, G*H)."""
    return np.concatenate([x, h], axis=1) @ np.concatenate([w_xh, w_hh], axis=0)


# --------------------------------------------------------------------------- GRU, Cho et al. (2014) form


def cho_gru_forward(
    x: np.ndarray,
    h0: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray,
    bias_hh: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, Cache]:
    """GRU over a window with the reset gate before the product (gate order r, z, n as PyTorch):

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr);   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        s = r * h;   n = tanh(W_in x + b_in + W_hn s + b_hn);   h' = (1 - z) * n + z * h

    Every bias is a plain sum here (in the cuDNN form b_hn sits inside r * (.)). Two recurrent
    products per step, the second waiting for r. x (T, N, D) floats or (T, N) ids, h0 (N, H).
    """
    steps, h = x.shape[0], h0.shape[-1]
    acts = input_projection(x, weight_ih, bias_ih + bias_hh)  # (T, N, 3H), becomes [r, z, n]
    w_rz_t, w_n_t = weight_hh[: 2 * h].T, weight_hh[2 * h :].T
    hbuf = np.empty((steps + 1,) + h0.shape, dtype=acts.dtype)
    hbuf[0] = h0
    sbuf = np.empty_like(hbuf[1:])  # s_t = r_t * h_{t-1}, the input of the n product
    tmp_rz, tmp_n = np.empty_like(acts[0, :, : 2 * h]), np.empty_like(hbuf[0])
    with np.errstate(over="ignore"):
        for t in range(steps):
            a = acts[t]
            rz, n = a[:, : 2 * h], a[:, 2 * h :]
            np.matmul(hbuf[t], w_rz_t, out=tmp_rz)
            rz += tmp_rz
            np.negative(rz, out=rz)
            np.exp(rz, out=rz)
            rz += 1
            np.reciprocal(rz, out=rz)  # [r, z] = sigmoid
            np.multiply(a[:, :h], hbuf[t], out=sbuf[t])
            np.matmul(sbuf[t], w_n_t, out=tmp_n)
            n += tmp_n
            np.tanh(n, out=n)
            np.subtract(hbuf[t], n, out=hbuf[t + 1])  # h' = n + z (h - n)
            hbuf[t + 1] *= a[:, h : 2 * h]
            hbuf[t + 1] += n
    cache = {"x": x, "acts": acts, "hbuf": hbuf, "sbuf": sbuf, "weight_ih": weight_ih, "weight_hh": weight_hh}
    return hbuf[1:], hbuf[-1], cache


def cho_gru_backward(
    dhs: np.ndarray, cache: Cache, dhT: np.ndarray | None = None
) -> tuple[np.ndarray | None, np.ndarray, tuple[np.ndarray, ...]]:
    """BPTT for `cho_gru_forward`. With dh the total gradient on h_t (h = h_{t-1} below):

        da_n = dh (1 - z)(1 - n^2);   ds = da_n W_hn;   da_r = ds * h * r (1 - r)
        da_z = dh (h - n) z (1 - z)
        dh_{t-1} = dh z + ds r + [da_r, da_z] W_h[rz]
        dW_h[rz] = sum_t [da_r, da_z]^T h_{t-1};   dW_hn = sum_t da_n^T s_t;   db_ih = db_hh = sum_t da

    Returns dx, dh0, (dW_ih, dW_hh, db_ih, db_hh).
    """
    acts, hbuf, sbuf, w_hh = cache["acts"], cache["hbuf"], cache["sbuf"], cache["weight_hh"]
    steps, _, h = sbuf.shape
    r, z, n = (acts[..., k * h : (k + 1) * h] for k in range(3))
    h_prev = hbuf[:-1]
    b_n = (1 - z) * (1 - n * n)  # what needs no recurrence, for the whole window at once
    b_z = (h_prev - n) * z * (1 - z)
    b_r = h_prev * r * (1 - r)
    w_rz, w_n = w_hh[: 2 * h], w_hh[2 * h :]
    dpre = np.empty_like(acts)  # [da_r, da_z, da_n] per step
    dh_next = np.zeros_like(hbuf[0]) if dhT is None else dhT.astype(hbuf.dtype, copy=True)
    dh, ds, tmp = np.empty_like(dh_next), np.empty_like(dh_next), np.empty_like(dh_next)
    for t in range(steps - 1, -1, -1):
        np.add(dhs[t], dh_next, out=dh)
        np.multiply(dh, b_n[t], out=dpre[t, :, 2 * h :])
        np.matmul(dpre[t, :, 2 * h :], w_n, out=ds)
        np.multiply(ds, b_r[t], out=dpre[t, :, :h])
        np.multiply(dh, b_z[t], out=dpre[t, :, h : 2 * h])
        np.matmul(dpre[t, :, : 2 * h], w_rz, out=dh_next)
        np.multiply(dh, z[t], out=tmp)
        dh_next += tmp
        np.multiply(ds, r[t], out=tmp)
        dh_next += tmp
    dw_rz, db = _recurrent_weight_grads(dpre[..., : 2 * h], hbuf)
    dw_n = np.matmul(dpre[..., 2 * h :].reshape(-1, h).T, sbuf.reshape(-1, h))
    db = dpre.reshape(-1, 3 * h).sum(axis=0)
    dx, dw_ih, _ = input_projection_backward(dpre, cache["x"], cache["weight_ih"])
    return dx, dh_next, (dw_ih, np.concatenate([dw_rz, dw_n]), db, db.copy())


# --------------------------------------------------------------------------- minGRU, minLSTM (Feng et al. 2024)


def _sigmoid(a: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-a))


def _g(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """g(k) = k + 1/2 (k >= 0), sigmoid(k) (k < 0), and its derivative, 1 or sigmoid(k)(1 - sigmoid(k)).
    g is continuous at 0 (1/2 from both sides) but has a kink there (slope 1 against 1/4)."""
    s = _sigmoid(k)
    positive = k >= 0
    return np.where(positive, k + 0.5, s), np.where(positive, 1.0, s * (1 - s)).astype(k.dtype)


def min_coefficients(kind: str, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, Cache]:
    """(a, b) of h_t = a_t h_{t-1} + b_t from the projections k (T, N, G*H), and what the backward needs.

    minGRU:  z = sigmoid(k_z);  a = 1 - z;  b = z g(k_h)
    minLSTM: f, i = sigmoid(k_f), sigmoid(k_i);  a = f / (f + i);  b = i / (f + i) g(k_h)
    """
    parts = np.split(k, MIN_GATES[kind], axis=-1)
    gk, dg = _g(parts[-1])
    if kind == "mingru":
        z = _sigmoid(parts[0])
        return 1 - z, z * gk, {"z": z, "gk": gk, "dg": dg}
    f, i = _sigmoid(parts[0]), _sigmoid(parts[1])
    total = f + i
    return f / total, i / total * gk, {"f": f, "i": i, "total": total, "gk": gk, "dg": dg}


def min_rnn_forward(
    kind: str, x: np.ndarray, h0: np.ndarray, weight_ih: np.ndarray, bias_ih: np.ndarray
) -> tuple[np.ndarray, np.ndarray, Cache]:
    """minGRU/minLSTM layer over a window: one input projection, the coefficients for the whole
    window at once (they do not depend on h), then the linear recurrence h_t = a_t h_{t-1} + b_t
    (element-wise: the loop has no matrix product). x (T, N, D) floats or (T, N) ids, h0 (N, H)."""
    k = input_projection(x, weight_ih, bias_ih)
    a, b, parts = min_coefficients(kind, k)
    hbuf = np.empty((x.shape[0] + 1,) + h0.shape, dtype=k.dtype)
    hbuf[0] = h0
    for t in range(x.shape[0]):
        np.multiply(a[t], hbuf[t], out=hbuf[t + 1])
        hbuf[t + 1] += b[t]
    cache = {"kind": kind, "x": x, "a": a, "hbuf": hbuf, "parts": parts, "weight_ih": weight_ih}
    return hbuf[1:], hbuf[-1], cache


def min_rnn_backward(
    dhs: np.ndarray, cache: Cache, dhT: np.ndarray | None = None
) -> tuple[np.ndarray | None, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Backward through the scan and the coefficients. The scan h_t = a_t h_{t-1} + b_t run
    backwards is again a linear recurrence, in the gradients:

        dh_t = dhs_t + a_{t+1} dh_{t+1};   da_t = dh_t h_{t-1};   db_t = dh_t;   dh_0 = a_1 dh_1

    then through the coefficients (no recurrence, whole window):
      minGRU:  dz = -da + db g;  dk_z = dz z (1 - z);  dk_h = db z g'
      minLSTM: with s = f + i and c = i / s:  dc = db g;  df = (da - dc) i / s^2;
               di = (dc - da) f / s^2;  dk_f = df f (1 - f);  dk_i = di i (1 - i);  dk_h = db c g'
    Returns dx, dh0, (dW_ih, db_ih).
    """
    a, hbuf, p = cache["a"], cache["hbuf"], cache["parts"]
    dh_all = np.empty_like(a)
    dh_next = np.zeros_like(hbuf[0]) if dhT is None else dhT.astype(hbuf.dtype, copy=True)
    for t in range(a.shape[0] - 1, -1, -1):
        np.add(dhs[t], dh_next, out=dh_all[t])
        np.multiply(dh_all[t], a[t], out=dh_next)
    da, db = dh_all * hbuf[:-1], dh_all
    if cache["kind"] == "mingru":
        z = p["z"]
        dk = np.concatenate([(db * p["gk"] - da) * z * (1 - z), db * z * p["dg"]], axis=-1)
    else:
        f, i, total = p["f"], p["i"], p["total"]
        dc = db * p["gk"]
        diff = (da - dc) / (total * total)
        dk = np.concatenate([diff * i * f * (1 - f), -diff * f * i * (1 - i), db * (i / total) * p["dg"]], axis=-1)
    dx, dw_ih, db_ih = input_projection_backward(dk, cache["x"], cache["weight_ih"])
    return dx, dh_next, (dw_ih, db_ih)
