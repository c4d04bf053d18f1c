import numpy as np
import pytest
import torch

from rnnkit.config import ModelConfig
from rnnkit.errors import ConfigError, PromptError
from rnnkit.generate import (
    SamplingConfig,
    beam_search_ids,
    filter_logprobs,
    generate_text,
    start_ids,
)
from rnnkit.models.hmm import HMMLM
from rnnkit.models.ngram import KneserNeyLM
from rnnkit.models.numpy_lm import NumpyRNNLM
from rnnkit.models.torch_lm import RNNLM, TorchScorer
from rnnkit.text.tokenizer import build_tokenizer

LOGPROBS = np.log(np.array([0.5, 0.3, 0.15, 0.05]))


def test_temperature_top_k_top_p():
    assert np.allclose(filter_logprobs(LOGPROBS), np.exp(LOGPROBS))
    assert np.allclose(filter_logprobs(LOGPROBS, top_k=2), [0.5 / 0.8, 0.3 / 0.8, 0, 0])
    assert np.allclose(filter_logprobs(LOGPROBS, top_p=0.8), [0.5 / 0.8, 0.3 / 0.8, 0, 0])
    assert np.allclose(filter_logprobs(LOGPROBS, top_p=0.81), [0.5, 0.3, 0.15, 0] / np.float64(0.95))
    cold = filter_logprobs(LOGPROBS, temperature=0.1)
    assert cold[0] > 0.99
    hot = filter_logprobs(LOGPROBS, temperature=100.0)
    assert np.all(np.abs(hot - 0.25) < 0.01)


@pytest.mark.parametrize(
    "options",
    [
        {"temperature": 0},
        {"temperature": -1},
        {"top_k": 0},
        {"top_p": 0},
        {"top_p": 1.5},
        {"max_new_tokens": -1},
        {"seed": -2},
        {"num_beams": 0},
        {"num_beams": 2.5},
        {"num_beams": 3, "top_k": 5},
        {"num_beams": 3, "do_sample": True},
        {"num_beams": 3, "temperature": 0.7},
        {"num_beams": 3, "top_p": 0.9},
        {"stop": [""]},
        {"stop": "x"},
        {"num_return_sequences": 0},
        {"do_sample": False, "num_return_sequences": 2},
        {"num_beams": 2, "num_return_sequences": 3},
    ],
)
def test_invalid_sampling_options(options):
    with pytest.raises(ConfigError):
        SamplingConfig(**options)


def _model_and_tokenizer():
    torch.manual_seed(0)
    tokenizer = build_tokenizer("char", "hello world\n")
    model = RNNLM(ModelConfig(model="gru", layers=1, hidden=16, embed=8, vocab_size=len(tokenizer)))
    return TorchScorer(model), tokenizer


def test_same_seed_same_text_and_streaming_pieces_add_up():
    scorer, tokenizer = _model_and_tokenizer()
    pieces = []
    a = generate_text(scorer, tokenizer, "he", SamplingConfig(40, seed=5), pieces.append)
    b = generate_text(scorer, tokenizer, "he", SamplingConfig(40, seed=5))
    c = generate_text(scorer, tokenizer, "he", SamplingConfig(40, seed=6))
    assert a == b != c
    assert "".join(pieces) == a and a.startswith("he") and len(a) == 42


def test_greedy_is_argmax_and_deterministic():
    scorer, tokenizer = _model_and_tokenizer()
    a = generate_text(scorer, tokenizer, "wor", SamplingConfig(10, do_sample=False, seed=1))
    b = generate_text(scorer, tokenizer, "wor", SamplingConfig(10, do_sample=False, seed=2))
    assert a == b


def test_prompt_with_unknown_characters_is_refused_by_name():
    scorer, tokenizer = _model_and_tokenizer()
    with pytest.raises(PromptError, match="'Z'"):
        generate_text(scorer, tokenizer, "Zed", SamplingConfig(5))


def _continuation_logprobs(scorer, prompt: np.ndarray, continuations: np.ndarray) -> np.ndarray:
    """log p(continuation | prompt) of every row, each scored from scratch (no beam, no state reuse)."""
    total = np.zeros(len(continuations))
    for t in range(continuations.shape[1]):
        read = np.concatenate([np.tile(prompt, (len(continuations), 1)), continuations[:, :t]], axis=1)
        logprobs, _ = scorer.next_logprobs(read, scorer.initial_state(len(continuations)))
        total += logprobs[np.arange(len(continuations)), continuations[:, t]]
    return total


