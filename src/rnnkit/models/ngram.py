"""Interpolated modified Kneser-Ney n-gram language model over integer token ids, in NumPy.

The model (Chen & Goodman 1998, "An empirical study of smoothing techniques", eqs. 13, 17, 26)
is the recursion, for a context h of length k-1 and its shortening h' (drop the oldest token):

    p_k(w | h) = max(c_k(hw) - D_k(c_k(hw)), 0) / c_k(h.)  +  gamma_k(h) * p_{k-1}(w | h')
    gamma_k(h) = (D_k,1 N_1(h.) + D_k,2 N_2(h.) + D_k,3+ N_3+(h.)) / c_k(h.)
    p_0(w)     = 1 / V                                  (uniform over the whole vocabulary)

where c_K is the raw count at the highest order K, and for k < K the continuation count
c_k(g) = N_1+(. g) = |{v : c(v g) > 0}| (the number of distinct left extensions of g);
c_k(h.) = sum_w c_k(hw); N_r(h.) = |{w : c_k(hw) = r}| (r = 1, 2, and >= 3 for "3+").
A context with c_k(h.) = 0 (never seen at that order) is skipped: p_k = p_{k-1}.

The discounts of each order are estimated from its count-of-counts n_r (Chen & Goodman eq. 26):

    Y = n_1 / (n_1 + 2 n_2),    D_r = r - (r + 1) Y n_{r+1} / n_r    (r = 1, 2, 3)

Since every D_r is in (0, r], each p_k(. | h) sums to exactly 1 and, through p_0, every token of
the vocabulary (seen in training or not) gets a nonzero probability.

Storage: each distinct j-gram gets a dense integer id (its rank), built order by order, so every
key is `id * V + token` and fits in int64 for any V and K (no V**K overflow). Two tables per
order, both sorted int64 arrays searched with `np.searchsorted`:

* context table j: key(u g) = id(g) * V + u -- a j-gram is its (j-1)-gram suffix extended by
  one older token u on the left, so a query context is resolved from its newest token backwards
  and each longer context costs one more lookup;
* n-gram table k:  key(h w) = id(h) * V + w -- the k-gram is its context's id and the next token;
  all the n-grams sharing a context are one contiguous run of the sorted table.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..errors import CheckpointError, ConfigError, DataError
from .base import NumpyScoring, top_k_of

PAD = -1  # marks "no token yet" in the context state, before the start of the stream
_FORMAT = 1  # version of the state_dict layout
_MODES = ("modified", "single", "fixed")  # how the discounts are set, by its code in "meta"
_CHUNK = 1 << 18  # positions scored per block: bounds the temporary arrays' memory


def _find(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index of each query in `sorted_keys`, or -1 where absent (queries < 0 are never present)."""
    if sorted_keys.size == 0:
        return np.full(queries.shape, -1, dtype=np.int64)
    pos = np.searchsorted(sorted_keys, queries)
    pos_c = np.minimum(pos, sorted_keys.size - 1)
    return np.where(sorted_keys[pos_c] == queries, pos_c, -1).astype(np.int64, copy=False)


