"""A neural n-gram: the feed-forward language model of Bengio, Ducharme, Vincent & Jauvin (2003).

No hidden state carries the past: each prediction sees the previous K tokens only (the input
token and the K-1 before it), looked up in a shared embedding, concatenated, and passed through
`layers` tanh hidden layers and a softmax over the vocabulary:

    x_t = [C(w_{t-K+1}); ...; C(w_t)]                 (N, T, K*D)   oldest first
    a_t = tanh(W_1 x_t + b_1), a'_t = tanh(W_2 a_t + b_2), ...        (N, T, H)
    logits_t = U a_t + c                              (N, T, V)     predicts w_{t+1}

(Bengio et al.'s optional direct connections from x_t to the output are left out.) Before the
start of a text there are no tokens to read: those positions hold an extra embedding row, id V,
"before the text", learned like the others. So the embedding has V+1 rows and the head V.

The scoring seam's state is what such a model has instead of a hidden state: the last K tokens
read, time-major (K, N) int64 (the batch on axis 1, like every recurrent state here), starting
as K copies of V. Windows of a stream then continue exactly where the last one stopped, so
evaluation, generation and TBPTT-style batching need nothing special.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError


class MLPLM(nn.Module):
    """Contract: `logits, loss, state = model(idx, targets=None, state=None)` (models/base.py)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.vocab_size < 1:
            raise ConfigError("ModelConfig.vocab_size must be set (from the tokenizer) before building a model")
        if config.context is None or config.context < 1:
            raise ConfigError("the mlp model needs a context of K >= 1 previous tokens")
        self.config = config
        V, D, H, K = config.vocab_size, config.embed, config.hidden, config.context
        self.context, self.start_id = K, V  # id V: "before the text"
        self.embed = nn.Embedding(V + 1, D)
        self.hidden = nn.ModuleList(nn.Linear(K * D if k == 0 else H, H) for k in range(config.layers))
        assert config.dropout is not None  # resolved in ModelConfig.__post_init__
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(H, V)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Nothing read yet: K copies of the "before the text" id, (K, N)."""
        return torch.full(
            (self.context, batch_size), self.start_id, dtype=torch.long, device=device or self.head.weight.device
        )

    def contexts(self, idx: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(windows (N, T, K): the K tokens ending at each input position, oldest first; new state).

        With the state's K tokens before the window, stream = [s_1..s_K, x_1..x_T]; the window at
        position t ends at x_t, i.e. stream[t+1 : t+1+K] (1-based t), the unfold's windows 1..T."""
        if state is None:
            state = self.initial_state(idx.size(0), idx.device)
        stream = torch.cat([state.t(), idx], dim=1)  # (N, K+T)
        windows = stream.unfold(1, self.context, 1)[:, 1:]  # (N, T, K)
        return windows, stream[:, -self.context :].t().contiguous()

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, state: torch.Tensor | None = None):
        windows, state = self.contexts(idx, state)
        N, T, K = windows.shape
        x = self.drop(self.embed(windows).reshape(N, T, -1))  # concatenated, oldest first
        for layer in self.hidden:
            x = self.drop(torch.tanh(layer(x)))
        logits = self.head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))
        return logits, loss, state

    def nll(self, idx: torch.Tensor, targets: torch.Tensor, state: torch.Tensor | None = None):
        """Summed negative log-likelihood (nats) of `targets`, and the new state."""
        logits, _, state = self(idx, state=state)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), reduction="sum"), state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
