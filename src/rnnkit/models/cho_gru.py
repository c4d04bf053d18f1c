"""The GRU as Cho et al. (2014) wrote it, with the reset gate applied *before* the recurrent product:

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr);   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)                      <- Cho 2014, d2l
    h' = (1 - z) * n + z * h

PyTorch's nn.GRU and cuDNN compute n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) instead: the
reset gate scales the product after it is taken, so all three gates' recurrent products are one
matrix product per step. Here the n product must wait for r, so each step does two products,
and no fused kernel exists for it: the loop below runs in Python, one step at a time (what
that costs: `rnnkit bench --configs char-2x512-gru --impls rnnkit,cho`; docs/concepts.md).

`ChoGRU` takes nn.GRU's constructor arguments and has its parameter names and shapes
(weight_ih_l{k} (3H, D), weight_hh_l{k} (3H, H), bias_ih_l{k}, bias_hh_l{k}; gates r, z, n), so
RNNLM uses it in place of nn.GRU (models/torch_lm.py) and checkpoints keep one layout; the
config's gru_form says which equation the weights were trained for.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def cho_gru_layer(
    proj: torch.Tensor, h: torch.Tensor, weight_hh: torch.Tensor, bias_hh: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer over a window. proj = x W_ih^T + b_ih (N, T, 3H) for the whole window (one
    product); h (N, H). Per step: one product for r, z, then one for n on r * h."""
    H = h.size(-1)
    w_rz, w_n = weight_hh[: 2 * H], weight_hh[2 * H :]
    b_rz, b_n = bias_hh[: 2 * H], bias_hh[2 * H :]
    outputs = []
    for t in range(proj.size(1)):
        p = proj[:, t]
        rz = torch.sigmoid(p[:, : 2 * H] + torch.addmm(b_rz, h, w_rz.t()))
        r, z = rz[:, :H], rz[:, H:]
        n = torch.tanh(p[:, 2 * H :] + torch.addmm(b_n, r * h, w_n.t()))
        h = n + z * (h - n)  # (1 - z) n + z h
        outputs.append(h)
    return torch.stack(outputs, dim=1), h


class ChoGRU(nn.Module):
    """A stack of Cho-form GRU layers with nn.GRU's interface (batch_first only)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        batch_first: bool = True,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        if not batch_first:
            raise ValueError("ChoGRU is batch-first only")
        self.hidden_size, self.num_layers, self.dropout = hidden_size, num_layers, dropout
        bound = 1.0 / math.sqrt(hidden_size)
        for layer in range(num_layers):
            d_in = input_size if layer == 0 else hidden_size
            for name, shape in (
                ("weight_ih", (3 * hidden_size, d_in)),
                ("weight_hh", (3 * hidden_size, hidden_size)),
                ("bias_ih", (3 * hidden_size,)),
                ("bias_hh", (3 * hidden_size,)),
            ):
                weight = torch.empty(shape, device=device)
                if weight.device.type != "meta":
                    weight.uniform_(-bound, bound)  # nn.GRU's initialisation
                self.register_parameter(f"{name}_l{layer}", nn.Parameter(weight))

    def flatten_parameters(self) -> None:
        """nn.GRU's cuDNN weight packing; nothing to pack here."""

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            state = x.new_zeros(self.num_layers, x.size(0), self.hidden_size)
        finals = []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:
                x = nn.functional.dropout(x, self.dropout, training=True)
            proj = nn.functional.linear(x, getattr(self, f"weight_ih_l{layer}"), getattr(self, f"bias_ih_l{layer}"))
            x, h = cho_gru_layer(
                proj, state[layer], getattr(self, f"weight_hh_l{layer}"), getattr(self, f"bias_hh_l{layer}")
            )
            finals.append(h)
        return x, torch.stack(finals)
