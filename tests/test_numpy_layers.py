"""Each hand-written layer against a reference: np.add.at, dense one-hot products, and PyTorch."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import rel

from rnnkit.models import numpy_layers as L

T, N, D, H = 5, 3, 4, 6


pytestmark = pytest.mark.usefixtures("one_thread")


def test_embedding_lookup_and_scatter_add():
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((7, D))
    idx = rng.integers(0, 7, (T, N))
    idx[0, 0] = idx[1, 1] = 2  # repeated ids must add up
    assert np.array_equal(L.embedding_forward(weight, idx), weight[idx])
    dout = rng.standard_normal((T, N, D))
    expected = np.zeros_like(weight)
    np.add.at(expected, idx, dout)
    got = L.embedding_backward(dout, idx, 7)
    assert got.shape == (7, D)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)
    assert L.embedding_backward(dout.astype(np.float32), idx, 7).dtype == np.float32


def test_scatter_add_for_a_large_vocabulary():
    """Above the one-hot-product size the backward is a sorted segment sum; same result."""
    rng = np.random.default_rng(10)
    vocab = L.ONE_HOT_SCATTER_MAX_VOCAB * 3
    idx = rng.integers(0, vocab // 4, (T, N))  # most rows get nothing, some get several
    dout = rng.standard_normal((T, N, D)).astype(np.float32)
    expected = np.zeros((vocab, D), dtype=np.float32)
    np.add.at(expected, idx, dout)
    got = L.embedding_backward(dout, idx, vocab)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_one_hot_projection_is_a_column_gather():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 7, (T, N))
    onehot = L.one_hot(ids, 7, np.float64)
    assert onehot.shape == (T, N, 7) and np.array_equal(onehot.argmax(-1), ids)
    assert np.array_equal(onehot.sum(-1), np.ones((T, N)))
    w, b = rng.standard_normal((4 * H, 7)), rng.standard_normal(4 * H)
    np.testing.assert_allclose(L.input_projection(ids, w, b), L.input_projection(onehot, w, b), rtol=1e-13)
    dproj = rng.standard_normal((T, N, 4 * H))
    dx_ids, dw_ids, db_ids = L.input_projection_backward(dproj, ids, w)
    _, dw_dense, db_dense = L.input_projection_backward(dproj, onehot, w)
    assert dx_ids is None
    np.testing.assert_allclose(dw_ids, dw_dense, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db_ids, db_dense, rtol=1e-12)


def test_affine_matches_torch():
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((T, N, D)), rng.standard_normal((5, D)), rng.standard_normal(5)
    dy = rng.standard_normal((T, N, 5))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = F.linear(tx, tw, tb)
    ty.backward(torch.tensor(dy))
    assert rel(L.affine_forward(x, w, b), ty.detach().numpy()) < 1e-14
    dx, dw, db = L.affine_backward(dy, x, w)
    for mine, theirs in ((dx, tx), (dw, tw), (db, tb)):
        assert rel(mine, theirs.grad.numpy()) < 1e-13


def test_softmax_cross_entropy_matches_torch():
    rng = np.random.default_rng(3)
    logits, targets = rng.standard_normal((T, N, 11)) * 3, rng.integers(0, 11, (T, N))
    loss, dlogits = L.softmax_cross_entropy(logits, targets)
    tl = torch.tensor(logits, requires_grad=True)
    tloss = F.cross_entropy(tl.reshape(-1, 11), torch.tensor(targets).reshape(-1))
    tloss.backward()
    assert abs(loss - tloss.item()) < 1e-13
    assert dlogits.shape == logits.shape and rel(dlogits, tl.grad.numpy()) < 1e-12
    np.testing.assert_allclose(
        L.log_softmax(logits), F.log_softmax(torch.tensor(logits), -1).numpy(), rtol=1e-13, atol=1e-13
    )
    assert L.softmax_cross_entropy(logits, targets, grad=False) == (loss, None)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[[1e4, -1e4, 0.0], [-3e4, 3e4, 3e4]]], dtype=np.float32)
    targets = np.array([[0, 1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, no division by zero
        loss, dlogits = L.softmax_cross_entropy(logits, targets)
        logp = L.log_softmax(logits)
    assert loss == pytest.approx(np.log(2) / 2, rel=1e-6)  # first row certain, second a coin toss
    assert np.isfinite(dlogits).all() and np.isfinite(logp).all()


def test_inverted_dropout():
    rng = np.random.default_rng(4)
    x = np.ones((200, 50), dtype=np.float32)
    y, mask = L.dropout_forward(x, 0.25, rng)
    assert y.dtype == np.float32 and set(np.unique(mask)) == {0.0, np.float32(1 / 0.75)}
    assert abs((mask > 0).mean() - 0.75) < 0.02  # keeps a fraction 1 - p ...
    assert abs(y.mean() - 1.0) < 0.03  # ... scaled so the expectation is unchanged
    dy = rng.standard_normal(x.shape).astype(np.float32)
    assert np.array_equal(L.dropout_backward(dy, mask), dy * mask)
    same, none = L.dropout_forward(x, 0.0, rng)
    assert same is x and none is None and L.dropout_backward(dy, None) is dy
    again, _ = L.dropout_forward(x, 0.25, np.random.default_rng(4))
    assert np.array_equal(again, y)  # the masks come from the generator given, nothing else


def torch_cell(kind):
    if kind == "lstm":
        return torch.nn.LSTM(D, H, dtype=torch.float64)
    if kind == "gru":
        return torch.nn.GRU(D, H, dtype=torch.float64)
    return torch.nn.RNN(D, H, nonlinearity="relu" if kind == "rnn_relu" else "tanh", dtype=torch.float64)


def run_numpy_cell(kind, x, h0, c0, w):
    """Forward and the backward of sum(hs * dhs) + sum(hT * dhT) [+ sum(cT * dcT)]."""
    if kind == "lstm":
        hs, (h_t, c_t), cache = L.lstm_forward(x, h0, c0, *w)
        return hs, h_t, c_t, lambda dhs, dhT, dcT: L.lstm_backward(dhs, cache, dhT, dcT)
    if kind == "gru":
        hs, h_t, cache = L.gru_forward(x, h0, *w)
        return hs, h_t, None, lambda dhs, dhT, dcT: L.gru_backward(dhs, cache, dhT)
    act = "relu" if kind == "rnn_relu" else "tanh"
    hs, h_t, cache = L.rnn_forward(x, h0, *w, nonlinearity=act)
    return hs, h_t, None, lambda dhs, dhT, dcT: L.rnn_backward(dhs, cache, dhT)


@pytest.mark.parametrize("kind", ["rnn", "rnn_relu", "gru", "lstm"])
def test_cell_forward_and_backward_match_torch(kind):
    rng = np.random.default_rng(5)
    cell = torch_cell(kind)
    w = [getattr(cell, f"{n}_l0").detach().numpy().copy() for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    x, h0, c0 = rng.standard_normal((T, N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    dhs, dhT, dcT = rng.standard_normal((T, N, H)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    hs, h_t, c_t, backward = run_numpy_cell(kind, x, h0, c0, w)
    dx, dstate, (dw_ih, dw_hh, db_ih, db_hh) = backward(dhs, dhT, dcT)

    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    if kind == "lstm":
        out, (th, tc) = cell(tx, (th0[None], tc0[None]))
        objective = (
            (out * torch.tensor(dhs)).sum() + (th[0] * torch.tensor(dhT)).sum() + (tc[0] * torch.tensor(dcT)).sum()
        )
    else:
        out, th = cell(tx, th0[None])
        objective = (out * torch.tensor(dhs)).sum() + (th[0] * torch.tensor(dhT)).sum()
    objective.backward()

    assert rel(hs, out.detach().numpy()) < 1e-12 and rel(h_t, th[0].detach().numpy()) < 1e-12
    dh0 = dstate[0] if kind == "lstm" else dstate
    pairs = [
        (dx, tx.grad),
        (dh0, th0.grad),
        (dw_ih, cell.weight_ih_l0.grad),
        (dw_hh, cell.weight_hh_l0.grad),
        (db_ih, cell.bias_ih_l0.grad),
        (db_hh, cell.bias_hh_l0.grad),
    ]
    if kind == "lstm":
        assert rel(c_t, tc[0].detach().numpy()) < 1e-12
        pairs.append((dstate[1], tc0.grad))
    for mine, theirs in pairs:
        assert rel(mine, theirs.numpy()) < 1e-10


@pytest.mark.parametrize("kind", ["rnn", "rnn_relu", "gru", "lstm"])
def test_cells_in_float32_track_float64(kind):
    rng = np.random.default_rng(6)
    w64 = [rng.uniform(-0.4, 0.4, s) for s in ((4 * H, D), (4 * H, H), (4 * H,), (4 * H,))]
    g = {"lstm": 4, "gru": 3}.get(kind, 1)
    w64 = [a[: g * H] for a in w64]
    x, h0, c0 = rng.standard_normal((T, N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    hs64, *_ = run_numpy_cell(kind, x, h0, c0, w64)
    hs32, *_ = run_numpy_cell(kind, *(a.astype(np.float32) for a in (x, h0, c0)), [a.astype(np.float32) for a in w64])
    assert hs32.dtype == np.float32
    assert np.abs(hs32 - hs64).max() < 1e-5


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_saturated_gates_stay_finite_and_silent(kind):
    """Huge pre-activations: exp overflows to inf by design, and 1 / (1 + inf) = 0 exactly."""
    rng = np.random.default_rng(7)
    g = 4 if kind == "lstm" else 3
    w = [rng.standard_normal((g * H, D)) * 1e3, rng.standard_normal((g * H, H)) * 1e3, np.zeros(g * H), np.zeros(g * H)]
    w = [a.astype(np.float32) for a in w]
    x = rng.standard_normal((T, N, D)).astype(np.float32)
    h0 = np.zeros((N, H), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hs, *_ = run_numpy_cell(kind, x, h0, h0, w)
    assert np.isfinite(hs).all() and np.abs(hs).max() <= 1.0 + 1e-6