def test_a_wide_enough_beam_finds_the_likeliest_continuation():
    """Width V^2 over 3 new tokens keeps every prefix, so the search is exhaustive: its answer
    must be the argmax over all V^3 continuations, scored independently."""
    scorer, tokenizer = _model_and_tokenizer()
    prompt, vocab = tokenizer.encode("wor"), len(tokenizer)
    every = np.stack(np.meshgrid(*[np.arange(vocab)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    scores = _continuation_logprobs(scorer, prompt, every)
    ids, logprob = beam_search_ids(scorer, prompt, vocab**2, 3)
    assert ids == every[np.argmax(scores)].tolist()
    assert logprob == pytest.approx(scores.max(), abs=1e-6)


def test_beam_of_one_is_greedy_and_a_wider_beam_is_no_less_likely_here():
    scorer, tokenizer = _model_and_tokenizer()
    greedy = generate_text(scorer, tokenizer, "he", SamplingConfig(12, do_sample=False))
    ids = start_ids(tokenizer, "he")
    assert "he" + tokenizer.decode(beam_search_ids(scorer, ids, 1, 12)[0]) == greedy  # a beam of one
    prompt = tokenizer.encode("he")
    narrow, wide = beam_search_ids(scorer, prompt, 1, 12), beam_search_ids(scorer, prompt, 8, 12)
    assert _continuation_logprobs(scorer, prompt, np.array([wide[0]]))[0] == pytest.approx(wide[1], abs=1e-6)
    assert wide[1] >= narrow[1] - 1e-9
    assert beam_search_ids(scorer, prompt, 8, 0) == ([], 0.0)


def _every_scorer():
    tokens = np.array([0, 1, 2, 3, 1, 2, 0, 3, 3, 1, 0, 2] * 20)
    config = ModelConfig(model="lstm", layers=2, hidden=8, embed=4, vocab_size=4)
    torch.manual_seed(0)
    return [
        TorchScorer(RNNLM(config)),
        NumpyRNNLM(config, dtype=np.float64, seed=1),
        KneserNeyLM(3, 4).fit(tokens),
        HMMLM(3, 4, n_iter=3, seed=0).fit(tokens),
    ]


@pytest.mark.parametrize("scorer", _every_scorer(), ids=["torch", "numpy", "ngram", "hmm"])
def test_select_state_picks_rows_for_every_scorer(scorer):
    """Reading three prompts as a batch, then continuing rows [2, 0, 2], must equal continuing
    each prompt on its own."""
    prompts = np.array([[0, 1, 2], [3, 3, 1], [2, 0, 1]])
    _, state = scorer.next_logprobs(prompts, scorer.initial_state(3))
    rows, nxt = np.array([2, 0, 2]), np.array([[1], [3], [0]])
    batched, _ = scorer.next_logprobs(nxt, scorer.select_state(state, rows))
    for i, row in enumerate(rows):
        alone, _ = scorer.next_logprobs(np.concatenate([prompts[row], nxt[i]])[None, :], scorer.initial_state(1))
        assert np.allclose(batched[i], alone[0], atol=1e-5)


def test_the_model_reads_a_newline_before_the_prompt():
    tokenizer = build_tokenizer("char", "hello world\n")
    newline = tokenizer.vocab.stoi["\n"]
    assert start_ids(tokenizer, "").tolist() == [newline]
    assert start_ids(tokenizer, "he").tolist() == [newline, *tokenizer.encode("he").tolist()]
    assert start_ids(tokenizer, "\nhe").tolist() == tokenizer.encode("\nhe").tolist()  # already a line start
    one_line = build_tokenizer("char", "hello world")  # no newline to read: the prompt alone
    assert start_ids(one_line, "he").tolist() == one_line.encode("he").tolist()
    words = build_tokenizer("word", "you say yes\nI say no\n")
    assert start_ids(words, "you say").tolist() == [words.vocab.stoi["\n"], *words.encode("you say").tolist()]


def test_stop_strings_cut_the_text_and_are_not_streamed():
    from rnnkit.generate import StopText, generate_texts

    stop = StopText(("lo w", "xyz"))
    pieces = [stop.push(p) for p in ["hel", "l", "o", " w", "orld"]]
    assert pieces == ["he", "l", "", "", ""] and stop.done and stop.flush() == ""
    scorer, tokenizer = _model_and_tokenizer()
    free = generate_text(scorer, tokenizer, "h", SamplingConfig(60, seed=3))
    cut_at = free[1:].find("o") + 1  # the first generated 'o'
    assert cut_at > 0, "the seed must produce an 'o'"
    streamed = []
    text = generate_text(scorer, tokenizer, "h", SamplingConfig(60, seed=3, stop=("o",)), streamed.append)
    assert text == free[:cut_at] and "".join(streamed) == text and "o" not in text[1:]
    never = generate_text(scorer, tokenizer, "h", SamplingConfig(60, seed=3, stop=("qqq",)))
    assert never == free
    several = generate_texts(scorer, tokenizer, "h", SamplingConfig(30, seed=3, num_return_sequences=4, stop=("o",)))
    assert len(several) == 4 and all("o" not in t[1:] for t in several)


def test_samples_side_by_side_match_the_distribution_and_the_first_matches_alone():
    from rnnkit.generate import generate_texts

    scorer, tokenizer = _model_and_tokenizer()
    alone = generate_text(scorer, tokenizer, "he", SamplingConfig(1, seed=4))
    batch = generate_texts(scorer, tokenizer, "he", SamplingConfig(1, seed=4, num_return_sequences=2000))
    ids = start_ids(tokenizer, "he")
    logprobs, _ = scorer.next_logprobs(ids[None, :], scorer.initial_state(1))
    counts = np.bincount([tokenizer.encode(t[2:])[0] for t in batch], minlength=len(tokenizer)) / len(batch)
    assert np.abs(counts - np.exp(logprobs[0])).max() < 0.05  # 2000 draws: a few standard errors
    assert len(set(batch)) > 1 and batch[0] == alone  # the first row draws what one sample draws
    beams = generate_texts(scorer, tokenizer, "he", SamplingConfig(6, num_beams=4, num_return_sequences=3))
    assert beams[0] == generate_text(scorer, tokenizer, "he", SamplingConfig(6, num_beams=4)) and len(set(beams)) == 3
