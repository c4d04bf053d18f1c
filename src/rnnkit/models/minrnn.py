"""minGRU and minLSTM (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We Needed?").

The gates read the input only, never h_{t-1}, so each layer is a *linear* recurrence

    h_t = a_t * h_{t-1} + b_t          (element-wise; a_t, b_t depend on x_t alone)

    minGRU:   z = sigmoid(k_z),  a = 1 - z,  b = z * g(k_h)
    minLSTM:  f = sigmoid(k_f), i = sigmoid(k_i),  a = f / (f + i),  b = i / (f + i) * g(k_h)

with [k_z, k_h] (or [k_f, k_i, k_h]) = W x_t + b, one product for the whole window, and
g(x) = x + 1/2 for x >= 0, sigmoid(x) below (the paper's positive activation: h stays > 0, so
log h exists). Two ways to run the same model:

* **sequential** (`sequential_scan`): the loop above, constant memory per step; used for
  generation (one token at a time) and as the reference.
* **parallel** (`parallel_scan`, training and scoring windows): Heinsen's (2023) scan in log
  space. With a*_t = sum_{s<=t} log a_s, h_t = exp(a*_t + logcumsumexp_{s<=t}(log b_s - a*_s)),
  where the carried h_0 is folded into the first term (log b_1 <- logaddexp(log b_1, log a_1 +
  log h_0)). Everything is a cumulative sum or a cumulative log-sum-exp over time: O(log T)
  depth on a GPU instead of T dependent steps. The coefficients are computed in log space
  directly (log(1 - z) = -softplus(k_z), log z = -softplus(-k_z), ...), never as the log of a
  rounded probability. For long windows a* grows like -0.7 T, and float32 loses |a*| * 6e-8 of
  relative precision to the cancellation a*_t - a*_s, so the scan runs in chunks of SCAN_CHUNK
  steps, each chunk parallel, the state carried from one chunk to the next: the two forms agree
  to 1e-5 in float32 at T = 512 for gates in the usual range, and to ~1e-4 where every gate
  saturates (|k| ~ 60, a* ~ -3800 per chunk); in float64 to 1e-5 throughout
  (tests/test_numpy_cells.py).

* **the loop with a hand-written backward** (`fused_sequential_scan`, `LinearScan`): what training
  windows use on the CPU, where a scan's O(log T) depth buys nothing on two cores and torch's
  logcumsumexp is slow; the parallel scan is kept for CUDA (`MinRNNLM.parallel` forces either).

Layers stack like the other RNNs (standard dropout between them); the state is (L, N, H).
Parameter names `rnn.weight_ih_l{k}` (G*H, D_in) and `rnn.bias_ih_l{k}` (G*H,) with G = 2
(minGRU: z, h~) or 3 (minLSTM: f, i, h~) are the NumPy engine's too (models/numpy_cells.py).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError

GATES = {"mingru": 2, "minlstm": 3}
SCAN_CHUNK = 64  # steps per parallel chunk (see the module docstring)


def log_g(k: torch.Tensor) -> torch.Tensor:
    """log g(k), g(k) = k + 1/2 (k >= 0) or sigmoid(k) (k < 0): continuous, positive, log-safe."""
    return torch.where(k >= 0, torch.log(F.relu(k) + 0.5), -F.softplus(-k))


def g(k: torch.Tensor) -> torch.Tensor:
    return torch.where(k >= 0, k + 0.5, torch.sigmoid(k))


def log_coefficients(kind: str, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log a, log b) of h_t = a_t h_{t-1} + b_t from the projections k (..., G*H), in log space."""
    parts = k.chunk(GATES[kind], dim=-1)
    if kind == "mingru":
        k_z, k_h = parts
        return -F.softplus(k_z), -F.softplus(-k_z) + log_g(k_h)  # log(1 - z), log z + log g
    k_f, k_i, k_h = parts
    # log f' = log f - log(f + i) = -softplus(log i - log f), with log f = -softplus(-k_f), ...
    diff = F.softplus(-k_f) - F.softplus(-k_i)
    return -F.softplus(diff), -F.softplus(-diff) + log_g(k_h)


def coefficients(kind: str, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) in plain space, as the paper's sequential form writes them."""
    parts = k.chunk(GATES[kind], dim=-1)
    if kind == "mingru":
        k_z, k_h = parts
        z = torch.sigmoid(k_z)
        return 1 - z, z * g(k_h)
    k_f, k_i, k_h = parts
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    return f / (f + i), i / (f + i) * g(k_h)


