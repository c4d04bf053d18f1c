"""Behaviour of the HMM language model: our forward algorithm against brute force and hmmlearn."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.models.hmm import HMMLM, estimate_fit_seconds, random_init

CORPORA = Path(rnnkit.__file__).parent / "text" / "bundled"


def two_state_model():
    return HMMLM.from_state_dict(
        {
            "startprob": np.array([0.6, 0.4]),
            "transmat": np.array([[0.7, 0.3], [0.2, 0.8]]),
            "emissionprob": np.array([[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]]),
        }
    )


def brute_force_loglik(m, seq):
    """log of the sum over all K^T hidden paths of pi(z1) B(z1,x1) prod A(z,z') B(z',x')."""
    total = 0.0
    for path in itertools.product(range(m.states), repeat=len(seq)):
        p = m.startprob[path[0]] * m.emissionprob[path[0], seq[0]]
        for t in range(1, len(seq)):
            p *= m.transmat[path[t - 1], path[t]] * m.emissionprob[path[t], seq[t]]
        total += p
    return np.log(total)


def char_ids(name, n):
    text = (CORPORA / name).read_text(encoding="utf-8")
    chars = sorted(set(text))
    lut = {c: i for i, c in enumerate(chars)}
    return np.array([lut[c] for c in text[:n]], dtype=np.int64), len(chars)


def test_forward_equals_brute_force_and_hmmlearn():
    from hmmlearn.hmm import CategoricalHMM

    m = two_state_model()
    seq = np.array([0, 2, 1, 1, 2, 0, 2])
    expected = brute_force_loglik(m, seq)
    assert m.log_likelihood(seq) == pytest.approx(expected, rel=1e-12)
    ref = CategoricalHMM(n_components=2, n_features=3, init_params="")
    ref.startprob_, ref.transmat_, ref.emissionprob_ = m.startprob, m.transmat, m.emissionprob
    assert ref.score(seq.reshape(-1, 1)) == pytest.approx(expected, rel=1e-12)
    # the seam scores every token but the first: log p(x_2..x_T | x_1)
    nll, _ = m.score(seq[None, :-1], seq[None, 1:], m.initial_state(1))
    first = np.log(m.startprob @ m.emissionprob[:, seq[0]])
    assert -nll == pytest.approx(expected - first, rel=1e-12)


def test_score_equals_sum_of_next_logprobs_any_targets():
    m = two_state_model()
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, 3, (4, 12)), rng.integers(0, 3, (4, 12))  # not a shifted stream
    for tg in (targets, np.concatenate([idx[:, 1:], targets[:, -1:]], axis=1)):  # general and shifted paths
        total, state_a = m.score(idx, tg, m.initial_state(4))
        state, expected = m.initial_state(4), 0.0
        for t in range(idx.shape[1]):
            logp, state = m.next_logprobs(idx[:, t : t + 1], state)
            expected -= logp[np.arange(4), tg[:, t]].sum()
        assert total == pytest.approx(expected, rel=1e-12)
        np.testing.assert_allclose(state_a, state, rtol=1e-12)


def test_next_token_distribution_sums_to_one():
    tokens, vocab = char_ids("timemachine.txt", 3000)
    m = HMMLM(6, vocab + 1, n_iter=5).fit(tokens)  # id `vocab` never occurs in training
    rng = np.random.default_rng(1)
    logp, state = m.next_logprobs(rng.integers(0, vocab + 1, (50, 30)), None)
    p = np.exp(logp)
    assert p.shape == (50, vocab + 1) and np.all(p > 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(state.sum(axis=1), 1.0, atol=1e-12)


def test_streaming_windows_equal_one_window():
    tokens, vocab = char_ids("timemachine.txt", 4000)
    m = HMMLM(5, vocab, n_iter=3).fit(tokens[:3000])
    rows = tokens[3000:3800].reshape(2, 400)
    idx, targets = rows[:, :-1], rows[:, 1:]
    whole, s_whole = m.score(idx, targets, m.initial_state(2))
    first, s = m.score(idx[:, :150], targets[:, :150], m.initial_state(2))
    second, s = m.score(idx[:, 150:], targets[:, 150:], s)
    assert first + second == pytest.approx(whole, rel=1e-12)
    np.testing.assert_allclose(s, s_whole, rtol=1e-10)


def test_fit_improves_likelihood_over_random_init():
    tokens, vocab = char_ids("timemachine.txt", 5000)
    m = HMMLM(8, vocab + 2, n_iter=10, seed=3).fit(tokens)
    names = ("startprob", "transmat", "emissionprob")
    init = HMMLM.from_state_dict(dict(zip(names, random_init(8, vocab + 2, tokens, seed=3), strict=True)))
    before, after = init.log_likelihood(tokens), m.log_likelihood(tokens)
    assert after > before + 0.1 * tokens.size  # at least 0.1 nats per token better
    assert len(m.history) >= 2 and m.history[-1] > m.history[0]
    # hmmlearn's first E-step scores the same random start (in 2000-token pieces, so not identical)
    assert m.history[0] == pytest.approx(before, rel=0.02)
    assert np.all(m.emissionprob[:, vocab:] > 0)  # unseen ids smoothed, rows still sum to 1
    np.testing.assert_allclose(m.emissionprob.sum(axis=1), 1.0)


def test_slow_training_warns_with_estimate():
    assert estimate_fit_seconds(256, 1_000_000, 20) > 3600
    with pytest.warns(RuntimeWarning, match="min on one core"):
        HMMLM(2, 4, n_iter=2, warn_seconds=0.0).fit(np.array([0, 1, 2, 3, 1, 2]))


def test_state_dict_roundtrip_and_errors():
    m = two_state_model()
    d = m.state_dict()
    assert set(d) == {"startprob", "transmat", "emissionprob"}
    m2 = HMMLM.from_state_dict(d)
    assert (m2.states, m2.vocab_size, m2.num_parameters) == (2, 3, 2 + 4 + 6)
    seq = np.array([[0, 1, 2, 2, 1]])
    assert m2.score(seq, seq, None)[0] == m.score(seq, seq, None)[0]
    with pytest.raises(CheckpointError):
        HMMLM.from_state_dict({"startprob": d["startprob"]})
    with pytest.raises(ConfigError):
        HMMLM(0, 3)
    with pytest.raises(ValueError):
        m.score(np.array([[0, 3]]), np.array([[0, 1]]), None)
