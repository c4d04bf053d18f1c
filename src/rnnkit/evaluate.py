"""Loss, perplexity and bits: one streaming evaluation for every model behind the scoring seam.

    loss = -(1/n) sum_t ln p(w_t | w_<t)          nats per token
    ppl  = exp(loss)
    bits per token = loss / ln 2
    bpc  = (n * bits per token) / (characters of text those n tokens cover)

bpc divides by characters of the original text, so a word model and a char model of the same text
are compared in one unit (a word model's per-token bits are spread over the characters of its words
and the spaces between them). `unk_rate` says how much of that is a fair comparison: a token scored
as `<unk>` never spells out its word, so its characters cost less than they would a char model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .data import TokenSplit, eval_batches
from .models.base import Scorer
from .models.torch_lm import detach_state


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
    return EvalResult(loss=loss, ppl=math.exp(min(loss, 700.0)), bits_per_token=bits,
                      bpc=bits / chars_per_token, tokens=tokens, chars=chars, unk_rate=unknown / tokens)


def evaluate_split(scorer: Scorer, split: TokenSplit, seq_len: int = 256, max_streams: int = 32,
                   max_tokens: int | None = None, unk_id: int | None = None) -> EvalResult:
    """Score every token of a split (after its first) in contiguous streams with carried state;
    `unk_id` (the vocabulary's <unk>, if it has one) is counted among the scored targets."""
    batches = eval_batches(split.ids, seq_len, max_streams, max_tokens=max_tokens)
    on_device = hasattr(scorer, "score_tensor")  # torch: keep the sum on the device, sync once
    state = scorer.initial_state(batches.num_streams)
    total, unknown = 0.0, 0
    for x, y in batches:
        if unk_id is not None:
            unknown += int((y == unk_id).sum())
        if on_device:
            nll, state = scorer.score_tensor(x, y, state)
            state = detach_state(state)
        else:
            nll, state = scorer.score(x.numpy(), y.numpy(), state)
        total = total + nll
    return metrics_from_nll(float(total), batches.tokens, split.chars_per_token, unknown)
