"""Every step of a recurrent layer, gates included: what nn.LSTM / nn.GRU / nn.RNN compute but
do not return (they give h_t, and c_T at the end only). Recomputed here from the layer's own
weights (`weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`), in PyTorch's gate order.

LSTM (rows of W_ih, W_hh, b_ih, b_hh in the order i, f, g, o; Hochreiter & Schmidhuber 1997,
with the forget gate of Gers et al. 2000, as in the nn.LSTM documentation):

    [a_i, a_f, a_g, a_o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    i_t = sigmoid(a_i)   f_t = sigmoid(a_f)   g_t = tanh(a_g)   o_t = sigmoid(a_o)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)

GRU (rows in the order r, z, n; Cho et al. 2014, as in the nn.GRU documentation):

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh (rnn) or relu (rnn_relu).

The input half W_ih x_t + b_ih does not depend on the state, so it is computed for every step of
a window in one matrix product; only the W_hh h_{t-1} half is stepped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .signals import GATES, SIGNAL_NAMES, SIGNALS  # noqa: F401 (what each cell exposes; torch-free)

LayerState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # (N, H), or (h, c) for the LSTM


@dataclass(frozen=True)
class LayerWeights:
    w_ih: torch.Tensor  # (G*H, D), G = 4 (LSTM), 3 (GRU), 1 (RNN)
    w_hh: torch.Tensor  # (G*H, H)
    b_ih: torch.Tensor  # (G*H,)
    b_hh: torch.Tensor  # (G*H,)

    @property
    def hidden(self) -> int:
        return self.w_hh.shape[1]


def layer_weights(rnn: nn.RNNBase, layer: int) -> LayerWeights:
    """Layer `layer`'s weights of a (multi-layer, unidirectional) nn.RNN/GRU/LSTM, zeros for absent biases."""
    w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
    zeros = torch.zeros(w_hh.shape[0], dtype=w_hh.dtype, device=w_hh.device)
    b_ih = getattr(rnn, f"bias_ih_l{layer}", None)
    b_hh = getattr(rnn, f"bias_hh_l{layer}", None)
    return LayerWeights(
        w_ih.detach(), w_hh.detach(), zeros if b_ih is None else b_ih.detach(), zeros if b_hh is None else b_hh.detach()
    )


def zero_state(kind: str, batch: int, hidden: int, dtype: torch.dtype = torch.float32) -> LayerState:
    h = torch.zeros(batch, hidden, dtype=dtype)
    return (h, h.clone()) if kind == "lstm" else h


@torch.no_grad()
def run_layer(
    kind: str, weights: LayerWeights, x: torch.Tensor, state: LayerState
) -> tuple[dict[str, torch.Tensor], LayerState]:
    """One layer over a window, step by step: ({signal: (N, T, H)}, state after the last step).

    x: (N, T, D) the layer's inputs; state: (N, H), or (h, c) for the LSTM. The signals are
    SIGNALS[kind]: h, and c, i, f, o for the LSTM, z, r for the GRU (equations in the module
    docstring)."""
    N, T, _ = x.shape
    H = weights.hidden
    projected = torch.addmm(weights.b_ih, x.reshape(N * T, -1), weights.w_ih.t()).view(N, T, -1)
    w_hh_t = weights.w_hh.t()
    out = {name: x.new_empty(T, N, H) for name in SIGNALS[kind]}  # step-major: each step writes one block
    step = STEPS[kind]
    for t in range(T):
        h_prev = state[0] if isinstance(state, tuple) else state
        recurrent = torch.addmm(weights.b_hh, h_prev, w_hh_t)
        state, values = step(projected[:, t], recurrent, state)
        for name, value in values.items():
            out[name][t] = value
    return {name: value.transpose(0, 1) for name, value in out.items()}, state


def _lstm_step(a_x: torch.Tensor, a_h: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
    a_i, a_f, a_g, a_o = (a_x + a_h).chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
    c = f * state[1] + i * g  # c_t = f_t * c_{t-1} + i_t * g_t
    h = o * torch.tanh(c)  # h_t = o_t * tanh(c_t)
    return (h, c), {"h": h, "c": c, "i": i, "f": f, "o": o}


def _gru_step(a_x: torch.Tensor, a_h: torch.Tensor, h_prev: torch.Tensor):
    x_r, x_z, x_n = a_x.chunk(3, dim=1)
    h_r, h_z, h_n = a_h.chunk(3, dim=1)  # b_hh is inside a_h: b_hn sits inside the reset product
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)  # n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    h = (1 - z) * n + z * h_prev  # h_t = (1 - z_t) * n_t + z_t * h_{t-1}
    return h, {"h": h, "z": z, "r": r}


def _tanh_step(a_x: torch.Tensor, a_h: torch.Tensor, _h_prev: torch.Tensor):
    h = torch.tanh(a_x + a_h)
    return h, {"h": h}


def _relu_step(a_x: torch.Tensor, a_h: torch.Tensor, _h_prev: torch.Tensor):
    h = torch.relu(a_x + a_h)
    return h, {"h": h}


# one step of each cell: (the input half a_x, the recurrent half a_h, the state) -> (new state, signals)
STEPS: dict[str, Callable[..., tuple[LayerState, dict[str, torch.Tensor]]]] = {
    "lstm": _lstm_step,
    "gru": _gru_step,
    "rnn": _tanh_step,
    "rnn_relu": _relu_step,
}
