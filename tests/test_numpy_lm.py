"""The NumPy LM against a PyTorch model with the same weights, the scoring seam, and a toy task."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import rel
from torch import nn

from rnnkit.config import ModelConfig
from rnnkit.models.numpy_lm import NumpyRNNLM
from rnnkit.models.numpy_optim import AdamW, clip_grad_norm

V = 11


pytestmark = pytest.mark.usefixtures("one_thread")


class TorchLM(nn.Module):
    """The reference: nn.Embedding (or one-hot) -> nn.RNN/GRU/LSTM -> nn.Linear, batch-first."""

    def __init__(self, kind, vocab, embed, hidden, layers, tie=False, bidirectional=False):
        super().__init__()
        self.vocab, self.embed_dim = vocab, embed
        if embed:
            self.embed = nn.Embedding(vocab, embed)
        kw = {"batch_first": True, "bidirectional": bidirectional}
        if kind == "lstm":
            self.rnn = nn.LSTM(embed or vocab, hidden, layers, **kw)
        elif kind == "gru":
            self.rnn = nn.GRU(embed or vocab, hidden, layers, **kw)
        else:
            self.rnn = nn.RNN(
                embed or vocab, hidden, layers, nonlinearity="relu" if kind == "rnn_relu" else "tanh", **kw
            )
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), vocab)
        if tie:
            self.head.weight = self.embed.weight

    def forward(self, idx, state):
        x = self.embed(idx) if self.embed_dim else F.one_hot(idx, self.vocab).double()
        out, state = self.rnn(x, state)
        return self.head(out), state


def make_pair(kind, layers=1, embed=6, hidden=5, tie=False, bidirectional=False):
    config = ModelConfig(dropout=0.0, model=kind, layers=layers, hidden=hidden, embed=embed, tie=tie, vocab_size=V)
    ours = NumpyRNNLM(config, dtype=np.float64, seed=3, bidirectional=bidirectional)
    theirs = TorchLM(kind, V, embed, hidden, layers, tie, bidirectional).double()
    names = dict(theirs.named_parameters())
    assert set(names) == set(ours.params)  # the same names ...
    with torch.no_grad():
        for name, p in names.items():
            assert tuple(p.shape) == ours.params[name].shape  # ... and layouts
            p.copy_(torch.from_numpy(ours.params[name]))
    return ours, theirs


def random_state(ours, batch, rng):
    zeros = ours.initial_state(batch)
    if isinstance(zeros, tuple):
        return tuple(rng.standard_normal(z.shape) * 0.5 for z in zeros)
    return rng.standard_normal(zeros.shape) * 0.5


def to_torch_state(state):
    if isinstance(state, tuple):
        return tuple(torch.from_numpy(s) for s in state)
    return torch.from_numpy(state)


PARITY = [
    (kind, layers, embed, tie, bidir)
    for kind in ("rnn", "rnn_relu", "gru", "lstm")
    for layers, embed, tie, bidir in (
        (1, 6, False, False),
        (2, 6, False, False),
        (2, 0, False, False),
        (1, 5, True, False),
        (2, 6, False, True),
        (1, 3, False, False),
    )
]


@pytest.mark.parametrize("kind,layers,embed,tie,bidirectional", PARITY)
def test_loss_gradients_and_state_match_torch_over_two_windows(kind, layers, embed, tie, bidirectional):
    ours, theirs = make_pair(kind, layers, embed, 5, tie, bidirectional)
    rng = np.random.default_rng(0)
    batch, steps = 3, 7
    state = random_state(ours, batch, rng)  # nonzero: the h0 (and c0) path matters
    tstate = to_torch_state(state)
    for _ in range(2):  # the second window starts from the carried, detached state
        idx, targets = rng.integers(0, V, (batch, steps)), rng.integers(0, V, (batch, steps))
        loss, grads, state = ours.loss_and_grads(idx, targets, state)
        theirs.zero_grad()
        logits, tnew = theirs(torch.from_numpy(idx), tstate)
        tloss = F.cross_entropy(logits.reshape(-1, V), torch.from_numpy(targets).reshape(-1))
        tloss.backward()
        assert abs(loss - tloss.item()) <= 1e-8 * abs(tloss.item())
        assert set(grads) == set(ours.params)
        for name, p in theirs.named_parameters():
            assert rel(grads[name], p.grad.numpy()) < 1e-8, name
        tstate = tuple(s.detach() for s in tnew) if kind == "lstm" else tnew.detach()
        mine_parts = state if kind == "lstm" else (state,)
        for mine, ref in zip(mine_parts, tstate if kind == "lstm" else (tstate,), strict=True):
            assert mine.shape == tuple(ref.shape) and rel(mine, ref.numpy()) < 1e-10


@pytest.mark.parametrize("embed,batch,steps,fused", [(6, 3, 7, True), (3, 3, 7, False), (6, 1, 4, False)])
def test_fused_embedding_projection_is_chosen_only_where_it_pays(embed, batch, steps, fused):
    """V <= min(3 D, N T) fuses lookup and first projection; the parity test covers both paths."""
    ours, _ = make_pair("lstm", 1, embed, 5)
    idx = np.zeros((batch, steps), dtype=np.int64)
    assert ours.forward(idx)[2]["fused"] is fused
    ours.dropout = 0.5  # dropout between lookup and layer breaks the identity: never fused
    assert ours.forward(idx, train=True)[2]["fused"] is False
    assert ours.forward(idx, train=False)[2]["fused"] is fused


def test_parameter_layout_and_initialisation():
    config = ModelConfig(dropout=0.0, model="lstm", layers=2, hidden=32, embed=16, vocab_size=50)
    model = NumpyRNNLM(config, seed=0)
    shapes = {name: p.shape for name, p in model.params.items()}
    assert shapes == {
        "embed.weight": (50, 16),
        "rnn.weight_ih_l0": (128, 16),
        "rnn.weight_hh_l0": (128, 32),
        "rnn.bias_ih_l0": (128,),
        "rnn.bias_hh_l0": (128,),
        "rnn.weight_ih_l1": (128, 32),
        "rnn.weight_hh_l1": (128, 32),
        "rnn.bias_ih_l1": (128,),
        "rnn.bias_hh_l1": (128,),
        "head.weight": (50, 32),
        "head.bias": (50,),
    }
    assert all(p.dtype == np.float32 for p in model.params.values())
    bound = 1 / np.sqrt(32)
    for name, p in model.params.items():
        if name != "embed.weight":
            assert np.abs(p).max() <= bound and np.abs(p).max() > 0.9 * bound, name
    assert 0.9 < model.params["embed.weight"].std() < 1.1  # N(0, 1)
    same = NumpyRNNLM(config, seed=0)
    other = NumpyRNNLM(config, seed=1)
    assert all(np.array_equal(same.params[k], model.params[k]) for k in model.params)
    assert not np.array_equal(other.params["rnn.weight_hh_l0"], model.params["rnn.weight_hh_l0"])
    tied = NumpyRNNLM(ModelConfig(dropout=0.0, model="gru", layers=1, hidden=8, embed=8, tie=True, vocab_size=50))
    assert "head.weight" not in tied.params and tied.head_weight is tied.params["embed.weight"]
    onehot = NumpyRNNLM(ModelConfig(dropout=0.0, model="rnn", layers=1, hidden=8, embed=0, vocab_size=50))
    assert "embed.weight" not in onehot.params and onehot.params["rnn.weight_ih_l0"].shape == (8, 50)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_bidirectional_layout(kind):
    config = ModelConfig(dropout=0.0, model=kind, layers=2, hidden=4, embed=3, vocab_size=V)
    model = NumpyRNNLM(config, bidirectional=True)
    assert model.params["rnn.weight_ih_l1_reverse"].shape[1] == 8  # layer k > 0 reads 2H
    assert model.params["head.weight"].shape == (V, 8)
    logits, state, _ = model.forward(np.zeros((2, 5), dtype=np.int64))
    assert logits.shape == (2, 5, V)
    h = state[0] if kind == "lstm" else state
    assert h.shape == (4, 2, 4)  # (layers * directions, N, H), as torch


def make_model(kind="lstm", dtype=np.float32, **kw):
    config = ModelConfig(**{"dropout": 0.0, "model": kind, "layers": 2, "hidden": 8, "embed": 6, "vocab_size": V, **kw})
    return NumpyRNNLM(config, dtype=dtype, seed=0)


@pytest.mark.parametrize("kind", ["rnn_relu", "gru", "lstm"])
def test_scoring_seam_is_consistent(kind):
    model = make_model(kind, dtype=np.float64)
    rng = np.random.default_rng(1)
    idx, targets = rng.integers(0, V, (2, 9)), rng.integers(0, V, (2, 9))
    total, state = model.score(idx, targets, model.initial_state(2))
    loss, _, _ = model.loss_and_grads(idx, targets, None)
    assert total == pytest.approx(loss * idx.size, rel=1e-12)  # sum vs mean of the same nats
    # scoring in two pieces with the state carried equals scoring in one
    first, mid = model.score(idx[:, :4], targets[:, :4], None)
    second, end = model.score(idx[:, 4:], targets[:, 4:], mid)
    assert first + second == pytest.approx(total, rel=1e-12)
    for a, b in zip(end if kind == "lstm" else (end,), state if kind == "lstm" else (state,), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    logp, _ = model.next_logprobs(idx, None)
    assert logp.dtype == np.float64 and logp.shape == (2, V)
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, rtol=1e-12)
    logits, _, _ = model.forward(idx)
    ref = logits[:, -1] - np.log(np.exp(logits[:, -1]).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(logp, ref, rtol=1e-10, atol=1e-12)
    assert model.vocab_size == V


def test_float32_model_agrees_with_float64():
    m32, m64 = make_model(dtype=np.float32), make_model(dtype=np.float64)
    rng = np.random.default_rng(2)
    idx, targets = rng.integers(0, V, (4, 12)), rng.integers(0, V, (4, 12))
    l32, g32, s32 = m32.loss_and_grads(idx, targets)
    l64, g64, _ = m64.loss_and_grads(idx, targets)
    assert abs(l32 - l64) < 1e-5 and s32[0].dtype == np.float32
    for name in g64:
        assert g32[name].dtype == np.float32 and rel(g32[name], g64[name]) < 1e-4, name


def test_dropout_only_in_training():
    model = make_model(dropout=0.5)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, V, (3, 6))
    eval1, _, _ = model.forward(idx)
    eval2, _, _ = model.forward(idx, train=False, rng=np.random.default_rng(9))
    assert np.array_equal(eval1, eval2)  # evaluation is deterministic, no masks
    train1, _, _ = model.forward(idx, train=True, rng=np.random.default_rng(9))
    train2, _, _ = model.forward(idx, train=True, rng=np.random.default_rng(9))
    train3, _, _ = model.forward(idx, train=True, rng=np.random.default_rng(10))
    assert np.array_equal(train1, train2) and not np.array_equal(train1, train3)
    assert not np.allclose(train1, eval1)
    loss, grads, _ = model.loss_and_grads(idx, idx, rng=np.random.default_rng(9))
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values())


def test_state_dict_round_trip_and_errors():
    model, other = make_model(), make_model()
    other.params["rnn.weight_hh_l1"] += 1.0
    saved = other.state_dict()
    saved["head.bias"][:] = 7.0  # a copy: editing it leaves the model alone
    assert not np.all(other.params["head.bias"] == 7.0)
    keep = model.params["head.bias"]
    model.load_state_dict(saved)
    assert model.params["head.bias"] is keep  # updated in place: optimizers keep their references
    assert np.all(model.params["head.bias"] == 7.0)
    assert np.array_equal(model.params["rnn.weight_hh_l1"], other.params["rnn.weight_hh_l1"])
    with pytest.raises(ValueError, match="missing.*rnn.bias_ih_l0"):
        model.load_state_dict({k: v for k, v in saved.items() if k != "rnn.bias_ih_l0"})
    with pytest.raises(ValueError, match="unexpected.*extra"):
        model.load_state_dict({**saved, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match="head.weight has shape"):
        model.load_state_dict({**saved, "head.weight": np.zeros((3, 3))})
    before = model.state_dict()
    with pytest.raises(ValueError):
        model.load_state_dict({**saved, "head.bias": np.zeros(V), "head.weight": np.zeros((1, 1))})
    assert all(np.array_equal(before[k], model.params[k]) for k in before)  # nothing half-loaded


def test_tied_model_loads_torch_state_dict():
    ours, theirs = make_pair("lstm", 1, 5, 5, tie=True)
    with torch.no_grad():
        theirs.embed.weight.mul_(2.0)
    state = {k: v.numpy() for k, v in theirs.state_dict().items()}
    assert "head.weight" in state  # torch lists the shared tensor twice
    ours.load_state_dict(state)
    assert np.array_equal(ours.params["embed.weight"], state["embed.weight"])
    state["head.weight"] = state["head.weight"] + 1
    with pytest.raises(ValueError, match="ties"):
        ours.load_state_dict(state)


def test_bad_inputs_raise_clear_errors():
    model = make_model()
    with pytest.raises(ValueError, match="outside"):
        model.forward(np.array([[0, V]]))
    with pytest.raises(ValueError, match=r"\(N, T\)"):
        model.forward(np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError, match="state has shape"):
        model.forward(np.zeros((2, 3), dtype=np.int64), (np.zeros((2, 3, 8)), np.zeros((2, 3, 8))))
    with pytest.raises(ValueError, match="pair"):
        model.forward(np.zeros((2, 3), dtype=np.int64), np.zeros((2, 2, 8)))
    with pytest.raises(ValueError, match="one shape"):
        model.loss_and_grads(np.zeros((2, 3), dtype=np.int64), np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="vocab_size"):
        NumpyRNNLM(ModelConfig(dropout=0.0, model="gru", vocab_size=0))


def test_learns_you_say_goodbye_and_i_say_hello():
    sentence = "you say goodbye and I say hello."
    words = sentence.replace(".", " .").split(" ")  # split on spaces, "." its own token
    assert words == ["you", "say", "goodbye", "and", "I", "say", "hello", "."]
    vocab = sorted(set(words))
    stream = np.array([vocab.index(w) for w in words * 60])
    batch, steps = 4, 10
    cols = (len(stream) - 1) // batch
    x = stream[: batch * cols].reshape(batch, cols)  # four parallel streams, read in order
    y = stream[1 : batch * cols + 1].reshape(batch, cols)
    config = ModelConfig(dropout=0.0, model="lstm", layers=1, hidden=32, embed=16, vocab_size=len(vocab))
    model, opt = NumpyRNNLM(config, seed=0), AdamW(weight_decay=0.0)
    for _epoch in range(8):
        state, losses = None, []
        for start in range(0, cols - steps + 1, steps):  # sequential windows, state carried
            loss, grads, state = model.loss_and_grads(x[:, start : start + steps], y[:, start : start + steps], state)
            clip_grad_norm(grads, 1.0)
            opt.step(model.params, grads, lr=0.02)
            losses.append(loss)
    assert np.mean(losses) < 0.05
    nll, _ = model.score(x, y, None)
    assert nll / x.size < 0.05  # nats per token over the whole text, evaluation mode
    # "say" is ambiguous alone; the state remembers who spoke
    for prefix, expected in (("you say", "goodbye"), ("and I say", "hello")):
        ids = np.array([[vocab.index(w) for w in ("hello . " + prefix).split()]])
        logp, _ = model.next_logprobs(ids, None)
        assert vocab[int(logp[0].argmax())] == expected


def test_call_keeps_the_model_contract_of_the_torch_model():
    """logits, loss, state = model(idx, targets=None, state=None), as RNNLM (models/base.py)."""
    from rnnkit.models.torch_lm import RNNLM

    config = ModelConfig(dropout=0.0, model="lstm", layers=2, hidden=6, embed=5, vocab_size=V)
    torch.manual_seed(0)
    theirs = RNNLM(config).double().eval()
    ours = NumpyRNNLM(config, dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    idx = np.random.default_rng(0).integers(0, V, (3, 7))
    targets = np.roll(idx, -1, axis=1)
    logits, loss, state = ours(idx, targets)
    expected_logits, expected_loss, expected_state = theirs(torch.as_tensor(idx), torch.as_tensor(targets))
    assert logits.shape == (3, 7, V) and rel(logits, expected_logits.detach().numpy()) < 1e-9
    assert loss == pytest.approx(float(expected_loss.detach()), rel=1e-6)  # torch takes its loss in float32
    assert rel(state[0], expected_state[0].detach().numpy()) < 1e-9
    no_loss = ours(idx, state=state)
    assert no_loss[1] is None and no_loss[0].shape == (3, 7, V)
    total, _ = ours.score(idx, targets)
    assert total == pytest.approx(loss * idx.size)
