"""Forward and backward passes of a recurrent language model, written by hand in NumPy.

One function per equation, each with its backward beside it, so the code can be read next to
the math and checked against finite differences (`rnnkit.gradcheck`) and against PyTorch.

Shapes: N batch, T time, D input size, H hidden size, V vocabulary size, G gates per cell
(1 for the plain RNN, 3 for the GRU, 4 for the LSTM).

Layout: every sequence array here is *time-major*, (T, N, ...). The time loop takes one step
at a time, and a time-major step `a[t]` is a contiguous (N, ...) block, which is what BLAS and
the element-wise kernels want. The model converts from and to batch-first (N, T) at its edges.

Weights follow PyTorch exactly: weight_ih (G*H, D), weight_hh (G*H, H), bias_ih and bias_hh
(G*H,), gates stacked in PyTorch's order (LSTM i, f, g, o; GRU r, z, n).

Speed rules followed by every cell:
  * the input projection x W_ih^T for the whole window is ONE matrix product (a gather for
    one-hot inputs), before the loop;
  * each step does ONE matrix product h W_hh^T for all gates together;
  * buffers for the whole window are allocated once, and steps write into them with out=;
  * whatever does not depend on the recurrence (activation derivatives, weight gradients) is
    computed for the whole window at once, outside the loop;
  * gate nonlinearities cost one exp per step (see `_lstm_gate_prescale`): NumPy's exp is about
    twice as fast as its tanh, and the sign flips are folded into the weights once per window.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Cache = dict[str, Any]


# --------------------------------------------------------------------------- embeddings, one-hot


def embedding_forward(weight: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Embedding lookup x[t, n] = E[idx[t, n]].  weight (V, D), idx (T, N) ints -> (T, N, D)."""
    return np.take(weight, idx, axis=0)


ONE_HOT_SCATTER_MAX_VOCAB = 128  # below this, the scatter-add is done as a (V, M) x (M, D) product


