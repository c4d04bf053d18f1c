"""Loss, perplexity and bits: one streaming evaluation for every model behind the scoring seam.

    loss = -(1/n) sum_t ln p(w_t | w_<t)          nats per token
    ppl  = exp(loss)
    bits per token = loss / ln 2
    bpc  = (n * bits per token) / (characters of text those n tokens cover)

bpc divides by characters of the original text, so a word model and a char model of the same text
are compared in one unit (a word model's per-token bits are spread over the characters of its words
and the spaces between them).
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

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def metrics_from_nll(total_nats: float, tokens: int, chars_per_token: float) -> EvalResult:
    loss = total_nats / tokens
    bits = loss / math.log(2)
    chars = tokens * chars_per_token
    return EvalResult(loss=loss, ppl=math.exp(min(loss, 700.0)), bits_per_token=bits,
                      bpc=bits / chars_per_token, tokens=tokens, chars=chars)


def evaluate_split(scorer: Scorer, split: TokenSplit, seq_len: int = 256, max_streams: int = 32,
                   max_tokens: int | None = None) -> EvalResult:
    """Score every token of a split (after its first) in contiguous streams with carried state."""
    batches = eval_batches(split.ids, seq_len, max_streams, max_tokens=max_tokens)
    on_device = hasattr(scorer, "score_tensor")  # torch: keep the sum on the device, sync once
    state = scorer.initial_state(batches.num_streams)
    total = 0.0
    for x, y in batches:
        if on_device:
            nll, state = scorer.score_tensor(x, y, state)
            state = detach_state(state)
        else:
            nll, state = scorer.score(x.numpy(), y.numpy(), state)
        total = total + nll
    return metrics_from_nll(float(total), batches.tokens, split.chars_per_token)
