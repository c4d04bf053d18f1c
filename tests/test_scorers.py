"""The scoring seam's contract (models/base.py: Scorer), checked the same way on every scorer:
the torch RNNLM (through TorchScorer), the NumPy RNNLM, the Kneser-Ney n-gram and the HMM.

evaluate, generate, beam search and compare rely on exactly these properties, so a new model kind
joins SCORERS below and passes every test here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.config import ModelConfig
from rnnkit.models.registry import baseline_weights, build_torch_model, fit_baseline, scorer_from_weights
from rnnkit.models.torch_lm import export_weights

V, N, T = 7, 3, 10
RTOL = 1e-4  # the neural scorers compute in float32; the baselines are exact to ~1e-12


def toy_corpus(n: int = 3000, seed: int = 0) -> np.ndarray:
    """A skewed first-order Markov chain over V symbols, for the baselines to fit."""
    rng = np.random.default_rng(seed)
    transitions = rng.dirichlet(np.full(V, 0.3), size=V)
    out = [0]
    for _ in range(n - 1):
        out.append(int(rng.choice(V, p=transitions[out[-1]])))
    return np.array(out, dtype=np.int64)


def neural(kind: str, engine: str, **options):
    """A randomly initialised model saved and loaded back the way a checkpoint is."""
    config = ModelConfig(model=kind, layers=2, hidden=8, embed=5, vocab_size=V, engine=engine, **options)
    torch.manual_seed(0)
    weights = export_weights(build_torch_model(config))  # both engines use torch's parameter names
    return scorer_from_weights(config, weights)[0]


def baseline(kind: str):
    config = ModelConfig(model=kind, order=3, states=4, hmm_iter=3, vocab_size=V)
    fitted = fit_baseline(config, toy_corpus(), seed=0)
    return scorer_from_weights(config, baseline_weights(fitted))[0]


# name -> (how to build it, the batch axis of its state arrays)
SCORERS = {
    "torch-lstm": (lambda: neural("lstm", "torch"), 1),
    "torch-gru": (lambda: neural("gru", "torch"), 1),
    "numpy-lstm": (lambda: neural("lstm", "numpy"), 1),
    "numpy-rnn": (lambda: neural("rnn", "numpy"), 1),
    "torch-gru-cho": (lambda: neural("gru", "torch", gru_form="cho"), 1),
    "torch-mlp": (lambda: neural("mlp", "torch", context=3), 1),
    "torch-mingru": (lambda: neural("mingru", "torch"), 1),
    "torch-minlstm": (lambda: neural("minlstm", "torch"), 1),
    "numpy-gru-cho": (lambda: neural("gru", "numpy", gru_form="cho"), 1),
    "numpy-minlstm": (lambda: neural("minlstm", "numpy"), 1),
    "ngram": (lambda: baseline("ngram"), 0),
    "hmm": (lambda: baseline("hmm"), 0),
}


@pytest.fixture(scope="module", params=sorted(SCORERS))
def case(request):
    build, batch_axis = SCORERS[request.param]
    return build(), batch_axis


def leaves(state) -> list[np.ndarray]:
    parts = state if isinstance(state, (tuple, list)) else (state,)
    return [part.detach().cpu().numpy() if isinstance(part, torch.Tensor) else np.asarray(part) for part in parts]


def assert_same_state(a, b) -> None:
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=RTOL, atol=1e-6)


def stream(seed: int = 1, rows: int = N, length: int = T + 1) -> tuple[np.ndarray, np.ndarray]:
    """(idx, targets) of a shifted token stream, as evaluation feeds it."""
    ids = np.random.default_rng(seed).integers(0, V, (rows, length))
    return ids[:, :-1], ids[:, 1:]


def stepwise_nll(scorer, idx: np.ndarray, targets: np.ndarray, state) -> tuple[float, object]:
    """-sum_t log p(targets_t | idx_<=t), one next_logprobs call per token (eq. of `score`)."""
    total = 0.0
    for t in range(idx.shape[1]):
        logp, state = scorer.next_logprobs(idx[:, t : t + 1], state)
        total -= float(logp[np.arange(idx.shape[0]), targets[:, t]].sum())
    return total, state


def test_initial_state_holds_n_empty_streams(case):
    scorer, batch_axis = case
    assert scorer.vocab_size == V
    state = scorer.initial_state(N)
    assert all(leaf.shape[batch_axis] == N for leaf in leaves(state))
    # N fresh streams are N copies of one fresh stream
    assert_same_state(state, scorer.select_state(scorer.initial_state(1), np.zeros(N, dtype=np.int64)))


@pytest.mark.parametrize("targets_kind", ["shifted stream", "any targets"])
def test_score_is_the_sum_of_next_token_logprobs(case, targets_kind):
    scorer, _ = case
    idx, targets = stream()
    if targets_kind == "any targets":
        targets = np.random.default_rng(2).integers(0, V, idx.shape)
    for start in (scorer.initial_state(N), scorer.score(*stream(seed=3), scorer.initial_state(N))[1]):
        total, end = scorer.score(idx, targets, start)
        expected, stepped_end = stepwise_nll(scorer, idx, targets, start)
        assert total > 0 and total == pytest.approx(expected, rel=RTOL)
        assert_same_state(end, stepped_end)


def test_next_logprobs_are_normalised(case):
    scorer, _ = case
    logp, _ = scorer.next_logprobs(stream()[0], scorer.initial_state(N))
    assert logp.shape == (N, V) and logp.dtype == np.float64
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, rtol=1e-6)


def test_state_carried_across_two_windows_equals_one_window(case):
    scorer, _ = case
    idx, targets = stream()
    whole, whole_end = scorer.score(idx, targets, scorer.initial_state(N))
    first, middle = scorer.score(idx[:, :4], targets[:, :4], scorer.initial_state(N))
    second, end = scorer.score(idx[:, 4:], targets[:, 4:], middle)
    assert first + second == pytest.approx(whole, rel=RTOL)
    assert_same_state(end, whole_end)
    # and the carried state matters: a fresh state on the second window scores differently
    fresh, _ = scorer.score(idx[:, 4:], targets[:, 4:], scorer.initial_state(N))
    assert fresh != pytest.approx(second, rel=RTOL)


def test_select_state_picks_rows_in_order_with_repeats(case):
    scorer, _ = case
    idx, targets = stream()
    _, state = scorer.score(idx[:, :5], targets[:, :5], scorer.initial_state(N))
    rows = np.array([2, 0, 2], dtype=np.int64)
    picked = scorer.select_state(state, rows)
    # the picked state continues exactly as if only those rows had been read from the start
    _, alone = scorer.score(idx[rows, :5], targets[rows, :5], scorer.initial_state(len(rows)))
    assert_same_state(picked, alone)
    rest, _ = scorer.score(idx[rows, 5:], targets[rows, 5:], picked)
    rest_alone, _ = scorer.score(idx[rows, 5:], targets[rows, 5:], alone)
    assert rest == pytest.approx(rest_alone, rel=RTOL)
    logp_picked, _ = scorer.next_logprobs(idx[rows, 5:6], picked)
    logp_full, _ = scorer.next_logprobs(idx[:, 5:6], state)
    np.testing.assert_allclose(logp_picked, logp_full[rows], rtol=RTOL, atol=1e-6)


def test_join_states_puts_rows_side_by_side(case):
    """Requests read apart and joined continue as one batch read from the start (what the server's
    batching relies on): states of 2 rows and 1 row joined hold rows 0, 1, 2 in that order."""
    scorer, _ = case
    idx, targets = stream()
    _, together = scorer.score(idx[:, :5], targets[:, :5], scorer.initial_state(N))
    _, first = scorer.score(idx[:2, :5], targets[:2, :5], scorer.initial_state(2))
    _, second = scorer.score(idx[2:, :5], targets[2:, :5], scorer.initial_state(1))
    joined = scorer.join_states([first, second])
    assert_same_state(joined, together)
    logp_joined, _ = scorer.next_logprobs(idx[:, 5:6], joined)
    logp_together, _ = scorer.next_logprobs(idx[:, 5:6], together)
    np.testing.assert_allclose(logp_joined, logp_together, rtol=RTOL, atol=1e-6)
