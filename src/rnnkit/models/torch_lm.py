"""The PyTorch engine: one RNNLM over nn.RNN / nn.GRU / nn.LSTM (cuDNN on GPU).

    x_t = E[idx_t]            (or one-hot(idx_t) when embed == 0)        (N, T, D)
    h_t = cell(x_t, h_{t-1})  L stacked layers, dropout between them     (N, T, H)
    logits_t = W h_t + b      W shared with E when tied                  (N, T, V)

Parameter names (`embed.weight`, `rnn.weight_ih_l0`, ..., `head.weight`, `head.bias`) are the
NumPy engine's too, so checkpoints move between engines.

The AWD-LSTM regularisers (Merity, Keskar & Socher 2017, "Regularizing and Optimizing LSTM
Language Models") act in training only: embedding dropout, locked dropout on inputs, between
layers and on outputs, and weight-drop on W_hh. They never add or rename a parameter, and in
eval mode the model takes the plain path, so a regularised checkpoint scores exactly like a
plain one (in either engine). With all of them off, training takes the plain path too: one
multi-layer nn.LSTM/GRU/RNN call (cuDNN on a GPU). When on, the recurrent layers still run as
cuDNN kernels, called through `torch.func.functional_call` with dropped or per-layer weights.
"""

from __future__ import annotations