def embedding_backward(dout: np.ndarray, idx: np.ndarray, num_embeddings: int) -> np.ndarray:
    """Gradient of the lookup: dE[v] = sum of dout[t, n] over the positions where idx[t, n] = v.

    dout (T, N, D), idx (T, N) -> dE (V, D). A token seen k times receives k rows: a scatter-add.
    np.add.at and np.bincount do it element by element; instead, for a small vocabulary it is
    the product onehot(idx)^T dout (BLAS, a few flops per element), and for a large one a
    segment sum: sort the positions by id and add each run of equal ids with one reduceat.
    """
    dim = dout.shape[-1]
    rows, ids = dout.reshape(-1, dim), idx.reshape(-1)
    if num_embeddings <= ONE_HOT_SCATTER_MAX_VOCAB:
        onehot_t = np.zeros((num_embeddings, ids.size), dtype=dout.dtype)
        onehot_t[ids, np.arange(ids.size)] = 1
        return np.matmul(onehot_t, rows)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    grad = np.zeros((num_embeddings, dim), dtype=dout.dtype)
    grad[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return grad


def one_hot(idx: np.ndarray, num_classes: int, dtype: Any = np.float32) -> np.ndarray:
    """One-hot vectors e_idx: (T, N) ints -> (T, N, V) with a single 1 per row.

    The cells never build these: for x = e_v, W x is column v of W, a gather (see
    `input_projection`). This function is the reference that statement is tested against.
    """
    out = np.zeros(idx.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, idx[..., None], 1, axis=-1)
    return out


# --------------------------------------------------------------------------- affine maps


def affine_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """y = x W^T + b.  x (..., Din), weight (Dout, Din), bias (Dout,) -> (..., Dout)."""
    y = np.matmul(x.reshape(-1, x.shape[-1]), weight.T)
    if bias is not None:
        y += bias
    return y.reshape(x.shape[:-1] + (weight.shape[0],))


def affine_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of y = x W^T + b: dx = dy W, dW = dy^T x, db = sum of dy over all rows."""
    dy2 = dy.reshape(-1, dy.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    dx = np.matmul(dy2, weight).reshape(x.shape)
    return dx, np.matmul(dy2.T, x2), dy2.sum(axis=0)


def input_projection(x: np.ndarray, weight_ih: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """P = x W_ih^T + b for the whole window in one product: (T, N, D) -> (T, N, G*H).

    x may also be integer token ids (T, N), meaning one-hot inputs of size D = V: then
    W_ih e_v is column v of W_ih, so the product is a row gather from W_ih^T (no V-wide matmul).
    """
    if np.issubdtype(x.dtype, np.integer):
        proj = np.take(weight_ih.T, x, axis=0)
        proj += bias
        return proj
    return affine_forward(x, weight_ih, bias)


def input_projection_backward(
    dproj: np.ndarray, x: np.ndarray, weight_ih: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Backward of `input_projection`: returns dx (None for token ids), dW_ih (G*H, D), db (G*H,)."""
    if np.issubdtype(x.dtype, np.integer):
        # dW_ih[:, v] = sum of dP[t, n] where x[t, n] = v: the embedding scatter, transposed
        dw = embedding_backward(dproj, x, weight_ih.shape[1]).T
        return None, np.ascontiguousarray(dw), dproj.reshape(-1, dproj.shape[-1]).sum(axis=0)
    return affine_backward(dproj, x, weight_ih)


# --------------------------------------------------------------------------- vanilla RNN


def rnn_forward(
    x: np.ndarray,
    h0: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray,
    bias_hh: np.ndarray,
    nonlinearity: str = "tanh",
) -> tuple[np.ndarray, np.ndarray, Cache]:
    """Elman RNN over a window: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh | relu.

    x (T, N, D) floats or (T, N) ids, h0 (N, H) -> hs (T, N, H) (all h_t), h_T (N, H), cache.
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    steps = x.shape[0]
    pre = input_projection(x, weight_ih, bias_ih + bias_hh)  # both biases sit outside the loop
    hbuf = np.empty((steps + 1,) + h0.shape, dtype=pre.dtype)  # hbuf[t] = h_{t-1}; hbuf[0] = h0
    hbuf[0] = h0
    whh_t = weight_hh.T
    tmp = np.empty_like(h0, dtype=pre.dtype)
    for t in range(steps):
        np.matmul(hbuf[t], whh_t, out=tmp)
        a = pre[t]
        a += tmp
        if nonlinearity == "tanh":
            np.tanh(a, out=hbuf[t + 1])
        else:
            np.maximum(a, 0, out=hbuf[t + 1])
    cache = {
        "x": x,
        "pre": pre,
        "hbuf": hbuf,
        "weight_ih": weight_ih,
        "weight_hh": weight_hh,
        "nonlinearity": nonlinearity,
    }
    return hbuf[1:], hbuf[-1], cache


def rnn_backward(
    dhs: np.ndarray, cache: Cache, dhT: np.ndarray | None = None
) -> tuple[np.ndarray | None, np.ndarray, tuple[np.ndarray, ...]]:
    """BPTT for `rnn_forward`. dhs (T, N, H) = dL/dh_t from above; dhT = dL/dh_T from outside.

    With a_t the pre-activation: da_t = (dhs_t + dh_{t+1 -> t}) * act'(a_t), the recurrent part
    dh_{t -> t-1} = da_t W_hh; then dW_hh = sum_t da_t^T h_{t-1}, db = sum_t da_t.
    Returns dx, dh0, (dW_ih, dW_hh, db_ih, db_hh).
    """
    hbuf, w_hh = cache["hbuf"], cache["weight_hh"]
    hs = hbuf[1:]
    # act'(a) from the output: tanh' = 1 - h^2, relu' = [h > 0]; whole window at once
    deriv = 1 - hs * hs if cache["nonlinearity"] == "tanh" else (hs > 0).astype(hs.dtype)
    dpre = np.empty_like(hs)
    dh_next = np.zeros_like(hs[0]) if dhT is None else dhT.astype(hs.dtype, copy=True)
    dh = np.empty_like(dh_next)
    for t in range(hs.shape[0] - 1, -1, -1):
        np.add(dhs[t], dh_next, out=dh)
        np.multiply(dh, deriv[t], out=dpre[t])
        np.matmul(dpre[t], w_hh, out=dh_next)
    dw_hh, db = _recurrent_weight_grads(dpre, hbuf)
    dx, dw_ih, _ = input_projection_backward(dpre, cache["x"], cache["weight_ih"])
    return dx, dh_next, (dw_ih, dw_hh, db, db.copy())


# --------------------------------------------------------------------------- LSTM


def _lstm_gate_prescale(hidden: int, dtype: Any) -> np.ndarray:
    """Column factors [-1, -1, -2, -1] (per gate block i, f, g, o) for the one-exp activation.

    sigmoid(a) = 1 / (1 + exp(-a)) and tanh(a) = 2 sigmoid(2a) - 1. With the pre-activations
    multiplied by these factors (folded into the projection and W_hh, not done per step),
    s = 1 / (1 + exp(.)) is sigmoid for i, f, o, and 2 s - 1 turns the g block into tanh:
    one exp call for all four gates (exp is about twice as fast as tanh in NumPy).
    """
    pre = np.full(4 * hidden, -1.0, dtype=dtype)
    pre[2 * hidden : 3 * hidden] = -2.0
    return pre


def _fold_scaling(steps: int, rows: int, hidden: int) -> bool:
    """Whether a cell's per-gate scaling of W_hh h (by -1 or -2: the exp trick) goes into a scaled
    copy of W_hh, made once per window (G*H*H products), or onto each step's product W_hh h
    (T*N*G*H products). Folding pays for a long window; a short one (generation reads one token
    per call: T = N = 1) scales the product instead. Scaling by -1 or -2 is exact in floating point,
    so both orders give the same numbers."""
    return steps * rows >= hidden


def lstm_forward(
    x: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray,
    bias_hh: np.ndarray,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], Cache]:
    """LSTM over a window (PyTorch gate order i, f, g, o):

        [a_i a_f a_g a_o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
        i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g)
        c_t = f * c_{t-1} + i * g;         h_t = o * tanh(c_t)

    x (T, N, D) floats or (T, N) ids; h0, c0 (N, H) -> hs (T, N, H), (h_T, c_T), cache.
    """
    steps, h = x.shape[0], h0.shape[-1]
    acts = input_projection(x, weight_ih, bias_ih + bias_hh)  # (T, N, 4H); becomes the gates
    pre = _lstm_gate_prescale(h, acts.dtype)
    acts *= pre  # the exp trick's pre-scaling, once for the whole window ...
    fold = _fold_scaling(steps, h0.shape[0], h)
    whh_t = (weight_hh * pre[:, None]).T if fold else weight_hh.T  # ... and into W_hh, or after it
    hbuf = np.empty((steps + 1,) + h0.shape, dtype=acts.dtype)  # hbuf[t] = h_{t-1}
    cbuf = np.empty_like(hbuf)  # cbuf[t] = c_{t-1}
    tanh_c = np.empty_like(hbuf[1:])  # tanh(c_t), kept for h_t and for the backward pass
    hbuf[0], cbuf[0] = h0, c0
    tmp, ig = np.empty_like(acts[0]), np.empty_like(hbuf[0])
    with np.errstate(over="ignore"):  # exp(+large) = inf is fine: 1 / (1 + inf) = 0 exactly
        for t in range(steps):
            a = acts[t]
            np.matmul(hbuf[t], whh_t, out=tmp)
            if not fold:
                tmp *= pre
            a += tmp
            np.exp(a, out=a)
            a += 1
            np.reciprocal(a, out=a)  # [i, f, sigmoid(2 a_g), o]
            g = a[:, 2 * h : 3 * h]
            g *= 2
            g -= 1  # tanh(a_g)
            np.multiply(a[:, h : 2 * h], cbuf[t], out=cbuf[t + 1])  # f * c_{t-1}
            np.multiply(a[:, :h], g, out=ig)  # i * g
            cbuf[t + 1] += ig
            np.tanh(cbuf[t + 1], out=tanh_c[t])
            np.multiply(a[:, 3 * h :], tanh_c[t], out=hbuf[t + 1])
    cache = {
        "x": x,
        "acts": acts,
        "hbuf": hbuf,
        "cbuf": cbuf,
        "tanh_c": tanh_c,
        "weight_ih": weight_ih,
        "weight_hh": weight_hh,
    }
    return hbuf[1:], (hbuf[-1], cbuf[-1]), cache


def _lstm_local_derivatives(cache: Cache) -> tuple[np.ndarray, np.ndarray]:
    """The parts of the LSTM backward that need no recurrence, for the whole window at once.

    K_t = dh_t -> dc_t factor = o * (1 - tanh(c_t)^2); and A_t (T, N, 4H) such that
    da_{i,f,g} = dc_t * A_{i,f,g} and da_o = dh_t * A_o, where
    A_i = g * i(1-i),  A_f = c_{t-1} * f(1-f),  A_g = i * (1-g^2),  A_o = tanh(c_t) * o(1-o).
    """
    acts, tanh_c, c_prev = cache["acts"], cache["tanh_c"], cache["cbuf"][:-1]
    h = tanh_c.shape[-1]
    i, _, g, o = (acts[..., k * h : (k + 1) * h] for k in range(4))
    coef = np.subtract(1, acts)  # in-place steps below: no window-sized temporaries
    coef *= acts  # sigmoid'(a) = s (1 - s) for i, f, o ...
    coef_g = coef[..., 2 * h : 3 * h]
    np.multiply(g, g, out=coef_g)
    np.subtract(1, coef_g, out=coef_g)  # ... and tanh'(a) = 1 - g^2 for g
    coef[..., :h] *= g
    coef[..., h : 2 * h] *= c_prev
    coef_g *= i
    coef[..., 3 * h :] *= tanh_c
    k_c = np.multiply(tanh_c, tanh_c)
    np.subtract(1, k_c, out=k_c)
    k_c *= o
    return k_c, coef


def lstm_backward(
    dhs: np.ndarray, cache: Cache, dhT: np.ndarray | None = None, dcT: np.ndarray | None = None
) -> tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, ...]]:
    """BPTT for `lstm_forward`; dhs (T, N, H) from above, dhT/dcT from outside the window.

    Going back in time: dh = dhs_t + dh_next; dc = dc_next + dh * o (1 - tanh(c_t)^2);
    da = [dc A_i, dc A_f, dc A_g, dh A_o]; dc_next = dc * f; dh_next = da W_hh.
    Returns dx, (dh0, dc0), (dW_ih, dW_hh, db_ih, db_hh).
    """
    hbuf, acts, w_hh = cache["hbuf"], cache["acts"], cache["weight_hh"]
    steps, n, h = cache["tanh_c"].shape
    k_c, coef = _lstm_local_derivatives(cache)
    coef_ifg = coef[..., : 3 * h].reshape(steps, n, 3, h)
    forget = acts[..., h : 2 * h]
    dpre = np.empty_like(acts)
    dpre_ifg = dpre[..., : 3 * h].reshape(steps, n, 3, h)  # a view: writes land in dpre
    dh_next = np.zeros_like(hbuf[0]) if dhT is None else dhT.astype(hbuf.dtype, copy=True)
    dc = np.zeros_like(hbuf[0]) if dcT is None else dcT.astype(hbuf.dtype, copy=True)
    dh, tmp = np.empty_like(dh_next), np.empty_like(dh_next)
    for t in range(steps - 1, -1, -1):
        np.add(dhs[t], dh_next, out=dh)
        np.multiply(dh, k_c[t], out=tmp)
        dc += tmp
        np.multiply(dc[:, None, :], coef_ifg[t], out=dpre_ifg[t])  # i, f, g together
        np.multiply(dh, coef[t, :, 3 * h :], out=dpre[t, :, 3 * h :])  # o
        dc *= forget[t]
        np.matmul(dpre[t], w_hh, out=dh_next)
    dw_hh, db = _recurrent_weight_grads(dpre, hbuf)
    dx, dw_ih, _ = input_projection_backward(dpre, cache["x"], cache["weight_ih"])
    return dx, (dh_next, dc), (dw_ih, dw_hh, db, db.copy())


# --------------------------------------------------------------------------- GRU


def gru_forward(
    x: np.ndarray,
    h0: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray,
    bias_hh: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, Cache]:
    """GRU over a window (PyTorch gate order r, z, n):

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr);   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h' = (1 - z) * n + z * h

    x (T, N, D) floats or (T, N) ids, h0 (N, H) -> hs (T, N, H), h_T, cache.
    """
    steps, h = x.shape[0], h0.shape[-1]
    acts = input_projection(x, weight_ih, bias_ih)  # (T, N, 3H), becomes [r, z, n]
    acts[..., : 2 * h] += bias_hh[: 2 * h]  # b_hr, b_hz are plain sums; b_hn stays inside r * (.)
    # sigmoid(a) = 1 / (1 + exp(-a)): negate the r, z pre-activations once for the whole window
    # and in the recurrent weights, so each step needs no negation
    np.negative(acts[..., : 2 * h], out=acts[..., : 2 * h])
    fold = _fold_scaling(steps, h0.shape[0], h)
    if fold:
        whh_t = weight_hh.copy()
        whh_t[: 2 * h] *= -1
        whh_t = whh_t.T
    else:
        whh_t = weight_hh.T
    b_hn = bias_hh[2 * h :]
    hbuf = np.empty((steps + 1,) + h0.shape, dtype=acts.dtype)
    hbuf[0] = h0
    ghbuf = np.empty_like(acts)  # h W_hh^T per step; its n part (W_hn h + b_hn) is kept for backward
    tmp = np.empty_like(hbuf[0])
    with np.errstate(over="ignore"):  # exp(+large) = inf is fine: 1 / (1 + inf) = 0 exactly
        for t in range(steps):
            a, gh = acts[t], ghbuf[t]
            np.matmul(hbuf[t], whh_t, out=gh)
            if not fold:
                np.negative(gh[:, : 2 * h], out=gh[:, : 2 * h])
            gh[:, 2 * h :] += b_hn
            rz = a[:, : 2 * h]
            rz += gh[:, : 2 * h]
            np.exp(rz, out=rz)
            rz += 1
            np.reciprocal(rz, out=rz)  # [r, z]
            np.multiply(a[:, :h], gh[:, 2 * h :], out=tmp)  # r * (W_hn h + b_hn)
            a[:, 2 * h :] += tmp
            np.tanh(a[:, 2 * h :], out=a[:, 2 * h :])  # n
            # h' = n + z * (h - n), the same as (1 - z) n + z h with one product fewer
            np.subtract(hbuf[t], a[:, 2 * h :], out=hbuf[t + 1])
            hbuf[t + 1] *= a[:, h : 2 * h]
            hbuf[t + 1] += a[:, 2 * h :]
    cache = {
        "x": x,
        "acts": acts,
        "hbuf": hbuf,
        "ghn": ghbuf[..., 2 * h :],
        "weight_ih": weight_ih,
        "weight_hh": weight_hh,
    }
    return hbuf[1:], hbuf[-1], cache


def gru_backward(
    dhs: np.ndarray, cache: Cache, dhT: np.ndarray | None = None
) -> tuple[np.ndarray | None, np.ndarray, tuple[np.ndarray, ...]]:
    """BPTT for `gru_forward`. With dh the total gradient on h_t:

        da_n = dh (1 - z)(1 - n^2)            (input side of n; the hidden side gets da_n * r)
        da_z = dh (h_{t-1} - n) z (1 - z);   da_r = da_n (W_hn h + b_hn) r (1 - r)
        dh_{t-1} = dh z + [da_r, da_z, da_n r] W_hh

    Returns dx, dh0, (dW_ih, dW_hh, db_ih, db_hh).
    """
    acts, hbuf, ghn, w_hh = cache["acts"], cache["hbuf"], cache["ghn"], cache["weight_hh"]
    steps, _, h = ghn.shape
    r, z, n = (acts[..., k * h : (k + 1) * h] for k in range(3))
    b_n = (1 - z) * (1 - n * n)  # everything without the recurrence, whole window at once
    b_z = (hbuf[:-1] - n) * z * (1 - z)
    b_r = ghn * r * (1 - r)
    dgh = np.empty_like(acts)  # gradient on h W_hh^T + b_hh, per step
    dan = np.empty_like(hbuf[1:])  # gradient on the input side of n
    dh_next = np.zeros_like(hbuf[0]) if dhT is None else dhT.astype(hbuf.dtype, copy=True)
    dh, tmp = np.empty_like(dh_next), np.empty_like(dh_next)
    for t in range(steps - 1, -1, -1):
        np.add(dhs[t], dh_next, out=dh)
        np.multiply(dh, b_n[t], out=dan[t])
        np.multiply(dan[t], r[t], out=dgh[t, :, 2 * h :])
        np.multiply(dan[t], b_r[t], out=dgh[t, :, :h])
        np.multiply(dh, b_z[t], out=dgh[t, :, h : 2 * h])
        np.matmul(dgh[t], w_hh, out=dh_next)
        np.multiply(dh, z[t], out=tmp)
        dh_next += tmp
    dw_hh, db_hh = _recurrent_weight_grads(dgh, hbuf)
    dgx = np.concatenate([dgh[..., : 2 * h], dan], axis=-1)  # r, z gradients are shared
    dx, dw_ih, db_ih = input_projection_backward(dgx, cache["x"], cache["weight_ih"])
    return dx, dh_next, (dw_ih, dw_hh, db_ih, db_hh)


# --------------------------------------------------------------------------- shared helpers


def _recurrent_weight_grads(dpre: np.ndarray, hbuf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dW_hh = sum_t dpre_t^T h_{t-1} and db = sum_t dpre_t: one product over the whole window."""
    g = dpre.shape[-1]
    d2 = dpre.reshape(-1, g)
    return np.matmul(d2.T, hbuf[:-1].reshape(-1, hbuf.shape[-1])), d2.sum(axis=0)


