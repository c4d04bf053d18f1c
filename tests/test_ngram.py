"""Behaviour of the interpolated modified Kneser-Ney LM, checked against a plain loop-based reference."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.models.ngram import PAD, KneserNeyLM, estimate_discounts

CORPORA = Path(rnnkit.__file__).parent / "text" / "bundled"


# ---------------------------------------------------------------------------- plain reference


def ref_discounts(counts):
    """Chen & Goodman eq. 26 with the documented fallbacks, written out longhand."""
    values = list(counts)
    n = [sum(1 for c in values if c == r) for r in (1, 2, 3, 4)]
    single = n[0] / (n[0] + 2 * n[1]) if n[0] > 0 and n[1] > 0 else 0.5
    d = [single, single, single]
    if n[0] > 0 and n[1] > 0:
        for r in (1, 2, 3):
            if n[r - 1] > 0 and n[r] > 0:
                est = r - (r + 1) * single * n[r] / n[r - 1]
                if est > 0:
                    d[r - 1] = est
    return d


class RefKN:
    """Interpolated modified KN with dicts: raw counts at the top order, continuation counts below."""

    def __init__(self, tokens, order, vocab_size):
        toks = [int(x) for x in tokens]
        self.order, self.vocab_size = order, vocab_size
        grams = {k: Counter(tuple(toks[i : i + k]) for i in range(len(toks) - k + 1)) for k in range(1, order + 1)}
        self.counts = {order: dict(grams[order])}
        for k in range(1, order):
            cont = Counter()
            for g in grams[k + 1]:  # each distinct (k+1)-gram is one distinct left extension of g[1:]
                cont[g[1:]] += 1
            self.counts[k] = dict(cont)
        self.discounts = {k: ref_discounts(self.counts[k].values()) for k in self.counts}
        self.rows = {k: {} for k in self.counts}
        for k, table in self.counts.items():
            for g, c in table.items():
                self.rows[k].setdefault(g[:-1], {})[g[-1]] = c

    def prob(self, context, w):
        context = tuple(context)
        p = 1.0 / self.vocab_size
        for k in range(1, self.order + 1):
            if k - 1 > len(context):
                break
            h = context[len(context) - (k - 1) :] if k > 1 else ()
            row = self.rows[k].get(h, {})
            total = sum(row.values())
            if total == 0:
                continue
            d = self.discounts[k]
            disc = lambda c, d=d: d[min(c, 3) - 1]  # noqa: E731
            gamma = sum(disc(c) for c in row.values()) / total
            c = row.get(w, 0)
            p = (max(c - disc(c), 0.0) if c else 0.0) / total + gamma * p
        return p


def markov_text(n, vocab, seed):
    """A skewed first-order Markov chain over `vocab` symbols: varied count-of-counts."""
    rng = np.random.default_rng(seed)
    trans = rng.dirichlet(np.full(vocab, 0.3), size=vocab)
    out = [0]
    for _ in range(n - 1):
        out.append(int(rng.choice(vocab, p=trans[out[-1]])))
    return np.array(out, dtype=np.int64)


def char_ids(name):
    text = (CORPORA / name).read_text(encoding="utf-8")
    chars = sorted(set(text))
    lut = {c: i for i, c in enumerate(chars)}
    return np.array([lut[c] for c in text], dtype=np.int64), len(chars)


def dist(model, context):
    """Model's next-token distribution after an explicit context (may be empty)."""
    idx = np.asarray(context, dtype=np.int64).reshape(1, -1)
    return np.exp(model.next_logprobs(idx, model.initial_state(1))[0][0])


# ---------------------------------------------------------------------------- exact values