def _rank(keys: np.ndarray, hint: np.ndarray | None = None):
    """np.unique(keys, return_inverse, return_counts) plus the sorting permutation, but faster.

    `hint` is a permutation that already groups the keys by their high part (the context id):
    a stable sort (timsort) of keys[hint] then only has to order short runs, about 4x faster than
    sorting from scratch. Small keys (level 1: the tokens themselves) use numpy's radix sort.
    """
    n = keys.size
    if hint is not None:
        perm = hint[np.argsort(keys[hint], kind="stable")]
    elif n and keys.max() < 2**16:
        perm = np.argsort(keys.astype(np.uint16), kind="stable")
    else:
        perm = np.argsort(keys, kind="stable")
    sk = keys[perm]
    new = np.ones(n, dtype=bool)
    np.not_equal(sk[1:], sk[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    inverse = np.empty(n, np.int64)
    inverse[perm] = np.cumsum(new) - 1
    counts = np.diff(np.append(starts, n)).astype(np.int64)
    return sk[starts], inverse, counts, perm


def count_of_counts(counts: np.ndarray) -> np.ndarray:
    """n_1..n_4: how many n-grams have count exactly 1, 2, 3 and 4."""
    return np.bincount(np.clip(counts, 0, 5), minlength=6)[1:5].astype(np.int64)


def estimate_discounts(n: np.ndarray, mode: str = "modified") -> np.ndarray:
    """Discounts (D1, D2, D3+) of one order from its count-of-counts n = (n1, n2, n3, n4).

    modified: Y = n1/(n1 + 2 n2), D_r = r - (r+1) Y n_{r+1}/n_r (Chen & Goodman 1998, eq. 26).
    single:   one absolute discount D = n1/(n1 + 2 n2) for every count (Ney et al. 1994).
    Fallback: when a count-of-count the estimate needs is zero (tiny or degenerate data: the
    leave-one-out estimate is then 0/0 or the useless D_r = r) or the estimate is not positive,
    that D_r falls back to the single discount, itself 0.5 when n1 or n2 is zero.
    """
    n1, n2, n3, n4 = (float(x) for x in n)
    single = n1 / (n1 + 2.0 * n2) if n1 > 0 and n2 > 0 else 0.5
    out = np.full(3, single)
    if mode == "single" or n1 == 0 or n2 == 0:
        return out
    y = single
    for r, (n_r, n_next) in enumerate(((n1, n2), (n2, n3), (n3, n4)), start=1):
        if n_r > 0 and n_next > 0:
            est = r - (r + 1) * y * n_next / n_r
            if est > 0:
                out[r - 1] = est
    return out


def _check_tokens(tokens: npt.ArrayLike, vocab_size: int, what: str, allow_pad: bool = False) -> np.ndarray:
    arr = np.asarray(tokens)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be integer token ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    low = PAD if allow_pad else 0
    if arr.size and (arr.min() < low or arr.max() >= vocab_size):
        raise ValueError(f"{what} holds ids outside [0, {vocab_size}): min {arr.min()}, max {arr.max()}")
    return arr


class KneserNeyLM(NumpyScoring):
    """Interpolated modified Kneser-Ney LM of order K (contexts of up to K-1 tokens), see module doc.

    Implements the scoring seam of `rnnkit.models.base.Scorer`; the state is the last K-1 tokens
    of each row, (N, K-1) int64, left-padded with PAD = -1 before the start of the stream, so the
    first tokens are predicted from the shorter contexts available (no BOS token needed).
    """

    def __init__(self, order: int, vocab_size: int, discounts="modified"):
        for name, value in (("order", order), ("vocab_size", vocab_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        self.order = int(order)
        self.vocab_size = int(vocab_size)
        self._mode, self._fixed = self._parse_discounts(discounts)
        self.discounts = np.zeros((self.order, 3))  # row k-1: (D1, D2, D3+) of order k
        self._ctx_keys: list[np.ndarray] = []  # [j] for j = 1..K-1 (index 0 unused, empty)
        self._gram_keys: list[np.ndarray] = []  # [k-1] for order k = 1..K
        self._gram_counts: list[np.ndarray] = []
        self._tables: list[dict] = []  # derived per-order lookup arrays, see _finalize
        self.fitted = False

    def _parse_discounts(self, discounts):
        if isinstance(discounts, str):
            if discounts not in ("modified", "single"):
                raise ConfigError(f"discounts must be 'modified', 'single' or numbers, got {discounts!r}")
            return discounts, None
        fixed = np.broadcast_to(np.asarray(discounts, dtype=np.float64), (self.order, 3)).copy()
        if not (np.all(fixed > 0) and np.all(fixed <= np.array([1.0, 2.0, 3.0]))):
            raise ConfigError(f"fixed discounts need 0 < D1 <= 1, 0 < D2 <= 2, 0 < D3+ <= 3, got {fixed.tolist()}")
        return "fixed", fixed

    # ------------------------------------------------------------------ training

    def fit(self, tokens: np.ndarray) -> KneserNeyLM:
        """Count all 1..K-grams of the 1-D token array and build the smoothed tables (vectorized)."""
        t = _check_tokens(np.ravel(tokens), self.vocab_size, "training tokens")
        n, v, k_max = t.size, self.vocab_size, self.order
        if n == 0:
            raise DataError("cannot fit a KneserNeyLM on an empty token array")
        if n * v >= 2**62:  # keys are id * V + token with id < n
            raise DataError(f"{n} tokens x vocabulary {v} overflows the int64 n-gram keys")
        self._ctx_keys = [np.zeros(0, np.int64)]
        self._gram_keys, self._gram_counts = [], []
        ctx_ids = np.zeros(n + 1, np.int64)  # id of the empty context at positions 0..n
        ctx_perm: np.ndarray | None = None  # positions sorted by context id (None: all equal)
        prev_gram_ids: np.ndarray | None = None  # the (k-1)-grams' ids, from the previous k
        for k in range(1, k_max + 1):
            m = max(n - k + 1, 0)  # k-grams at positions 0..n-k: (id of their context, next token)
            hint: np.ndarray | None = None if ctx_perm is None else ctx_perm[ctx_perm < m]
            keys, gram_ids, counts, _ = _rank(ctx_ids[:m] * v + t[k - 1 : k - 1 + m], hint)
            if k > 1:  # now that k-grams have ids, count the (k-1)-grams' left extensions
                assert prev_gram_ids is not None
                self._gram_counts[-1] = self._continuation(prev_gram_ids, self._gram_keys[-1].size, gram_ids, keys.size)
            self._gram_keys.append(keys)
            self._gram_counts.append(counts)
            prev_gram_ids = gram_ids
            if k < k_max:  # k-gram contexts at 0..n-k: (id of the suffix at i+1, older token t[i])
                hint = None if ctx_perm is None else ctx_perm[ctx_perm >= 1] - 1
                ckeys, ctx_ids, _, ctx_perm = _rank(ctx_ids[1 : 1 + m] * v + t[:m], hint)
                self._ctx_keys.append(ckeys)
        self._set_discounts()
        self._finalize()
        return self

    @staticmethod
    def _continuation(lower_ids: np.ndarray, n_lower: int, upper_ids: np.ndarray, n_upper: int) -> np.ndarray:
        """N_1+(. g) for each lower-order gram g: the number of distinct grams (v g).

        The (k)-gram at position i has suffix the (k-1)-gram at i+1; any one occurrence of each
        distinct k-gram stands for it (all share the suffix), so a scatter picks one, no sort.
        """
        rep = np.empty(n_upper, np.int64)
        rep[upper_ids] = np.arange(upper_ids.size)
        return np.bincount(lower_ids[rep + 1], minlength=n_lower).astype(np.int64)

    def _set_discounts(self) -> None:
        if self._mode == "fixed":
            self.discounts = self._fixed.copy()
            return
        rows = [estimate_discounts(count_of_counts(c), self._mode) for c in self._gram_counts]
        self.discounts = np.array(rows, dtype=np.float64).reshape(self.order, 3)

    def _finalize(self) -> None:
        """Precompute, per order, the discounted term and backoff weight of the recursion.

        alpha(hw) = (c(hw) - D(c(hw))) / c(h.), gamma(h) = sum_r D_r N_r(h.) / c(h.); gamma = 1
        where c(h.) = 0. One sentinel is appended to both (alpha 0, gamma 1) so that index -1,
        our "not found", backs off unchanged without masking.
        """
        self._tables = []
        v = self.vocab_size
        for k in range(1, self.order + 1):
            keys, counts = self._gram_keys[k - 1], self._gram_counts[k - 1]
            keep = counts > 0  # lower-order grams seen only at the very start have no left extension
            keys, counts = keys[keep], counts[keep]
            self._gram_keys[k - 1], self._gram_counts[k - 1] = keys, counts
            n_ctx = 1 if k == 1 else self._ctx_keys[k - 1].size
            ctx, d = keys // v, self.discounts[k - 1]
            disc = d[np.minimum(counts, 3) - 1]
            total = np.bincount(ctx, weights=counts, minlength=n_ctx)
            mass = np.bincount(ctx, weights=disc, minlength=n_ctx)  # sum_r D_r N_r(h.)
            seen = total > 0
            gamma = np.ones(n_ctx + 1)
            gamma[:-1][seen] = mass[seen] / total[seen]
            alpha = np.append((counts - disc) / np.where(seen, total, 1.0)[ctx], 0.0)
            start = np.searchsorted(ctx, np.arange(n_ctx + 1))
            self._tables.append({"alpha": alpha, "gamma": gamma, "word": keys % v, "start": start})
        self.fitted = True

    # ------------------------------------------------------------------ lookup

    def _context_ids(self, ctx: np.ndarray) -> list[np.ndarray]:
        """ids[j] = id of the newest j tokens of each row as a context (-1: unseen or padding)."""
        m, v = ctx.shape[0], self.vocab_size
        cur = np.zeros(m, np.int64)
        ids = [cur]
        for j in range(1, self.order):
            u = ctx[:, self.order - 1 - j]
            ok = (cur >= 0) & (u >= 0)
            cur = _find(self._ctx_keys[j], np.where(ok, cur * v + u, -1))
            ids.append(cur)
        return ids

    def _target_probs(self, ctx: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """p(target | context) for M rows by the recursion, without the full distribution."""
        p = np.full(ctx.shape[0], 1.0 / self.vocab_size)
        for k, c in enumerate(self._context_ids(ctx), start=1):
            tab = self._tables[k - 1]
            g = _find(self._gram_keys[k - 1], np.where(c >= 0, c * self.vocab_size + targets, -1))
            p = tab["alpha"][g] + tab["gamma"][c] * p
        return p

    def _distribution(self, ctx: np.ndarray) -> np.ndarray:
        """The full next-token distribution (M, V) for M contexts, built order by order."""
        m = ctx.shape[0]
        p = np.full((m, self.vocab_size), 1.0 / self.vocab_size)
        for k, c in enumerate(self._context_ids(ctx), start=1):
            tab = self._tables[k - 1]
            p *= tab["gamma"][c][:, None]
            rows = np.flatnonzero(c >= 0)
            lo, hi = tab["start"][c[rows]], tab["start"][c[rows] + 1]
            n = hi - lo
            # the n-grams of context c[r] are the contiguous run lo..hi-1 of the sorted table
            gi = np.arange(n.sum()) + np.repeat(lo - (np.cumsum(n) - n), n)
            p[np.repeat(rows, n), tab["word"][gi]] += tab["alpha"][gi]
        return p

    # ------------------------------------------------------------------ scoring seam

    def initial_state(self, batch_size: int) -> np.ndarray:
        """Empty history: (N, K-1) of PAD."""
        return np.full((batch_size, self.order - 1), PAD, dtype=np.int64)

    def _history(self, idx: np.ndarray, state) -> np.ndarray:
        if not self.fitted:
            raise RuntimeError("KneserNeyLM is not fitted: call fit() or from_state_dict() first")
        idx = _check_tokens(idx, self.vocab_size, "idx")
        if idx.ndim != 2:
            raise ValueError(f"idx must be (N, T), got shape {idx.shape}")
        state = (
            self.initial_state(idx.shape[0])
            if state is None
            else _check_tokens(state, self.vocab_size, "state", allow_pad=True)
        )
        if state.shape != (idx.shape[0], self.order - 1):
            raise ValueError(f"state must be ({idx.shape[0]}, {self.order - 1}), got {state.shape}")
        return np.concatenate([state, idx], axis=1)

    def score(self, idx: np.ndarray, targets: np.ndarray, state) -> tuple[float, np.ndarray]:
        """Total NLL (nats) of targets[:, t] given the history up to idx[:, t]; new state."""
        hist = self._history(idx, state)
        targets = _check_tokens(targets, self.vocab_size, "targets")
        n, t_len, w = hist.shape[0], hist.shape[1] - (self.order - 1), self.order - 1
        if targets.shape != (n, t_len):
            raise ValueError(f"targets must have the shape of idx {(n, t_len)}, got {targets.shape}")
        nll = 0.0
        step = max(1, _CHUNK // max(n, 1))
        for t0 in range(0, t_len, step):
            t1 = min(t_len, t0 + step)
            # context of target t: the w tokens ending at idx[:, t] = hist[:, t+1 : t+1+w]
            cols = np.arange(t0 + 1, t1 + 1)[:, None] + np.arange(w)[None, :]
            ctx = hist[:, cols].reshape(n * (t1 - t0), w)
            nll -= float(np.log(self._target_probs(ctx, targets[:, t0:t1].reshape(-1))).sum())
        return nll, hist[:, hist.shape[1] - w :].copy()

    def next_logprobs(self, idx: np.ndarray, state) -> tuple[np.ndarray, np.ndarray]:
        """log p(. | history) (N, V) after reading idx (N, T) on top of `state`; new state."""
        hist = self._history(idx, state)
        new_state = hist[:, hist.shape[1] - (self.order - 1) :].copy()
        return np.log(self._distribution(new_state)), new_state

    def token_logprobs(self, idx: np.ndarray, targets: np.ndarray, state, top_k: int = 0):
        """Per-token log p(target | history) (N, T), the top-k (ids, log-probs) or None, new state."""
        hist = self._history(idx, state)
        targets = _check_tokens(targets, self.vocab_size, "targets")
        n, t_len, w = hist.shape[0], hist.shape[1] - (self.order - 1), self.order - 1
        if targets.shape != (n, t_len):
            raise ValueError(f"targets must have the shape of idx {(n, t_len)}, got {targets.shape}")
        cols = np.arange(1, t_len + 1)[:, None] + np.arange(w)[None, :]
        ctx = hist[:, cols].reshape(n * t_len, w)  # row n*t_len + t: the context of target t
        chosen = np.log(self._target_probs(ctx, targets.reshape(-1))).reshape(n, t_len)
        top = None
        if top_k:
            step = max(1, _CHUNK // self.vocab_size)  # full distributions, a chunk of contexts at a time
            parts = [top_k_of(np.log(self._distribution(ctx[i : i + step])), top_k) for i in range(0, len(ctx), step)]
            top = tuple(np.concatenate([p[j] for p in parts]).reshape(n, t_len, -1) for j in (0, 1))
        return chosen, top, hist[:, hist.shape[1] - w :].copy()

    def select_state(self, state: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The histories of these rows: (len(rows), K-1)."""
        return state[rows]

    def join_states(self, states: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(states, axis=0)

    def prob(self, context, token: int) -> float:
        """p(token | context) for one context (a sequence of ids, oldest first); for inspection."""
        hist = self._history(np.asarray(context, dtype=np.int64).reshape(1, -1), None)
        ctx = hist[:, hist.shape[1] - (self.order - 1) :]
        return float(self._target_probs(ctx, _check_tokens([token], self.vocab_size, "token"))[0])

    # ------------------------------------------------------------------ inspection, persistence

    @property
    def num_parameters(self) -> int:
        """Number of stored n-gram counts, all orders (each is one probability entry)."""
        return int(sum(k.size for k in self._gram_keys))

    def ngram_counts(self, order: int) -> tuple[np.ndarray, np.ndarray]:
        """(grams (M, order) int64, counts (M,)) of one order: raw counts at the highest order,
        continuation counts N_1+(. g) below it."""
        if not 1 <= order <= self.order:
            raise ValueError(f"order must be in 1..{self.order}, got {order}")
        keys, v = self._gram_keys[order - 1], self.vocab_size
        cols, c = [], keys // v
        for j in range(order - 1, 0, -1):  # a context key is (suffix id) * V + oldest token
            ck = self._ctx_keys[j][c]
            cols.append(ck % v)
            c = ck // v
        cols.append(keys % v)
        grams = np.stack(cols, axis=1) if cols else np.zeros((0, order), np.int64)
        return grams.astype(np.int64), self._gram_counts[order - 1].copy()

    def state_dict(self) -> dict[str, np.ndarray]:
        """Numeric arrays only (safetensors-ready): sorted keys and counts per order, discounts."""
        meta = [_FORMAT, self.order, self.vocab_size, _MODES.index(self._mode)]
        d = {"meta": np.array(meta, dtype=np.int64), "discounts": self.discounts.copy()}
        for j in range(1, self.order):
            d[f"ctx_keys.{j}"] = self._ctx_keys[j].copy()
        for k in range(1, self.order + 1):
            d[f"gram_keys.{k}"] = self._gram_keys[k - 1].copy()
            d[f"gram_counts.{k}"] = self._gram_counts[k - 1].copy()
        return d

    @classmethod
    def from_state_dict(cls, d: dict[str, np.ndarray]) -> KneserNeyLM:
        """Rebuild a fitted model from `state_dict()` output (the lookup tables are recomputed)."""
        try:
            fmt, order, vocab, mode = (int(x) for x in np.asarray(d["meta"]).reshape(4))
            if fmt != _FORMAT or not 0 <= mode < len(_MODES):
                raise CheckpointError(f"unknown n-gram state format {fmt} / discount mode {mode}")
            model = cls(order, vocab, discounts=np.asarray(d["discounts"], dtype=np.float64))
            model._ctx_keys = [np.zeros(0, np.int64)] + [
                np.asarray(d[f"ctx_keys.{j}"], dtype=np.int64) for j in range(1, order)
            ]
            model._gram_keys = [np.asarray(d[f"gram_keys.{k}"], dtype=np.int64) for k in range(1, order + 1)]
            model._gram_counts = [np.asarray(d[f"gram_counts.{k}"], dtype=np.int64) for k in range(1, order + 1)]
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"not a KneserNeyLM state dict: {exc}") from exc
        model.discounts = model._fixed.copy()  # the fitted values are kept as they were
        model._mode = _MODES[mode]  # a refit estimates them again the way the original did
        model._finalize()
        return model
