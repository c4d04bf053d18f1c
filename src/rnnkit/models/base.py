"""The scoring seam: what `evaluate`, `generate` and `compare` need from any language model.

The torch engine, the NumPy engine and the baselines (n-gram, HMM) each implement this, so the
code that walks a token stream, counts nats and bits, and samples text is written only once.
Arrays at the seam are NumPy: idx and targets int64 (N, T); log-probabilities float64 (N, V).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Scorer(Protocol):
    vocab_size: int

    def initial_state(self, batch_size: int) -> Any:
        """The state before any token has been read (zeros for RNNs, empty context for n-grams)."""

    def score(self, idx: np.ndarray, targets: np.ndarray, state: Any) -> tuple[float, Any]:
        """Total negative log-likelihood in nats of `targets` given `idx` (N, T), and the new state."""

    def next_logprobs(self, idx: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """Log-probabilities (N, V) of the token after idx[:, -1], having read idx (N, T); new state."""

    def select_state(self, state: Any, rows: np.ndarray) -> Any:
        """The state of batch rows `rows` (int64, repeats allowed), in that order: beam search
        carries the states of the continuations it keeps."""