def test_hand_worked_abracadabra():
    # a=0 b=1 c=2 d=3 r=4, id 5 never occurs (think <unk>), V = 6
    ids = np.array(["abcdr".index(c) for c in "abracadabra"])
    m = KneserNeyLM(2, 6).fit(ids)
    grams, counts = m.ngram_counts(2)  # raw bigram counts
    assert dict(zip(map(tuple, grams.tolist()), counts.tolist(), strict=True)) == {
        (0, 1): 2,
        (1, 4): 2,
        (4, 0): 2,
        (0, 2): 1,
        (2, 0): 1,
        (0, 3): 1,
        (3, 0): 1,
    }
    grams, counts = m.ngram_counts(1)  # continuation counts: 'a' follows r, c, d
    assert dict(zip(map(tuple, grams.tolist()), counts.tolist(), strict=True)) == {
        (0,): 3,
        (1,): 1,
        (2,): 1,
        (3,): 1,
        (4,): 1,
    }
    # bigram count-of-counts n1=4, n2=3, n3=0: D1 = Y = 4/10; D2, D3+ not estimable -> single D = 0.4
    # unigram n1=4, n2=0: nothing estimable -> 0.5
    np.testing.assert_allclose(m.discounts, [[0.5, 0.5, 0.5], [0.4, 0.4, 0.4]])
    # p1(a) = (3 - .5)/7 + gamma 2.5/7 * 1/6 = 5/12 ; p1(<unk>) = 2.5/7/6 = 5/84
    assert m.prob([], 0) == pytest.approx(5 / 12, abs=1e-15)
    assert m.prob([], 5) == pytest.approx(5 / 84, abs=1e-15)
    # p(a | r) = (2 - .4)/2 + (.4 * 1 / 2) * 5/12 = 4/5 + 1/12 = 53/60
    assert m.prob([4], 0) == pytest.approx(53 / 60, abs=1e-15)
    assert dist(m, [4]).sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_matches_bruteforce_reference(order):
    vocab = 7  # ids 0..5 occur, id 6 never does
    tokens = markov_text(400, 6, seed=order)
    m, ref = KneserNeyLM(order, vocab).fit(tokens), RefKN(tokens, order, vocab)
    for k in range(1, order + 1):
        grams, counts = m.ngram_counts(k)
        got = dict(zip(map(tuple, grams.tolist()), counts.tolist(), strict=True))
        assert got == {g: c for g, c in ref.counts[k].items() if c > 0}
        np.testing.assert_allclose(m.discounts[k - 1], ref.discounts[k], rtol=0, atol=1e-15)
    rng = np.random.default_rng(0)
    contexts = [tuple(tokens[i : i + order - 1]) for i in range(0, 300, 7)]  # seen contexts
    contexts += [tuple(rng.integers(0, vocab, size=order - 1)) for _ in range(20)]  # mostly unseen, some with id 6
    contexts += [tuple(tokens[:j]) for j in range(order - 1)]  # the start: shorter histories
    for ctx in contexts:
        expected = np.array([ref.prob(ctx, w) for w in range(vocab)])
        np.testing.assert_allclose(dist(m, ctx), expected, rtol=1e-12, atol=0)
        assert m.prob(ctx, 3) == pytest.approx(expected[3], rel=1e-12)


# ---------------------------------------------------------------------------- distribution properties


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_distribution_sums_to_one_everywhere(order):
    tokens, vocab = char_ids("timemachine.txt")
    vocab += 1  # one id never seen in training, e.g. <unk>
    m = KneserNeyLM(order, vocab).fit(tokens[:20000])
    rng = np.random.default_rng(1)
    seen = np.stack([tokens[i : i + 4] for i in rng.integers(0, 19000, 100)])
    rand = rng.integers(0, vocab, size=(100, 4))  # unseen contexts, the unknown id included
    with_unk = seen.copy()
    with_unk[:, rng.integers(0, 4, 100)] = vocab - 1
    for ctx in (seen, rand, with_unk, seen[:, :1]):
        logp, _ = m.next_logprobs(ctx, m.initial_state(ctx.shape[0]))
        p = np.exp(logp)
        assert p.shape == (ctx.shape[0], vocab)
        assert np.all(p > 0)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-9)


def test_short_training_text_and_start_of_stream():
    m = KneserNeyLM(4, 5).fit(np.array([1, 2]))  # shorter than the order
    p = np.exp(m.next_logprobs(np.array([[1, 2, 3]]), None)[0])
    assert np.all(p > 0) and p.sum() == pytest.approx(1.0, abs=1e-12)
    state = m.initial_state(2)
    assert state.shape == (2, 3) and np.all(state == PAD)


def test_score_equals_sum_of_next_logprobs():
    tokens = markov_text(2000, 9, seed=3)
    m = KneserNeyLM(3, 10).fit(tokens)
    rng = np.random.default_rng(2)
    idx, targets = rng.integers(0, 10, (3, 25)), rng.integers(0, 10, (3, 25))
    total, state_a = m.score(idx, targets, m.initial_state(3))
    state, expected = m.initial_state(3), 0.0
    for t in range(idx.shape[1]):
        logp, state = m.next_logprobs(idx[:, t : t + 1], state)
        expected -= logp[np.arange(3), targets[:, t]].sum()
    assert total == pytest.approx(expected, rel=1e-12)
    np.testing.assert_array_equal(state_a, state)