from typing import Any, cast, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..config import ModelConfig
from ..errors import ConfigError
from .base import TorchModel

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
CELLS = {
    "rnn": (nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}),
    "gru": (nn.GRU, {}),
    "lstm": (nn.LSTM, {}),
}


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
        if config.model == "gru" and config.gru_form == "cho":  # reset gate before the product: no cuDNN
            from .cho_gru import ChoGRU

            cell = ChoGRU
        self.rnn = cell(
            D or V,
            H,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
            **options,
        )
        assert config.dropout is not None  # resolved in ModelConfig.__post_init__
        self.drop = nn.Dropout(config.dropout)
        self.head = adaptive_head(H, V, config.cutoffs) if config.adaptive_softmax else nn.Linear(H, V)
        if config.tie:
            assert self.embed is not None, "ModelConfig refuses tie without an embedding"
            self.head.weight = self.embed.weight  # Press & Wolf (2017): one matrix for input and output
        self.regularized = config.regularized
        self.layerwise = config.dropout_hidden > 0 and config.layers > 1
        # one single-layer module per layer, on the meta device (no memory) and outside the module
        # tree (a plain tuple: no parameters, no state_dict entries); only ever called with this
        # model's own weights through functional_call, for locked dropout between layers
        self._layer_modules = (
            tuple(
                cell((D or V) if layer == 0 else H, H, batch_first=True, device="meta", **options)
                for layer in range(config.layers)
            )
            if self.layerwise
            else ()
        )
        self._refresh_flat_weights = False  # see features()

    def inputs(self, idx: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            return self.embed(idx)
        return F.one_hot(idx, self.config.vocab_size).to(self.rnn.weight_hh_l0.dtype)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        state: State | None = None,
        return_activations: bool = False,
    ):
        """`logits, loss, state`; with `return_activations` also `(raw, dropped)`: the last layer's
        outputs before and after output dropout, (N, T, H), for AR/TAR (see activation_penalty)."""
        raw, out, state = self.features(idx, state)
        if self.config.adaptive_softmax:
            logits, loss = self._adaptive(out, targets)
        else:
            logits, loss = self.head(out), None
            if targets is not None:
                # mean nats per token; the softmax in fp32 even under bf16 autocast
                loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))
        if return_activations:
            return logits, loss, state, (raw, out)
        return logits, loss, state

    def features(self, idx: torch.Tensor, state: State | None) -> tuple[torch.Tensor, torch.Tensor, State]:
        """(raw, dropped, state): the last layer's outputs before and after dropout, the new state."""
        x = self.inputs(idx)
        if self.training and self.regularized:
            return self._regularized_features(idx, x, state)
        if self._refresh_flat_weights:
            # on CUDA, the per-layer modules' cuDNN path moved our weights into per-layer flat
            # buffers (nn.RNNBase.flatten_parameters under functional_call); gather them into one
            # chunk again, once, so the fused kernel does not copy them at every call (CPU: no-op)
            self.rnn.flatten_parameters()
            self._refresh_flat_weights = False
        if self.embed is not None:  # no dropout on one-hot rows (as in the NumPy engine)
            x = self.drop(x)
        raw, state = self.rnn(x, state)
        return raw, self.drop(raw), state

    def _regularized_features(
        self, idx: torch.Tensor, x: torch.Tensor, state: State | None
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """Training forward with the AWD-LSTM regularisers (Merity et al. 2017, sec. 4)."""
        c = self.config
        if c.embed_dropout > 0:
            x = embedding_dropout(x, idx, c.vocab_size, c.embed_dropout)
        if c.dropout_input > 0:
            x = locked_dropout(x, c.dropout_input)
        elif self.embed is not None:
            x = self.drop(x)  # the standard --dropout, as on the plain path
        raw, state = self._recurrent(x, state)
        out = locked_dropout(raw, c.dropout_output) if c.dropout_output > 0 else self.drop(raw)
        return raw, out, state

    def _recurrent(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """The recurrent layers in training: layer by layer for locked dropout between them, else
        one multi-layer call (with the standard --dropout between layers, as on the plain path),
        with weight-dropped W_hh when weight-drop is on."""
        if self.layerwise:
            return self._layer_by_layer(x, state)
        if self.config.weight_drop > 0:
            # nn.RNNBase notices the swapped weights (_weights_have_changed) and re-flattens its own
            # when next called with them, so eval needs no help here
            weights = self._recurrent_weights(range(self.config.layers), rename=False)
            return functional_call(self.rnn, weights, (x, state))
        return self.rnn(x, state)

    def _layer_by_layer(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """Each layer as its own cuDNN call, with locked dropout between layers (Merity et al. 2017,
        sec. 4.2). Layer l runs a single-layer module on `rnn.*_l{l}` renamed to `*_l0`."""
        p, states = self.config.dropout_hidden, []
        for layer, module in enumerate(self._layer_modules):
            if layer > 0:
                x = locked_dropout(x, p)
            x, layer_state = functional_call(
                module, self._recurrent_weights([layer], rename=True), (x, state_layer(state, layer))
            )
            states.append(layer_state)
        self._refresh_flat_weights = True  # self.rnn never saw these calls: see features()
        return x, stack_layer_states(states)

    def _recurrent_weights(self, layers: Any, rename: bool) -> dict[str, torch.Tensor]:
        """This model's weights of `layers` by nn.RNN name, W_hh with weight-drop when it is on
        (Wan et al. 2013 DropConnect; Merity et al. 2017 sec. 2): one mask per forward pass, shared
        by every sequence and time step, rescaled by 1/(1-p). `rename`: as a one-layer module's."""
        p, weights = self.config.weight_drop, {}
        for layer in layers:
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                weight = getattr(self.rnn, f"{kind}_l{layer}")
                if kind == "weight_hh" and p > 0:
                    weight = F.dropout(weight, p, training=True)
                weights[f"{kind}_l{0 if rename else layer}"] = weight
        return weights

    def _adaptive(
        self, out: torch.Tensor, targets: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Adaptive softmax: with targets only their log-probabilities are computed (the point of
        it), so `logits` is None; without targets, full log-probabilities stand in for logits."""
        N, T, H = out.shape
        head = cast(nn.AdaptiveLogSoftmaxWithLoss, self.head)  # built so when config.adaptive_softmax
        if targets is None:
            return head.log_prob(out.reshape(-1, H).float()).view(N, T, -1), None
        return None, head(out.reshape(-1, H).float(), targets.reshape(-1)).loss

    def nll(self, idx: torch.Tensor, targets: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Summed negative log-likelihood (nats) of `targets`; no full softmax for an adaptive head."""
        if self.config.adaptive_softmax:
            _, loss, state = self(idx, targets, state)
            return loss * targets.numel(), state
        logits, _, state = self(idx, state=state)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), reduction="sum"), state

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        weight = self.rnn.weight_hh_l0
        shape = (self.config.layers, batch_size, self.config.hidden)
        zeros = torch.zeros(shape, dtype=weight.dtype, device=device or weight.device)
        return (zeros, zeros.clone()) if self.config.model == "lstm" else zeros

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # shared (tied) tensors counted once


def embedding_dropout(x: torch.Tensor, idx: torch.Tensor, vocab_size: int, p: float) -> torch.Tensor:
    """Embedding dropout (Gal & Ghahramani 2016, sec. 4.2; Merity et al. 2017, sec. 4.3): drop
    whole rows of the embedding matrix, i.e. every occurrence of a word type in the batch, and
    scale the kept rows by 1/(1-p). Masking the looked-up vectors x = E[idx] with the row mask
    m[idx] is the same as looking up in diag(m) E, without a V x D copy of E.  x: (N, T, D)"""
    keep = x.new_empty(vocab_size).bernoulli_(1 - p).div_(1 - p)  # (V,) one draw per word type
    return x * keep[idx].unsqueeze(-1)


def locked_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Locked (variational) dropout (Gal & Ghahramani 2016; Merity et al. 2017, sec. 4.2): one
    Bernoulli mask per sequence, the same at every time step, rescaled by 1/(1-p).  x: (N, T, F)"""
    mask = x.new_empty(x.size(0), 1, x.size(2)).bernoulli_(1 - p).div_(1 - p)  # (N, 1, F)
    return x * mask


def activation_penalty(raw: torch.Tensor, dropped: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """AR + TAR (Merity et al. 2017, sec. 4.6; Merity, McCann & Socher 2017):

        alpha * mean(dropped_t ^ 2)  +  beta * mean((raw_t - raw_{t-1}) ^ 2)

    over the last layer's outputs, `dropped` after output dropout, `raw` before.  (N, T, H) each.
    Added to the training loss only; a window of one step has no TAR term."""
    penalty = torch.zeros((), dtype=torch.float32, device=raw.device)
    if alpha > 0:
        penalty = penalty + alpha * dropped.float().pow(2).mean()
    if beta > 0 and raw.size(1) > 1:
        penalty = penalty + beta * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
    return penalty


def state_layer(state: State | None, layer: int) -> State | None:
    """Layer `layer`'s slice of a (L, N, H) state (a tuple of two for the LSTM), kept 3-D."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s[layer : layer + 1] for s in state)  # type: ignore[return-value]
    return state[layer : layer + 1]


def stack_layer_states(states: list[State]) -> State:
    if isinstance(states[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*states, strict=True))  # type: ignore[return-value]
    return torch.cat(states)  # type: ignore[arg-type]


def adaptive_head(hidden: int, vocab: int, cutoffs: tuple[int, ...] | None) -> nn.Module:
    """nn.AdaptiveLogSoftmaxWithLoss with clusters at `cutoffs` (default V/5 and V/2): ids are
    frequency-ranked by the Vocab, so the head cluster holds the frequent words."""
    cutoffs = tuple(cutoffs) if cutoffs else tuple(c for c in (vocab // 5, vocab // 2) if 0 < c < vocab)
    if vocab < 100 or not cutoffs or cutoffs[-1] >= vocab - 1 or len(set(cutoffs)) != len(cutoffs):
        raise ConfigError(
            f"adaptive softmax cutoffs {cutoffs} do not fit a vocabulary of {vocab}; "
            "it needs a vocabulary of at least 100 tokens and cutoffs below it"
        )
    return nn.AdaptiveLogSoftmaxWithLoss(hidden, vocab, list(cutoffs), div_value=4.0)


@overload
def detach_state(state: None) -> None: ...
@overload
def detach_state(state: State) -> State: ...
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
    """The scoring seam (see models/base.py) over a torch model of any kind: no gradients, eval mode."""

    def __init__(self, model: TorchModel, device: torch.device | str = "cpu", amp: bool = False):
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
        nll, state = self.score_batch(idx, targets, state)
        return float(nll), state

    def score_batch(self, idx: Any, targets: Any, state: State) -> tuple[torch.Tensor, State]:
        """Like `score` but leaves the sum on the device, a 0-d tensor (no host sync per window)."""
        self.model.eval()
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.device)
        targets = torch.as_tensor(targets, dtype=torch.long).to(self.device, non_blocking=True)
        with torch.no_grad(), torch.autocast("cuda", torch.bfloat16, enabled=self.amp):
            nll, state = self.model.nll(idx, targets, state)
        return nll, detach_state(state)

    def next_logprobs(self, idx: Any, state: State) -> tuple[np.ndarray, State]:
        logits, state = self._forward(idx, state)
        # float64 on the CPU: Apple's MPS has no float64 (and the softmax of one row per stream is cheap)
        return torch.log_softmax(logits[:, -1].cpu().double(), dim=-1).numpy(), state

    def token_logprobs(self, idx: Any, targets: Any, state: State, top_k: int = 0):
        """Per-token log p(target) (N, T) float64, the top-k (ids, log-probs) or None, new state."""
        logits, state = self._forward(idx, state)  # an adaptive head's log-probs pass through unchanged
        targets = torch.as_tensor(targets, dtype=torch.long, device=self.device)
        # the fused kernel evaluate's cross-entropy uses, per token instead of summed
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
        chosen = (-nll).view(targets.shape).double().cpu().numpy()
        top = None
        if top_k:
            logprobs = torch.log_softmax(logits, dim=-1)
            values, ids = logprobs.topk(min(top_k, logprobs.size(-1)), dim=-1)
            top = (ids.cpu().numpy(), values.double().cpu().numpy())
        return chosen, top, state

    def select_state(self, state: State, rows: np.ndarray) -> State:
        index = torch.as_tensor(rows, dtype=torch.long, device=self.device)
        if isinstance(state, tuple):  # LSTM (h, c), each (layers, N, H)
            h, c = state
            return h.index_select(1, index), c.index_select(1, index)
        return state.index_select(1, index)

    def join_states(self, states: list[State]) -> State:
        """Rows side by side on the batch axis (axis 1 of every kind's state)."""
        if isinstance(states[0], tuple):
            return tuple(torch.cat(parts, dim=1) for parts in zip(*states, strict=True))  # type: ignore[return-value]
        return torch.cat(states, dim=1)  # type: ignore[arg-type]


def export_weights(model: TorchModel) -> dict[str, torch.Tensor]:
    """Named weights for safetensors; a tied head is stored once, as `embed.weight`."""
    weights = dict(model.state_dict())
    if model.config.tie:
        weights.pop("head.weight", None)
    return weights


def import_weights(model: TorchModel, weights: dict[str, torch.Tensor]) -> None:
    """Load named weights, checking that names and shapes match the model exactly."""
    from ..errors import CheckpointError

    expected = export_weights(model)
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"weights do not fit this model: missing {missing or 'none'}, unexpected {unexpected or 'none'}"
        )
    for name, tensor in weights.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"weight {name} has shape {tuple(tensor.shape)}, the model expects {tuple(expected[name].shape)}"
            )
    with torch.no_grad():
        for name, tensor in weights.items():
            expected[name].copy_(tensor)
