import numpy as np
import pytest
import torch

from rnnkit.config import ModelConfig
from rnnkit.errors import ConfigError, PromptError
from rnnkit.generate import SamplingConfig, filter_logprobs, generate_text
from rnnkit.models.torch_lm import RNNLM, TorchScorer
from rnnkit.tokenize import build_tokenizer

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


@pytest.mark.parametrize("options", [{"temperature": 0}, {"temperature": -1}, {"top_k": 0}, {"top_p": 0},
                                     {"top_p": 1.5}, {"max_new_tokens": -1}, {"seed": -2}])
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
    a = generate_text(scorer, tokenizer, "wor", SamplingConfig(10, greedy=True, seed=1))
    b = generate_text(scorer, tokenizer, "wor", SamplingConfig(10, greedy=True, seed=2))
    assert a == b


def test_prompt_with_unknown_characters_is_refused_by_name():
    scorer, tokenizer = _model_and_tokenizer()
    with pytest.raises(PromptError, match="'Z'"):
        generate_text(scorer, tokenizer, "Zed", SamplingConfig(5))
