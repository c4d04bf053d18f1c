"""The evaluation policy and the scoring seam as the evaluation loop uses it."""

import math

import numpy as np
import pytest
import torch

from rnnkit.config import DataConfig, ModelConfig
from rnnkit.data import TokenSplit
from rnnkit.evaluate import EvalSettings, eval_settings, evaluate_split
from rnnkit.models.hmm import HMMLM
from rnnkit.models.ngram import KneserNeyLM
from rnnkit.models.numpy_lm import NumpyRNNLM
from rnnkit.models.torch_lm import RNNLM, TorchScorer

V = 11
IDS = (np.arange(3000) * 7 % V).astype(np.int64)


def test_eval_settings_are_the_one_policy():
    assert eval_settings(DataConfig(seq_len=64, batch_size=8)) == EvalSettings(256, 8, None)
    assert eval_settings(DataConfig(seq_len=512, batch_size=2), max_tokens=1000) == EvalSettings(512, 2, 1000)


def _scorers():
    torch.manual_seed(0)
    config = ModelConfig(model="gru", layers=1, hidden=8, embed=4, vocab_size=V)
    torch_model = RNNLM(config).eval()
    numpy_model = NumpyRNNLM(config, dtype=np.float64)
    numpy_model.load_state_dict({k: v.detach().double().numpy() for k, v in torch_model.state_dict().items()})
    return {
        "torch": TorchScorer(torch_model),
        "numpy": numpy_model,
        "ngram": KneserNeyLM(3, V).fit(IDS[:2000]),
        "hmm": HMMLM(3, V, n_iter=2, seed=0).fit(IDS[:2000]),
    }


@pytest.mark.parametrize("kind", ["torch", "numpy", "ngram", "hmm"])
def test_score_batch_totals_what_score_totals(kind):
    """Every scorer takes the evaluation batches' tensors; only torch keeps the total on its device."""
    scorer = _scorers()[kind]
    x = torch.as_tensor(IDS[:40].reshape(2, 20))
    y = torch.as_tensor(IDS[1:41].reshape(2, 20))
    total, _ = scorer.score_batch(x, y, scorer.initial_state(2))
    expected, _ = scorer.score(x.numpy(), y.numpy(), scorer.initial_state(2))
    assert isinstance(total, torch.Tensor if kind == "torch" else float)
    assert float(total) == pytest.approx(expected, rel=1e-9)
    result = evaluate_split(scorer, TokenSplit(IDS, len(IDS)), EvalSettings(16, 4, 500))
    assert result.tokens == 500 and math.isfinite(result.loss) and result.loss > 0


def test_torch_and_numpy_evaluate_alike_through_the_seam():
    scorers = _scorers()
    split, settings = TokenSplit(IDS, len(IDS)), EvalSettings(32, 3, None)
    ours, theirs = (evaluate_split(scorers[kind], split, settings) for kind in ("torch", "numpy"))
    assert ours.tokens == theirs.tokens == len(IDS) - 1  # one stream: every token after the first
    assert ours.loss == pytest.approx(theirs.loss, rel=1e-5)


class _Total:
    """A lazily read total, as a device tensor is: counts how often the loop reads it."""

    reads = 0

    def __init__(self, value: float):
        self.value = value

    def __add__(self, other):
        return _Total(self.value + float(other.value if isinstance(other, _Total) else other))

    __radd__ = __add__

    def __float__(self):
        _Total.reads += 1
        return self.value


class _LazyScorer:
    """A scorer whose totals must not be read per window (one nat per target)."""

    vocab_size = V

    def initial_state(self, batch_size):
        return None

    def score_batch(self, idx, targets, state):
        return _Total(float(targets.numel())), state


def test_the_evaluation_loop_reads_the_total_once():
    """The torch scorer's total stays on the GPU; the loop must read it once, at the end."""
    _Total.reads = 0
    result = evaluate_split(_LazyScorer(), TokenSplit(IDS, len(IDS)), EvalSettings(16, 4, None))
    assert _Total.reads == 1 and result.loss == pytest.approx(1.0)
