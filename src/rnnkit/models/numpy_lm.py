"""A recurrent language model in plain NumPy: embedding (or one-hot) -> L recurrent layers -> head.

Every gradient is computed by hand from `numpy_layers`; nothing here uses autograd. Parameter
names and layouts are PyTorch's (`embed.weight`, `rnn.weight_ih_l0`, ..., `head.weight`), so a
state dict can be copied to or from a torch model built of nn.Embedding, nn.RNN/GRU/LSTM and
nn.Linear, and the tests check both engines agree to float64 rounding.

Public arrays are batch-first like the scoring seam (idx, targets (N, T); logits (N, T, V));
inside, sequences are time-major (T, N, ...) because the recurrence walks over time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..config import ModelConfig
from . import numpy_cells as cells
from . import numpy_layers as layers
from .base import NumpyScoring, top_k_of

GATES = {"rnn": 1, "rnn_relu": 1, "gru": 3, "lstm": 4, "mingru": 2, "minlstm": 3}
RECURRENT_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
INPUT_ONLY_WEIGHTS = ("weight_ih", "bias_ih")  # minGRU, minLSTM: the gates never read h_{t-1}

State = Any  # np.ndarray (L*dirs, N, H), or a tuple (h, c) of those for the LSTM


class NumpyRNNLM(NumpyScoring):
    """Recurrent LM with hand-written forward and backward passes (see module docstring)."""

    def __init__(
        self, config: ModelConfig, *, dtype: Any = np.float32, seed: int = 0, bidirectional: bool = False
    ) -> None:
        if config.model not in GATES:
            raise ValueError(f"model must be one of {', '.join(GATES)}, got {config.model!r}")
        if config.vocab_size < 1:
            raise ValueError("config.vocab_size must be set (> 0) before building the model")
        if config.tie and config.embed != (2 if bidirectional else 1) * config.hidden:
            raise ValueError("tie needs embed equal to the head's input size (hidden, or 2*hidden when bidirectional)")
        if not np.issubdtype(np.dtype(dtype), np.floating):
            raise ValueError(f"dtype must be a float type (float32 to train, float64 to check), got {dtype}")
        self.config = config
        self.dtype = np.dtype(dtype)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.vocab_size = config.vocab_size
        self.kind = config.model
        self.hidden = config.hidden
        self.num_layers = config.layers
        assert config.dropout is not None  # resolved in ModelConfig.__post_init__
        self.dropout = float(config.dropout)
        self.weight_names = INPUT_ONLY_WEIGHTS if self.kind in cells.MIN_GATES else RECURRENT_WEIGHTS
        self._rng = np.random.default_rng(seed + 1)  # dropout masks when the caller gives no rng
        self.params: dict[str, np.ndarray] = self._init_params(np.random.default_rng(seed))

    # ------------------------------------------------------------------ parameters

    def _suffixes(self, layer: int) -> list[str]:
        return [f"_l{layer}" + ("_reverse" if d else "") for d in range(self.num_directions)]

    def _init_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """PyTorch's default initialisation: N(0, 1) embedding, U(-1/sqrt(fan), 1/sqrt(fan)) else."""
        cfg, h, g = self.config, self.hidden, GATES[self.kind]
        params: dict[str, np.ndarray] = {}
        if cfg.embed > 0:
            params["embed.weight"] = rng.standard_normal((self.vocab_size, cfg.embed))
        bound = 1.0 / np.sqrt(h)
        for k in range(self.num_layers):
            d_in = (cfg.embed or self.vocab_size) if k == 0 else self.num_directions * h
            for sfx in self._suffixes(k):
                shapes = {"weight_ih": (g * h, d_in), "weight_hh": (g * h, h), "bias_ih": (g * h,), "bias_hh": (g * h,)}
                for name in self.weight_names:
                    params[f"rnn.{name}{sfx}"] = rng.uniform(-bound, bound, shapes[name])
        fan_in = self.num_directions * h
        head_bound = 1.0 / np.sqrt(fan_in)
        if not cfg.tie:
            params["head.weight"] = rng.uniform(-head_bound, head_bound, (self.vocab_size, fan_in))
        params["head.bias"] = rng.uniform(-head_bound, head_bound, self.vocab_size)
        return {name: value.astype(self.dtype) for name, value in params.items()}

    @property
    def head_weight(self) -> np.ndarray:
        """The output matrix (V, H), or (V, 2H) bidirectional: `embed.weight` itself when tied."""
        return self.params["embed.weight" if self.config.tie else "head.weight"]

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter, by PyTorch name."""
        return {name: value.copy() for name, value in self.params.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Copy parameters in (in place, cast to the model dtype); names and shapes must match.

        With tied weights a `head.weight` entry equal to `embed.weight` is accepted and skipped:
        torch's state_dict lists a shared tensor under both names.
        """
        state = dict(state)
        if self.config.tie and "head.weight" in state and "embed.weight" in state:
            if not np.array_equal(np.asarray(state["head.weight"]), np.asarray(state["embed.weight"])):
                raise ValueError(
                    "the model ties head.weight to embed.weight, but the state dict holds two different matrices"
                )
            del state["head.weight"]
        missing = sorted(set(self.params) - set(state))
        unexpected = sorted(set(state) - set(self.params))
        if missing or unexpected:
            raise ValueError(
                f"state dict does not match the model: missing {missing or 'none'}, unexpected {unexpected or 'none'}"
            )
        arrays = {}
        for name, value in state.items():
            array = np.asarray(value)
            if array.shape != self.params[name].shape:
                raise ValueError(
                    f"parameter {name} has shape {array.shape}, the model expects {self.params[name].shape}"
                )
            if not np.issubdtype(array.dtype, np.floating):
                raise ValueError(f"parameter {name} must hold floats, got dtype {array.dtype}")
            arrays[name] = array
        for name, array in arrays.items():  # all checked first: a bad dict changes nothing
            self.params[name][...] = array

    # ------------------------------------------------------------------ state

    def initial_state(self, batch_size: int) -> State:
        """Zeros of shape (L*dirs, N, H); a pair (h, c) of them for the LSTM."""
        shape = (self.num_layers * self.num_directions, batch_size, self.hidden)
        if self.kind == "lstm":
            return np.zeros(shape, self.dtype), np.zeros(shape, self.dtype)
        return np.zeros(shape, self.dtype)

    def _check_state(self, state: State, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
        if state is None:
            state = self.initial_state(batch_size)
        shape = (self.num_layers * self.num_directions, batch_size, self.hidden)
        if self.kind == "lstm":
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise ValueError("an LSTM state is a pair (h, c)")
            h, c = (np.asarray(s, dtype=self.dtype) for s in state)
        else:
            h, c = np.asarray(state, dtype=self.dtype), None
        for part in (h,) if c is None else (h, c):
            if part.shape != shape:
                raise ValueError(f"state has shape {part.shape}, expected {shape}")
        return h, c

    def _check_idx(self, idx: Any, name: str = "idx") -> np.ndarray:
        idx = np.asarray(idx)
        if idx.ndim != 2 or idx.shape[1] < 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"{name} must be an integer array (N, T) with T >= 1, got {idx.dtype} {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.vocab_size):
            raise ValueError(f"{name} holds ids outside [0, {self.vocab_size})")
        return idx

    # ------------------------------------------------------------------ forward

    def _fuse_embedding(self, dropout: float, ids: np.ndarray) -> bool:
        """Whether the first layer should project the vocabulary instead of the window.

        W_ih E[v]^T = (W_ih E^T)[:, v]: with no dropout between the lookup and the first layer,
        embedding + input projection is a one-hot layer with weight W_ih E^T (G*H, V). That
        costs V*D*G*H flops instead of T*N*D*G*H, and its backward is one scatter of the gate
        gradients plus two small products. Worth it when V is small against D and the window.
        """
        embed = self.config.embed
        return embed > 0 and dropout == 0 and self.vocab_size <= min(3 * embed, ids.size)

    def forward(
        self, idx: np.ndarray, state: State = None, train: bool = False, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, State, dict]:
        """Logits (N, T, V) for every position, the state after the window, and the cache.

        idx (N, T) ints; state as `initial_state` (None = zeros). Dropout (inverted, rate
        config.dropout) on the embedding output, between layers and on the last layer's output,
        only when train is true; masks come from rng (default: the model's own generator).
        The logits are a batch-first view of the time-major array kept in the cache.
        """
        idx = self._check_idx(idx)
        h0, c0 = self._check_state(state, idx.shape[0])
        p = self.dropout if train else 0.0
        rng = rng if rng is not None else self._rng
        ids = np.ascontiguousarray(idx.T)  # (T, N), time-major from here on
        fused = self._fuse_embedding(p, ids)
        cache: dict[str, Any] = {"ids": ids, "fused": fused, "masks": [None], "layers": []}
        if self.config.embed > 0 and not fused:
            x, cache["masks"][0] = layers.dropout_forward(
                layers.embedding_forward(self.params["embed.weight"], ids), p, rng
            )
        else:
            x = ids  # one-hot (or fused) inputs: the first layer gathers columns of its W_ih
        finals_h, finals_c = [], []
        for k in range(self.num_layers):
            x, layer_caches, hs_final, cs_final = self._layer_forward(k, x, h0, c0, fused and k == 0)
            x, mask = layers.dropout_forward(x, p, rng)
            cache["layers"].append(layer_caches)
            cache["masks"].append(mask)
            finals_h += hs_final
            finals_c += cs_final
        cache["top"] = x
        cache["logits"] = layers.affine_forward(x, self.head_weight, self.params["head.bias"])
        new_h = np.stack(finals_h)
        new_state = (new_h, np.stack(finals_c)) if self.kind == "lstm" else new_h
        return cache["logits"].transpose(1, 0, 2), new_state, cache

    def _layer_forward(self, k: int, x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None, fused: bool):
        """One layer, both directions; the reverse direction reads and writes time backwards."""
        outs, caches, hs_final, cs_final = [], [], [], []
        for d, sfx in enumerate(self._suffixes(k)):
            w = [self.params[f"rnn.{n}{sfx}"] for n in self.weight_names]
            if fused:  # W_ih E^T (G*H, V), stored as the transpose of a contiguous (V, G*H)
                w[0] = np.matmul(self.params["embed.weight"], w[0].T).T
            s = k * self.num_directions + d  # torch's state index for (layer, direction)
            xin = x if d == 0 else x[::-1]
            if self.kind == "lstm":
                assert c0 is not None, "an LSTM state carries cells"
                hs, (h_t, c_t), cache = layers.lstm_forward(xin, h0[s], c0[s], *w)
                cs_final.append(c_t.copy())
            elif self.kind == "gru" and self.config.gru_form == "cho":
                hs, h_t, cache = cells.cho_gru_forward(xin, h0[s], *w)
            elif self.kind == "gru":
                hs, h_t, cache = layers.gru_forward(xin, h0[s], *w)
            elif self.kind in cells.MIN_GATES:
                hs, h_t, cache = cells.min_rnn_forward(self.kind, xin, h0[s], *w)
            else:
                act = "relu" if self.kind == "rnn_relu" else "tanh"
                w_ih, w_hh, b_ih, b_hh = w
                hs, h_t, cache = layers.rnn_forward(xin, h0[s], w_ih, w_hh, b_ih, b_hh, nonlinearity=act)
            outs.append(hs if d == 0 else hs[::-1])
            caches.append(cache)
            hs_final.append(h_t.copy())  # a copy: the carried state must not pin the caches
        out = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=-1)
        return out, caches, hs_final, cs_final

    # ------------------------------------------------------------------ backward

    def loss_and_grads(
        self, idx: np.ndarray, targets: np.ndarray, state: State = None, rng: np.random.Generator | None = None
    ) -> tuple[float, dict[str, np.ndarray], State]:
        """Mean cross-entropy (nats/token) over the window, its gradients, and the final state.

        Truncated BPTT: the incoming state is a constant, so no gradient crosses the window's
        start; the returned state is what the next window should start from. Runs in training
        mode (dropout on, masks from rng).
        """
        targets = self._check_idx(targets, "targets")
        if targets.shape != np.shape(idx):
            raise ValueError(f"targets {targets.shape} and idx {np.shape(idx)} must have one shape")
        _, new_state, cache = self.forward(idx, state, train=True, rng=rng)
        loss, dlogits = layers.softmax_cross_entropy(cache["logits"], targets.T)
        assert dlogits is not None  # grad=True
        return loss, self.backward(dlogits, cache), new_state

    def backward(self, dlogits: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
        """Gradients of every parameter from dL/dlogits (time-major (T, N, V)) and the cache."""
        grads: dict[str, np.ndarray] = {}
        dx: np.ndarray | None
        dx, dw_head, grads["head.bias"] = layers.affine_backward(dlogits, cache["top"], self.head_weight)
        for k in range(self.num_layers - 1, -1, -1):
            assert dx is not None, "only the first layer's input (one-hot or fused ids) has no gradient"
            dx = layers.dropout_backward(dx, cache["masks"][k + 1])
            dx = self._layer_backward(k, dx, cache["layers"][k], grads, cache["fused"] and k == 0)
        if self.config.embed > 0 and not cache["fused"]:
            assert dx is not None, "an embedding input has a gradient"
            dx = layers.dropout_backward(dx, cache["masks"][0])
            grads["embed.weight"] = layers.embedding_backward(dx, cache["ids"], self.vocab_size)
        if self.config.tie:
            grads["embed.weight"] += dw_head  # one matrix, two uses: the gradients add
        else:
            grads["head.weight"] = dw_head
        return {name: grads[name] for name in self.params}

    def _layer_backward(self, k: int, dout: np.ndarray, caches: list, grads: dict, fused: bool) -> np.ndarray | None:
        """Backward through one layer (both directions); stores its weight gradients in grads.

        Fused first layer: the cell returns dW_eff for W_eff = W_ih E^T, and the chain rule
        through that product gives dW_ih = dW_eff E and dE = dW_eff^T W_ih (summed over directions).
        """
        h = self.hidden
        dx_total = None
        for d, sfx in enumerate(self._suffixes(k)):
            dhs = dout[..., d * h : (d + 1) * h]
            if d == 1:
                dhs = dhs[::-1]
            if self.kind == "lstm":
                dx, _, wgrads = layers.lstm_backward(dhs, caches[d])
            elif self.kind == "gru" and self.config.gru_form == "cho":
                dx, _, wgrads = cells.cho_gru_backward(dhs, caches[d])
            elif self.kind == "gru":
                dx, _, wgrads = layers.gru_backward(dhs, caches[d])
            elif self.kind in cells.MIN_GATES:
                dx, _, wgrads = cells.min_rnn_backward(dhs, caches[d])
            else:
                dx, _, wgrads = layers.rnn_backward(dhs, caches[d])
            for name, g in zip(self.weight_names, wgrads, strict=True):
                grads[f"rnn.{name}{sfx}"] = g
            if fused:
                d_eff, w_ih = wgrads[0], self.params[f"rnn.weight_ih{sfx}"]
                grads[f"rnn.weight_ih{sfx}"] = np.matmul(d_eff, self.params["embed.weight"])
                d_embed = np.matmul(d_eff.T, w_ih)
                grads["embed.weight"] = d_embed + grads["embed.weight"] if d else d_embed
            if dx is not None:
                dx = dx if d == 0 else dx[::-1]
                dx_total = dx if dx_total is None else dx_total + dx
        return dx_total

    # ------------------------------------------------------------------ scoring seam

    def __call__(
        self, idx: np.ndarray, targets: np.ndarray | None = None, state: State = None
    ) -> tuple[np.ndarray, float | None, State]:
        """The neural model contract (models/base.py): logits (N, T, V), the mean cross-entropy
        in nats per token of `targets` (None without them), and the new state; evaluation mode."""
        _, new_state, cache = self.forward(idx, state)
        loss = None if targets is None else self._mean_nll(cache["logits"], targets, idx)
        return cache["logits"].transpose(1, 0, 2), loss, new_state

    def _mean_nll(self, logits: np.ndarray, targets: np.ndarray, idx: np.ndarray) -> float:
        """Mean cross-entropy of targets (N, T) under time-major logits (T, N, V)."""
        targets = self._check_idx(targets, "targets")
        if targets.shape != np.shape(idx):
            raise ValueError(f"targets {targets.shape} and idx {np.shape(idx)} must have one shape")
        # in the model's dtype (a float64 copy of (T, N, V) logits is large for word vocabularies);
        # the per-token log-probabilities are summed in float64
        mean, _ = layers.softmax_cross_entropy(logits, targets.T, grad=False)
        return mean

    def score(self, idx: np.ndarray, targets: np.ndarray, state: State = None) -> tuple[float, State]:
        """Total negative log-likelihood in nats of targets (N, T) given idx, and the new state."""
        _, loss, new_state = self(idx, targets, state)
        assert loss is not None  # targets given
        return loss * np.size(targets), new_state

    def next_logprobs(self, idx: np.ndarray, state: State = None) -> tuple[np.ndarray, State]:
        """float64 log-probabilities (N, V) of the token after idx[:, -1], and the new state."""
        _, new_state, cache = self.forward(idx, state)
        return layers.log_softmax(cache["logits"][-1].astype(np.float64)), new_state

    def token_logprobs(self, idx: np.ndarray, targets: np.ndarray, state: State = None, top_k: int = 0):
        """Per-token log p(target) (N, T) float64, the top-k (ids, log-probs) or None, new state.
        The log-softmax runs in the model's dtype, as `score`'s does."""
        targets = self._check_idx(targets, "targets")
        _, new_state, cache = self.forward(idx, state)
        logits = cache["logits"]  # time-major (T, N, V), contiguous
        # log p(y) = z_y - max z - log sum exp(z - max z), without a full log-softmax array
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_sum = np.log(np.exp(shifted).sum(axis=-1))
        chosen = (np.take_along_axis(shifted, targets.T[..., None], axis=-1)[..., 0] - log_sum).T.astype(np.float64)
        top = top_k_of((shifted - log_sum[..., None]).transpose(1, 0, 2), top_k) if top_k else None
        return chosen, top, new_state

    def select_state(self, state: State, rows: np.ndarray) -> State:
        """Rows of the batch axis (axis 1 of each (L*dirs, N, H) array)."""
        if isinstance(state, (tuple, list)):
            return tuple(part[:, rows] for part in state)
        return state[:, rows]

    def join_states(self, states: list[State]) -> State:
        """Rows side by side on the batch axis (axis 1)."""
        if isinstance(states[0], (tuple, list)):
            return tuple(np.concatenate(parts, axis=1) for parts in zip(*states, strict=True))
        return np.concatenate(states, axis=1)
