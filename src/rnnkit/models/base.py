"""The scoring seam: what `evaluate`, `generate` and `compare` need from any language model.

The torch engine, the NumPy engine and the baselines (n-gram, HMM) each implement this, so the
code that walks a token stream, counts nats and bits, and samples text is written only once.
Arrays at the seam are NumPy: idx and targets int64 (N, T); log-probabilities float64 (N, V).
The one exception is `score_batch`, which takes the int64 torch tensors the evaluation batches
(data.eval_batches) hold, so that a torch model can keep its running total on its device.

The neural models share one more contract, for training and for the studies that look inside
them (diagnostics, gradcheck):

    logits, loss, state = model(idx, targets=None, state=None)

idx and targets (N, T) int64; logits (N, T, V); loss the mean cross-entropy in nats per token
(None without targets); state the recurrent state after the window (None in: zeros). The torch
RNNLM (models/torch_lm.py) takes and returns torch tensors; the NumPy model (models/numpy_lm.py)
takes and returns NumPy arrays and a float loss, and its `forward` (which also returns the cache
its hand-written backward needs) is the lower-level call training uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, SupportsFloat, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

    from ..config import ModelConfig

TopK = tuple[np.ndarray, np.ndarray]  # (ids int64 (N, T, k), log-probabilities float64 (N, T, k)), best first


def top_k_of(logprobs: np.ndarray, k: int) -> TopK:
    """The k largest entries along the last axis of (..., V) log-probabilities, best first."""
    k = min(k, logprobs.shape[-1])
    ids = np.argpartition(-logprobs, k - 1, axis=-1)[..., :k]  # the k best, unordered: O(V)
    values = np.take_along_axis(logprobs, ids, axis=-1)
    order = np.argsort(-values, axis=-1, kind="stable")
    return (
        np.take_along_axis(ids, order, axis=-1).astype(np.int64),
        np.take_along_axis(values, order, axis=-1).astype(np.float64),
    )


class Scorer(Protocol):
    vocab_size: int

    def initial_state(self, batch_size: int) -> Any:
        """The state before any token has been read (zeros for RNNs, empty context for n-grams)."""

    def score(self, idx: np.ndarray, targets: np.ndarray, state: Any) -> tuple[float, Any]:
        """Total negative log-likelihood in nats of `targets` given `idx` (N, T), and the new state."""

    def score_batch(self, idx: torch.Tensor, targets: torch.Tensor, state: Any) -> tuple[SupportsFloat, Any]:
        """`score` for int64 tensors (N, T) on the CPU, returning a total that need not be read yet:
        anything that adds with `+` to a float and to itself, and gives the nats with `float()`.
        The torch scorer returns a 0-d tensor on its device (a whole evaluation then waits for the
        GPU once, at the final `float`); the others return a float (see NumpyScoring)."""

    def next_logprobs(self, idx: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """Log-probabilities (N, V) of the token after idx[:, -1], having read idx (N, T); new state."""

    def token_logprobs(
        self, idx: np.ndarray, targets: np.ndarray, state: Any, top_k: int = 0
    ) -> tuple[np.ndarray, TopK | None, Any]:
        """Per-token log-probabilities float64 (N, T) of `targets` given `idx` (N, T), the `top_k`
        most likely tokens at each position (None when top_k is 0), and the new state: what
        `score` sums, kept token by token (score.py reports it)."""

    def select_state(self, state: Any, rows: np.ndarray) -> Any:
        """The state of batch rows `rows` (int64, repeats allowed), in that order: beam search
        carries the states of the continuations it keeps."""

    def join_states(self, states: list[Any]) -> Any:
        """One state holding the rows of `states` in order (each a state of this scorer): a server
        decodes the requests of several clients in one batch."""


_Model = TypeVar("_Model", bound="TorchModel")


class TorchModel(Protocol):
    """A torch model of any neural kind, as TorchScorer, import/export_weights and the torch engine
    use it: RNNLM (nn.RNN/GRU/LSTM and the Cho GRU), MinRNNLM (minGRU/minLSTM) and MLPLM are all
    nn.Modules with their ModelConfig, PyTorch's parameter names and the contract above. A Protocol
    cannot say "an nn.Module that also has ...", so the nn.Module methods those helpers call are
    listed too."""

    config: ModelConfig

    def __call__(self, idx: torch.Tensor, targets: torch.Tensor | None = None, state: Any = None) -> Any:
        """(logits, loss, state): the model contract."""

    def nll(self, idx: torch.Tensor, targets: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """(summed cross-entropy in nats of `targets`, a 0-d tensor; the new state)."""

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> Any: ...

    def num_parameters(self) -> int: ...

    # nn.Module's
    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...

    def get_parameter(self, target: str) -> torch.nn.Parameter: ...

    def state_dict(self) -> dict[str, Any]: ...

    def to(self: _Model, device: torch.device | str) -> _Model: ...

    def train(self: _Model, mode: bool = True) -> _Model: ...

    def eval(self: _Model) -> _Model: ...

    def requires_grad_(self: _Model, requires_grad: bool = True) -> _Model: ...


class NumpyScoring:
    """`Scorer.score_batch` for scorers that compute in NumPy: the tensors become host arrays
    and the total is a float."""

    def score_batch(self, idx: torch.Tensor, targets: torch.Tensor, state: Any) -> tuple[float, Any]:
        return self.score(idx.cpu().numpy(), targets.cpu().numpy(), state)  # type: ignore[attr-defined]