# --------------------------------------------------------------------------- output, loss, dropout


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax(z)_v = z_v - max(z) - log sum_u exp(z_u - max(z)), stable for any logits."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(
    logits: np.ndarray, targets: np.ndarray, grad: bool = True
) -> tuple[float, np.ndarray | None]:
    """Mean cross-entropy L = -(1/M) sum_m log softmax(z_m)[y_m] over all M = N*T positions.

    logits (..., V), targets (...) ints. Returns L (a float, summed in float64) and, if grad,
    dL/dz = (softmax(z) - onehot(y)) / M with the logits' shape and dtype.
    """
    vocab = logits.shape[-1]
    z = logits.reshape(-1, vocab)
    y = targets.reshape(-1)
    rows = np.arange(y.size)
    shifted = z - z.max(axis=1, keepdims=True)  # max-shift: exp never overflows
    probs = np.exp(shifted)
    sumexp = probs.sum(axis=1)
    loss = float(np.log(sumexp).sum(dtype=np.float64) - shifted[rows, y].sum(dtype=np.float64)) / y.size
    if not grad:
        return loss, None
    probs /= sumexp[:, None]
    probs[rows, y] -= 1
    probs *= 1.0 / y.size
    return loss, probs.reshape(logits.shape)


def dropout_forward(x: np.ndarray, p: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverted dropout y = x * m / (1 - p), m ~ Bernoulli(1 - p), so E[y] = x and eval is identity.

    Returns y and the scaled mask m / (1 - p) (None when p = 0).
    """
    if p <= 0:
        return x, None
    mask = rng.random(x.shape, dtype=np.float64 if x.dtype == np.float64 else np.float32) >= p
    scaled = np.multiply(mask, 1.0 / (1.0 - p), dtype=x.dtype)
    return x * scaled, scaled


def dropout_backward(dy: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """dx = dy * m / (1 - p): the same scaled mask as the forward pass."""
    return dy if mask is None else dy * mask
