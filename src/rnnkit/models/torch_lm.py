"""The PyTorch engine: one RNNLM over nn.RNN / nn.GRU / nn.LSTM (cuDNN on GPU).

    x_t = E[idx_t]            (or one-hot(idx_t) when embed == 0)        (N, T, D)
    h_t = cell(x_t, h_{t-1})  L stacked layers, dropout between them     (N, T, H)
    logits_t = W h_t + b      W shared with E when tied                  (N, T, V)

Parameter names (`embed.weight`, `rnn.weight_ih_l0`, ..., `head.weight`, `head.bias`) are the
NumPy engine's too, so checkpoints move between engines.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
CELLS = {"rnn": (nn.RNN, {"nonlinearity": "tanh"}), "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}),
         "gru": (nn.GRU, {}), "lstm": (nn.LSTM, {})}


class RNNLM(nn.Module):
    """Contract: `logits, loss, state = model(idx, targets=None, state=None)`."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.vocab_size < 1:
            raise ConfigError("ModelConfig.vocab_size must be set (from the tokenizer) before building a model")
        self.config = config
        V, D, H = config.vocab_size, config.embed, config.hidden
        self.embed = nn.Embedding(V, D) if D > 0 else None
        cell, options = CELLS[config.model]
        self.rnn = cell(D or V, H, num_layers=config.layers, batch_first=True,
                        dropout=config.dropout if config.layers > 1 else 0.0, **options)
        self.drop = nn.Dropout(config.dropout)
        self.head = adaptive_head(H, V, config.cutoffs) if config.adaptive_softmax else nn.Linear(H, V)
        if config.tie:
            self.head.weight = self.embed.weight  # Press & Wolf (2017): one matrix for input and output

    def inputs(self, idx: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            return self.embed(idx)
        return F.one_hot(idx, self.config.vocab_size).to(self.rnn.weight_hh_l0.dtype)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                state: State | None = None) -> tuple[torch.Tensor, torch.Tensor | None, State]:
        x = self.inputs(idx)
        if self.embed is not None:  # no dropout on one-hot rows (as in the NumPy engine)
            x = self.drop(x)
        hidden, state = self.rnn(x, state)
        out = self.drop(hidden)
        if self.config.adaptive_softmax:
            return self._adaptive(out, targets, state)
        logits = self.head(out)
        loss = None
        if targets is not None:
            # mean nats per token; the softmax in fp32 even under bf16 autocast
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))
        return logits, loss, state

    def _adaptive(self, out: torch.Tensor, targets: torch.Tensor | None, state: State):
        """Adaptive softmax: with targets only their log-probabilities are computed (the point of
        it), so `logits` is None; without targets, full log-probabilities stand in for logits."""
        N, T, H = out.shape
        if targets is None:
            return self.head.log_prob(out.reshape(-1, H).float()).view(N, T, -1), None, state
        result = self.head(out.reshape(-1, H).float(), targets.reshape(-1))
        return None, result.loss, state

    def nll(self, idx: torch.Tensor, targets: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Summed negative log-likelihood (nats) of `targets`; no full softmax for an adaptive head."""
        if self.config.adaptive_softmax:
            _, loss, state = self(idx, targets, state)
            return loss * targets.numel(), state
        logits, _, state = self(idx, state=state)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                               reduction="sum"), state

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        weight = self.rnn.weight_hh_l0
        shape = (self.config.layers, batch_size, self.config.hidden)
        zeros = torch.zeros(shape, dtype=weight.dtype, device=device or weight.device)
        return (zeros, zeros.clone()) if self.config.model == "lstm" else zeros

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # shared (tied) tensors counted once


def adaptive_head(hidden: int, vocab: int, cutoffs: tuple[int, ...] | None) -> nn.Module:
    """nn.AdaptiveLogSoftmaxWithLoss with clusters at `cutoffs` (default V/5 and V/2): ids are
    frequency-ranked by the Vocab, so the head cluster holds the frequent words."""
    cutoffs = tuple(cutoffs) if cutoffs else tuple(c for c in (vocab // 5, vocab // 2) if 0 < c < vocab)
    if vocab < 100 or not cutoffs or cutoffs[-1] >= vocab - 1 or len(set(cutoffs)) != len(cutoffs):
        raise ConfigError(f"adaptive softmax cutoffs {cutoffs} do not fit a vocabulary of {vocab}; "
                          "it needs a vocabulary of at least 100 tokens and cutoffs below it")
    return nn.AdaptiveLogSoftmaxWithLoss(hidden, vocab, list(cutoffs), div_value=4.0)


def detach_state(state: State | None) -> State | None:
    """Cut the graph at a window boundary (truncated BPTT) while keeping the values."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)  # type: ignore[return-value]
    return state.detach()


def state_rows(state: State, rows: slice | list[int]) -> State:
    if isinstance(state, tuple):
        return tuple(s[:, rows] for s in state)  # type: ignore[return-value]
    return state[:, rows]


class TorchScorer:
    """The scoring seam (see models/base.py) over an RNNLM: no gradients, eval mode."""

    def __init__(self, model: RNNLM, device: torch.device | str = "cpu", amp: bool = False):
        self.model, self.device = model, torch.device(device)
        self.vocab_size = model.config.vocab_size
        self.amp = amp and self.device.type == "cuda"

    def initial_state(self, batch_size: int) -> State:
        return self.model.initial_state(batch_size, self.device)

    def _forward(self, idx: Any, state: State) -> tuple[torch.Tensor, State]:
        self.model.eval()
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.device)
        with torch.no_grad(), torch.autocast("cuda", torch.bfloat16, enabled=self.amp):
            logits, _, state = self.model(idx, state=state)
        return logits.float(), state

    def score(self, idx: Any, targets: Any, state: State) -> tuple[float, State]:
        nll, state = self.score_tensor(idx, targets, state)
        return float(nll), state

    def score_tensor(self, idx: Any, targets: Any, state: State) -> tuple[torch.Tensor, State]:
        """Like `score` but leaves the sum on the device (no host sync per window)."""
        self.model.eval()
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.device)
        targets = torch.as_tensor(targets, dtype=torch.long).to(self.device, non_blocking=True)
        with torch.no_grad(), torch.autocast("cuda", torch.bfloat16, enabled=self.amp):
            return self.model.nll(idx, targets, state)

    def next_logprobs(self, idx: Any, state: State) -> tuple[np.ndarray, State]:
        logits, state = self._forward(idx, state)
        return torch.log_softmax(logits[:, -1].double(), dim=-1).cpu().numpy(), state


def export_weights(model: RNNLM) -> dict[str, torch.Tensor]:
    """Named weights for safetensors; a tied head is stored once, as `embed.weight`."""
    weights = dict(model.state_dict())
    if model.config.tie:
        weights.pop("head.weight", None)
    return weights


def import_weights(model: RNNLM, weights: dict[str, torch.Tensor]) -> None:
    """Load named weights, checking that names and shapes match the model exactly."""
    from ..errors import CheckpointError

    expected = export_weights(model)
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"weights do not fit this model: missing {missing or 'none'}, "
                              f"unexpected {unexpected or 'none'}")
    for name, tensor in weights.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(f"weight {name} has shape {tuple(tensor.shape)}, the model expects "
                                  f"{tuple(expected[name].shape)}")
    with torch.no_grad():
        for name, tensor in weights.items():
            expected[name].copy_(tensor)
