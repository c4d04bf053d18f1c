"""Loss, perplexity and bits: one streaming evaluation for every model behind the scoring seam.

    loss = -(1/n) sum_t ln p(w_t | w_<t)          nats per token
    ppl  = exp(loss)
    bits per token = loss / ln 2
    bpc  = (n * bits per token) / (characters of text those n tokens cover)

bpc divides by characters of the original text, so a word model and a char model of the same text
are compared in one unit (a word model's per-token bits are spread over the characters of its words
and the spaces between them). `unk_rate` says how much of that is a fair comparison: a token scored
as `<unk>` never spells out its word, so its characters cost less than they would a char model.

`eval_settings` is the one evaluation policy (window length, streams, token cap) for training,
baselines and loaded models alike; `evaluate_split` talks to the model only through the scoring
seam (models/base.py), so it has no case for any engine.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .config import DataConfig
from .models.base import Scorer

if TYPE_CHECKING:  # data imports torch; `eval_settings` and `EvalResult` (used by score) do not need it
    from .data import TokenSplit

MIN_EVAL_SEQ_LEN = 256


@dataclass(frozen=True)
class EvalResult:
    loss: float
    ppl: float
    bits_per_token: float
    bpc: float
    tokens: int
    chars: float
    unk_rate: float = 0.0  # fraction of the scored tokens that are <unk>

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def metrics_from_nll(total_nats: float, tokens: int, chars_per_token: float, unknown: int = 0) -> EvalResult:
    loss = total_nats / tokens
    bits = loss / math.log(2)
    chars = tokens * chars_per_token
    return EvalResult(
        loss=loss,
        ppl=math.exp(min(loss, 700.0)),
        bits_per_token=bits,
        bpc=bits / chars_per_token,
        tokens=tokens,
        chars=chars,
        unk_rate=unknown / tokens,
    )


@dataclass(frozen=True)
class EvalSettings:
    """How a split is walked: window length, most parallel streams, and a cap on the tokens scored."""

    seq_len: int
    max_streams: int
    max_tokens: int | None = None


def eval_settings(data: DataConfig, max_tokens: int | None = None) -> EvalSettings:
    """The evaluation policy for a model trained with `data`: windows of max(T, 256) tokens (the
    state is carried across windows, so their length changes no figure, and longer windows cost
    fewer calls), at most N (the training batch) streams, each at least 2,048 tokens long (see
    data.eval_batches), and at most `max_tokens` targets (None: all; training passes
    train.eval_max_tokens, a loaded model's `evaluate` its caller's cap)."""
    return EvalSettings(max(data.seq_len, MIN_EVAL_SEQ_LEN), data.batch_size, max_tokens)


def evaluate_split(scorer: Scorer, split: TokenSplit, settings: EvalSettings, unk_id: int | None = None) -> EvalResult:
    """Score every token of a split (after its first) in contiguous streams with carried state;
    `unk_id` (the vocabulary's <unk>, if it has one) is counted among the scored targets.

    The running total is what `Scorer.score_batch` returns: on a GPU it stays on the device and
    is read once, at the end, so the host never waits for the device per window.
    """
    from .data import eval_batches

    batches = eval_batches(split.ids, settings.seq_len, settings.max_streams, max_tokens=settings.max_tokens)
    state = scorer.initial_state(batches.num_streams)
    total: Any = 0.0
    unknown = 0
    for x, y in batches:
        if unk_id is not None:
            unknown += int((y == unk_id).sum())
        nll, state = scorer.score_batch(x, y, state)
        total = total + nll
    return metrics_from_nll(float(total), batches.tokens, split.chars_per_token, unknown)