def sequential_scan(kind: str, k: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """h_1..h_T (N, T, H) by the loop h_t = a_t h_{t-1} + b_t; k (N, T, G*H), h0 (N, H)."""
    a, b = coefficients(kind, k)
    h, out = h0, []
    for t in range(k.size(1)):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


class LinearScan(torch.autograd.Function):
    """h_t = a_t h_{t-1} + b_t as a loop with a hand-written backward (a reverse loop of the same
    kind: g_t = dh_t + a_{t+1} g_{t+1}, da_t = g_t h_{t-1}, db_t = g_t, dh_0 = a_1 g_1), so
    autograd records two nodes instead of 2T small ones. The CPU's scan (see MinRNNLM.forward)."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        h = torch.empty_like(b)
        previous = h0
        for t in range(a.size(1)):
            previous = torch.addcmul(b[:, t], a[:, t], previous, out=h[:, t])
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx: Any, dh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, h, h0 = ctx.saved_tensors
        g = torch.empty_like(dh)
        carry = torch.zeros_like(h0)
        for t in range(a.size(1) - 1, -1, -1):
            torch.add(dh[:, t], carry, out=g[:, t])
            carry = a[:, t] * g[:, t]
        previous = torch.cat([h0.unsqueeze(1), h[:, :-1]], dim=1)
        return g * previous, g, carry


def fused_sequential_scan(kind: str, k: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """`sequential_scan` with LinearScan's hand-written backward through the loop."""
    a, b = coefficients(kind, k)
    return LinearScan.apply(a, b, h0.to(b.dtype))


def heinsen_scan(log_a: torch.Tensor, log_b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """h_1..h_T of h_t = a_t h_{t-1} + b_t from log a, log b (N, T, H) and h0 (N, H) >= 0, in log space."""
    log_h0 = torch.log(h0.clamp_min(0)).unsqueeze(1)  # -inf where h0 = 0: logaddexp ignores it
    first = torch.logaddexp(log_b[:, :1], log_a[:, :1] + log_h0)
    log_b = torch.cat([first, log_b[:, 1:]], dim=1)
    a_star = torch.cumsum(log_a, dim=1)
    return torch.exp(a_star + torch.logcumsumexp(log_b - a_star, dim=1))


def parallel_scan(kind: str, k: torch.Tensor, h0: torch.Tensor, chunk: int = SCAN_CHUNK) -> torch.Tensor:
    """The same h_1..h_T as `sequential_scan`, by Heinsen scans over chunks of `chunk` steps."""
    log_a, log_b = log_coefficients(kind, k)
    h, out = h0, []
    for start in range(0, k.size(1), chunk):
        part = heinsen_scan(log_a[:, start : start + chunk], log_b[:, start : start + chunk], h)
        out.append(part)
        h = part[:, -1]
    return out[0] if len(out) == 1 else torch.cat(out, dim=1)


class MinRNNLM(nn.Module):
    """Embedding (or one-hot) -> L minGRU/minLSTM layers -> linear head (tied if asked).
    Contract: `logits, loss, state = model(idx, targets=None, state=None)` (models/base.py)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.vocab_size < 1:
            raise ConfigError("ModelConfig.vocab_size must be set (from the tokenizer) before building a model")
        self.config, self.kind = config, config.model
        V, D, H = config.vocab_size, config.embed, config.hidden
        self.embed = nn.Embedding(V, D) if D > 0 else None
        self.rnn = nn.Module()
        bound = 1.0 / math.sqrt(H)  # PyTorch's RNN initialisation, U(-1/sqrt(H), 1/sqrt(H))
        for layer in range(config.layers):
            d_in = (D or V) if layer == 0 else H
            weight = nn.Parameter(torch.empty(GATES[self.kind] * H, d_in).uniform_(-bound, bound))
            bias = nn.Parameter(torch.empty(GATES[self.kind] * H).uniform_(-bound, bound))
            self.rnn.register_parameter(f"weight_ih_l{layer}", weight)
            self.rnn.register_parameter(f"bias_ih_l{layer}", bias)
        assert config.dropout is not None  # resolved in ModelConfig.__post_init__
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(H, V)
        if config.tie:
            assert self.embed is not None, "ModelConfig refuses tie without an embedding"
            self.head.weight = self.embed.weight
        # None: windows of 2+ tokens by the parallel log-space scan on a GPU and by the loop with its
        # hand-written backward on the CPU (there a scan's O(log T) depth buys nothing and torch's
        # logcumsumexp costs ~0.3 us an element: measured 9x slower than the loop, docs/concepts.md);
        # single tokens (generation) by the plain loop. True / False force the parallel scan / the loop.
        self.parallel: bool | None = None

    def inputs(self, idx: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            return self.drop(self.embed(idx))
        return F.one_hot(idx, self.config.vocab_size).to(self.rnn.get_parameter("weight_ih_l0").dtype)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, state: torch.Tensor | None = None):
        x = self.inputs(idx)
        if state is None:
            state = self.initial_state(idx.size(0), idx.device)
        if self.parallel is not None:
            scan = parallel_scan if self.parallel else fused_sequential_scan
        elif idx.size(1) == 1:
            scan = sequential_scan
        else:
            scan = parallel_scan if idx.device.type == "cuda" else fused_sequential_scan
        finals = []
        for layer in range(self.config.layers):
            k = F.linear(x, getattr(self.rnn, f"weight_ih_l{layer}"), getattr(self.rnn, f"bias_ih_l{layer}"))
            x = scan(self.kind, k.float() if k.dtype == torch.bfloat16 else k, state[layer].to(k.dtype)).to(x.dtype)
            finals.append(x[:, -1])
            x = self.drop(x)
        logits = self.head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))
        return logits, loss, torch.stack(finals)

    def nll(self, idx: torch.Tensor, targets: torch.Tensor, state: torch.Tensor | None = None):
        logits, _, state = self(idx, state=state)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), reduction="sum"), state

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        weight = self.rnn.get_parameter("weight_ih_l0")
        return torch.zeros(
            (self.config.layers, batch_size, self.config.hidden), dtype=weight.dtype, device=device or weight.device
        )

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