@pytest.mark.parametrize("order", [1, 4])
def test_streaming_windows_equal_one_window(order):
    tokens = markov_text(3000, 8, seed=4)
    m = KneserNeyLM(order, 8).fit(tokens[:2500])
    rows = tokens[2500:2900].reshape(2, 200)
    idx, targets = rows[:, :-1], rows[:, 1:]
    whole, state_whole = m.score(idx, targets, m.initial_state(2))
    first, state = m.score(idx[:, :60], targets[:, :60], m.initial_state(2))
    second, state = m.score(idx[:, 60:], targets[:, 60:], state)
    assert first + second == pytest.approx(whole, rel=1e-12)
    np.testing.assert_array_equal(state, state_whole)
    lp_whole, _ = m.next_logprobs(idx, None)
    _, s = m.next_logprobs(idx[:, :60], None)
    lp_two, _ = m.next_logprobs(idx[:, 60:], s)
    np.testing.assert_array_equal(lp_whole, lp_two)


def test_higher_order_beats_unigram_on_real_text():
    tokens, vocab = char_ids("timemachine.txt")
    split = int(0.9 * tokens.size)
    train, val = tokens[:split], tokens[split:]
    losses = {}
    for order in (1, 3, 5):
        m = KneserNeyLM(order, vocab).fit(train)
        nll, _ = m.score(val[None, :-1], val[None, 1:], m.initial_state(1))
        losses[order] = nll / (val.size - 1)
    assert losses[5] < losses[3] < losses[1]
    assert losses[1] > 2.5 and losses[5] < 2.0  # nats/char: unigram ~2.8, 5-gram ~1.6-1.7


# ---------------------------------------------------------------------------- discounts, persistence, errors


def test_discount_estimates_and_fallbacks():
    n = np.array([1000, 400, 200, 120])
    y = 1000 / 1800
    np.testing.assert_allclose(estimate_discounts(n), [1 - 2 * y * 0.4, 2 - 3 * y * 0.5, 3 - 4 * y * 0.6])
    np.testing.assert_allclose(estimate_discounts(n, "single"), [y, y, y])
    np.testing.assert_allclose(estimate_discounts(np.zeros(4)), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(estimate_discounts(np.array([5, 0, 3, 1])), [0.5, 0.5, 0.5])
    d = estimate_discounts(np.array([10, 1, 50, 0]))  # D2 = 2 - 3 (10/12) 50 < 0 -> fallback
    np.testing.assert_allclose(d, [10 / 12, 10 / 12, 10 / 12])


def test_single_and_fixed_discounts_still_normalised():
    tokens = markov_text(1500, 6, seed=5)
    for disc in ("single", (0.7, 1.2, 1.6)):
        m = KneserNeyLM(3, 7, discounts=disc).fit(tokens)
        p = np.exp(m.next_logprobs(tokens[None, :50], None)[0])
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(m.discounts, [0.7, 1.2, 1.6])


def test_state_dict_roundtrip(tmp_path):
    from safetensors.numpy import load_file, save_file

    tokens = markov_text(3000, 8, seed=6)
    m = KneserNeyLM(4, 9, discounts="single").fit(tokens)
    d = m.state_dict()
    assert all(isinstance(a, np.ndarray) and a.dtype.kind in "if" for a in d.values())
    save_file(d, str(tmp_path / "ngram.safetensors"))
    m2 = KneserNeyLM.from_state_dict(load_file(str(tmp_path / "ngram.safetensors")))
    assert m2.num_parameters == m.num_parameters == sum(m.ngram_counts(k)[1].size for k in range(1, 5))
    idx = tokens[None, :500]
    assert m2.score(idx[:, :-1], idx[:, 1:], None)[0] == m.score(idx[:, :-1], idx[:, 1:], None)[0]
    np.testing.assert_array_equal(m2.next_logprobs(idx, None)[0], m.next_logprobs(idx, None)[0])
    assert m2._mode == "single"
    with pytest.raises(CheckpointError):
        KneserNeyLM.from_state_dict({"meta": d["meta"]})


def test_input_errors():
    with pytest.raises(ConfigError):
        KneserNeyLM(0, 5)
    with pytest.raises(ConfigError):
        KneserNeyLM(3, 5, discounts="bogus")
    with pytest.raises(DataError):
        KneserNeyLM(3, 5).fit(np.array([], dtype=np.int64))
    with pytest.raises(ValueError):
        KneserNeyLM(3, 5).fit(np.array([1, 5]))
    m = KneserNeyLM(2, 5).fit(np.array([1, 2, 3]))
    with pytest.raises(ValueError):
        m.score(np.array([[1, 9]]), np.array([[1, 2]]), None)
