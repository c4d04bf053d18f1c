"""Hidden Markov model language model: Baum-Welch by hmmlearn, scoring by our own forward pass.

A K-state HMM with initial distribution pi, transitions A (K, K) and emissions B (K, V) gives

    p(x_1..x_T) = sum_z pi(z_1) B(z_1, x_1) prod_{t>1} A(z_{t-1}, z_t) B(z_t, x_t).

The forward algorithm, normalised at every step (Rabiner 1989, eqs. 19-20, "scaling"), keeps the
predictive distribution a_t(k) = p(z_t = k | x_<t) and advances it token by token:

    p(x_t | x_<t) = sum_k a_t(k) B(k, x_t)                         (the next-token probability)
    f_t(k)        = a_t(k) B(k, x_t) / p(x_t | x_<t)               (filtered:  p(z_t | x_<=t))
    a_{t+1}       = f_t A                                          (predictive: p(z_{t+1} | x_<=t))

so log p(x_1..x_T) = sum_t log p(x_t | x_<t), and a_t is the whole state the scoring seam needs:
it is carried from one window to the next, batch-wise over rows.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import CheckpointError, ConfigError, DataError
from .base import NumpyScoring, top_k_of

# Baum-Welch cost in (state pairs x tokens x iterations) per second, measured for hmmlearn's
# "scaling" forward-backward on one core of the 2-core development machine (1.7e8-2.4e8).
_EM_OPS_PER_SECOND = 1.7e8


def estimate_fit_seconds(states: int, n_tokens: int, n_iter: int) -> float:
    """Rough Baum-Welch time: forward-backward is O(T K^2) per iteration."""
    return float(states) ** 2 * n_tokens * n_iter / _EM_OPS_PER_SECOND


def random_init(states: int, vocab_size: int, tokens: np.ndarray, seed: int = 0):
    """Starting point for Baum-Welch: (startprob (K,), transmat (K, K), emissionprob (K, V)).

    Random Dirichlet rows for pi and A; emissions are the add-one unigram frequencies times a
    random factor per entry, so the states start near the data but are not symmetric (identical
    states would stay identical under EM).
    """
    rng = np.random.default_rng(seed)
    start = rng.dirichlet(np.ones(states))
    trans = rng.dirichlet(np.ones(states), size=states)
    unigram = np.bincount(tokens, minlength=vocab_size) + 1.0
    emit = unigram[None, :] * rng.uniform(0.5, 1.5, size=(states, vocab_size))
    return start, trans, emit / emit.sum(axis=1, keepdims=True)


def _rows(a: np.ndarray) -> np.ndarray:
    """Renormalise the rows of a non-negative array; a row that sums to 0 becomes uniform."""
    s = a.sum(axis=-1, keepdims=True)
    return np.where(s > 0, a / np.where(s > 0, s, 1.0), 1.0 / a.shape[-1])


class HMMLM(NumpyScoring):
    """Categorical-emission HMM as a language model over token ids 0..V-1.

    `fit` runs Baum-Welch (hmmlearn's CategoricalHMM) on at most `max_train_tokens` tokens (the
    first ones), cut into pieces of `chunk_length` so that startprob learns where a window
    starting anywhere in a text begins; then every emission gets at least `emission_floor` and is
    renormalised, so ids unseen in training keep a nonzero probability.
    Scoring seam state: the predictive distribution over hidden states, (N, K) float64.
    """

    def __init__(
        self,
        states: int,
        vocab_size: int,
        n_iter: int = 20,
        max_train_tokens: int = 200_000,
        seed: int = 0,
        tol: float = 1e-2,
        emission_floor: float = 1e-6,
        chunk_length: int = 2_000,
        warn_seconds: float = 60.0,
    ):
        for name, value in (
            ("states", states),
            ("vocab_size", vocab_size),
            ("n_iter", n_iter),
            ("max_train_tokens", max_train_tokens),
            ("chunk_length", chunk_length),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if not 0 < emission_floor < 1.0 / vocab_size:
            raise ConfigError(f"emission_floor must be in (0, 1/vocab_size), got {emission_floor!r}")
        self.states, self.vocab_size = int(states), int(vocab_size)
        self.n_iter, self.max_train_tokens, self.seed = int(n_iter), int(max_train_tokens), seed
        self.tol, self.emission_floor = float(tol), float(emission_floor)
        self.chunk_length, self.warn_seconds = int(chunk_length), float(warn_seconds)
        self.history: list[float] = []  # training log-likelihood (nats) at each EM iteration
        # None until fit() or from_state_dict(): _require_fitted() says so to the caller
        self.startprob: np.ndarray | None = None
        self.transmat: np.ndarray | None = None
        self.emissionprob: np.ndarray | None = None
        self._emit_t: np.ndarray | None = None  # emissionprob.T, contiguous: the row of token x is one gather

    # ------------------------------------------------------------------ training

    def fit(self, tokens: np.ndarray) -> HMMLM:
        """Baum-Welch from `random_init`; warns with a time estimate when K^2 x T x iters is large."""
        from hmmlearn.hmm import CategoricalHMM  # heavy import (scikit-learn), only when training

        t = self._check(np.ravel(tokens), "training tokens")[: self.max_train_tokens]
        if t.size < 2:
            raise DataError("an HMM needs at least 2 training tokens")
        seconds = estimate_fit_seconds(self.states, t.size, self.n_iter)
        if seconds > self.warn_seconds:
            warnings.warn(
                f"HMM Baum-Welch on {t.size} tokens with {self.states} states x {self.n_iter} iterations "
                f"is states^2 x tokens x iters = {self.states**2 * t.size * self.n_iter:.2g} steps, "
                f"roughly {seconds / 60:.1f} min on one core; lower states, n_iter or max_train_tokens",
                RuntimeWarning,
                stacklevel=2,
            )
        model = CategoricalHMM(
            n_components=self.states,
            n_features=self.vocab_size,
            n_iter=self.n_iter,
            tol=self.tol,
            random_state=self.seed,
            init_params="",
            params="ste",
            implementation="scaling",
        )
        model.startprob_, model.transmat_, model.emissionprob_ = random_init(self.states, self.vocab_size, t, self.seed)
        q, r = divmod(t.size, self.chunk_length)
        lengths = [self.chunk_length] * q + ([r] if r else [])
        model.fit(t.reshape(-1, 1), lengths)
        self.history = [float(x) for x in model.monitor_.history]
        emit = np.maximum(model.emissionprob_, self.emission_floor)  # symbols unseen in training
        self._set_params(model.startprob_, model.transmat_, emit)
        return self

    def _set_params(self, startprob, transmat, emissionprob) -> None:
        start, trans, emit = (np.asarray(a, dtype=np.float64) for a in (startprob, transmat, emissionprob))
        k, v = self.states, self.vocab_size
        if start.shape != (k,) or trans.shape != (k, k) or emit.shape != (k, v):
            raise ValueError(
                f"HMM parameters must be ({k},), ({k}, {k}), ({k}, {v}); got {start.shape}, {trans.shape}, {emit.shape}"
            )
        if min(start.min(), trans.min(), emit.min()) < 0 or not np.isfinite(emit).all():
            raise ValueError("HMM parameters must be finite probabilities")
        self.startprob, self.transmat, self.emissionprob = _rows(start), _rows(trans), _rows(emit)
        self._emit_t = np.ascontiguousarray(self.emissionprob.T)

    def _check(self, tokens, what: str) -> np.ndarray:
        arr = np.asarray(tokens)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{what} must be integer token ids, got dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            raise ValueError(f"{what} holds ids outside [0, {self.vocab_size})")
        return arr

    # ------------------------------------------------------------------ forward algorithm

    def _forward(self, pred: np.ndarray, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Read seq (N, T) from predictive state pred (N, K): (p(x_t | x_<t) (N, T), new pred)."""
        assert self._emit_t is not None and self.transmat is not None, "callers check _require_fitted()"
        probs = np.empty(seq.shape[::-1])  # (T, N): one contiguous row per step
        for t in range(seq.shape[1]):
            joint = pred * self._emit_t[seq[:, t]]
            px = joint.sum(axis=1)
            probs[t] = px
            pred = (joint / px[:, None]) @ self.transmat
        return probs.T, pred

    def initial_state(self, batch_size: int) -> np.ndarray:
        """Nothing read yet: the predictive distribution is startprob, (N, K)."""
        self._require_fitted()
        assert self.startprob is not None
        return np.tile(self.startprob, (batch_size, 1))

    def _require_fitted(self) -> None:
        if self.startprob is None:
            raise RuntimeError("HMMLM is not fitted: call fit() or from_state_dict() first")

    def _inputs(self, idx, state):
        self._require_fitted()
        idx = self._check(idx, "idx")
        if idx.ndim != 2:
            raise ValueError(f"idx must be (N, T), got shape {idx.shape}")
        state = self.initial_state(idx.shape[0]) if state is None else np.asarray(state, np.float64)
        if state.shape != (idx.shape[0], self.states):
            raise ValueError(f"state must be ({idx.shape[0]}, {self.states}), got {state.shape}")
        return idx, state

    def score(self, idx: np.ndarray, targets: np.ndarray, state) -> tuple[float, np.ndarray]:
        """Total NLL (nats) of targets[:, t] after reading idx[:, :t+1]; new predictive state."""
        idx, pred = self._inputs(idx, state)
        assert self._emit_t is not None  # _inputs checked that the model is fitted
        targets = self._check(targets, "targets")
        if targets.shape != idx.shape:
            raise ValueError(f"targets must have the shape of idx {idx.shape}, got {targets.shape}")
        if idx.shape[1] == 0:
            return 0.0, pred
        if np.array_equal(targets[:, :-1], idx[:, 1:]):
            # the usual shifted stream: p(target_t) is p(idx_{t+1}), already computed on reading it
            probs, pred = self._forward(pred, idx)
            last = np.einsum("nk,nk->n", pred, self._emit_t[targets[:, -1]])
            return -float(np.log(probs[:, 1:]).sum() + np.log(last).sum()), pred
        nll = 0.0
        for t in range(idx.shape[1]):
            _, pred = self._forward(pred, idx[:, t : t + 1])
            nll -= float(np.log(np.einsum("nk,nk->n", pred, self._emit_t[targets[:, t]])).sum())
        return nll, pred

    def next_logprobs(self, idx: np.ndarray, state) -> tuple[np.ndarray, np.ndarray]:
        """log p(next | history) = log(f_T A B) = log(a_{T+1} B), (N, V); new predictive state."""
        idx, pred = self._inputs(idx, state)
        _, pred = self._forward(pred, idx)
        return np.log(pred @ self.emissionprob), pred

    def token_logprobs(self, idx: np.ndarray, targets: np.ndarray, state, top_k: int = 0):
        """Per-token log p(targets[:, t] | idx[:, :t+1]) (N, T), the top-k or None, new state.

        p(y | a) = sum_k a_k B[k, y] for the predictive state a after reading idx[:, :t+1]."""
        idx, pred = self._inputs(idx, state)
        assert self._emit_t is not None and self.emissionprob is not None  # _inputs checked that it is fitted
        targets = self._check(targets, "targets")
        if targets.shape != idx.shape:
            raise ValueError(f"targets must have the shape of idx {idx.shape}, got {targets.shape}")
        chosen = np.empty(idx.shape)
        ids = np.empty(idx.shape + (min(top_k, self.vocab_size),), np.int64)
        values = np.empty(ids.shape)
        for t in range(idx.shape[1]):
            _, pred = self._forward(pred, idx[:, t : t + 1])
            chosen[:, t] = np.log(np.einsum("nk,nk->n", pred, self._emit_t[targets[:, t]]))
            if top_k:
                ids[:, t], values[:, t] = top_k_of(np.log(pred @ self.emissionprob), top_k)
        return chosen, (ids, values) if top_k else None, pred

    def select_state(self, state: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The predictive state distributions of these rows: (len(rows), K)."""
        return state[rows]

    def join_states(self, states: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(states, axis=0)

    def log_likelihood(self, tokens: np.ndarray) -> float:
        """log p(x_1..x_T) in nats of a 1-D sequence, first token included (as hmmlearn's score)."""
        seq = self._check(np.ravel(tokens), "tokens")[None, :]
        probs, _ = self._forward(self.initial_state(1), seq)
        return float(np.log(probs).sum())

    # ------------------------------------------------------------------ persistence

    @property
    def num_parameters(self) -> int:
        """Stored probability entries: K + K^2 + K V."""
        return self.states * (1 + self.states + self.vocab_size)

    def state_dict(self) -> dict[str, np.ndarray]:
        self._require_fitted()
        assert self.startprob is not None and self.transmat is not None and self.emissionprob is not None
        return {
            "startprob": self.startprob.copy(),
            "transmat": self.transmat.copy(),
            "emissionprob": self.emissionprob.copy(),
        }

    @classmethod
    def from_state_dict(cls, d: dict[str, np.ndarray], **kwargs) -> HMMLM:
        """Rebuild from `state_dict()` (states and vocab_size come from the array shapes)."""
        try:
            emit = np.asarray(d["emissionprob"], dtype=np.float64)
            model = cls(emit.shape[0], emit.shape[1], **kwargs)
            model._set_params(d["startprob"], d["transmat"], emit)
        except (KeyError, ValueError, IndexError) as exc:
            raise CheckpointError(f"not an HMMLM state dict: {exc}") from exc
        return model
