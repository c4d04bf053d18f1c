"""Text generation over the scoring seam: greedy, temperature, top-k and top-p (nucleus) sampling.

Sampling runs in NumPy with a seeded Generator, so the same seed gives the same text for every
engine and baseline. Tokens are handed to `on_text` as they are produced (streaming).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, PromptError
from .models.base import Scorer
from .tokenize import Tokenizer


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int = 200
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) \
                or not 0 <= self.max_new_tokens <= 10_000_000:
            raise ConfigError(f"max_new_tokens must be an integer >= 0, got {self.max_new_tokens!r}")
        if not isinstance(self.temperature, (int, float)) or not 0 < self.temperature < float("inf"):
            raise ConfigError(f"temperature must be a positive number, got {self.temperature!r}")
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, int)
                                       or self.top_k < 1):
            raise ConfigError(f"top_k must be an integer >= 1, got {self.top_k!r}")
        if self.top_p is not None and (not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1):
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or self.seed < 0):
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")


def filter_logprobs(logprobs: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                    top_p: float | None = None) -> np.ndarray:
    """The sampling distribution (V,) from next-token log-probabilities (V,).

    p_i proportional to exp(log p_i / temperature), restricted to the k most likely tokens
    (top-k) and then to the smallest set whose probability reaches top_p (nucleus, Holtzman 2020).
    """
    scaled = logprobs / temperature
    if top_k is not None and top_k < scaled.size:
        kth = np.partition(scaled, -top_k)[-top_k]
        scaled = np.where(scaled >= kth, scaled, -np.inf)
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        # first index reaching top_p (1e-12 forgives rounding in the running sum)
        keep = order[: int(np.searchsorted(cumulative, top_p - 1e-12)) + 1]
        kept = np.zeros_like(probs)
        kept[keep] = probs[keep]
        probs = kept / kept.sum()
    return probs


def start_ids(tokenizer: Tokenizer, prompt: str) -> np.ndarray:
    """Prompt ids; an empty prompt starts from the tokenizer's start token (a newline if it has one)."""
    if not prompt:
        return np.array([tokenizer.start_id()], dtype=np.int64)
    ids = tokenizer.encode(prompt)
    if len(ids) == 0:
        raise PromptError("the prompt holds no tokens for this tokenizer")
    return ids


def generate_ids(scorer: Scorer, prompt_ids: np.ndarray, sampling: SamplingConfig,
                 on_token: Callable[[int], None] | None = None) -> list[int]:
    """Read the prompt, then produce `max_new_tokens` ids one at a time."""
    rng = np.random.default_rng(sampling.seed)
    state = scorer.initial_state(1)
    logprobs, state = scorer.next_logprobs(prompt_ids[None, :], state)
    produced: list[int] = []
    for _ in range(sampling.max_new_tokens):
        row = logprobs[0]
        if sampling.greedy:
            token = int(np.argmax(row))
        else:
            probs = filter_logprobs(row, sampling.temperature, sampling.top_k, sampling.top_p)
            token = int(min(np.searchsorted(np.cumsum(probs), rng.random(), side="right"), len(probs) - 1))
        produced.append(token)
        if on_token is not None:
            on_token(token)
        logprobs, state = scorer.next_logprobs(np.array([[token]], dtype=np.int64), state)
    return produced


def generate_text(scorer: Scorer, tokenizer: Tokenizer, prompt: str, sampling: SamplingConfig,
                  on_text: Callable[[str], None] | None = None) -> str:
    """Prompt plus continuation as text; `on_text` receives the prompt, then each new piece."""
    ids = start_ids(tokenizer, prompt)
    stream = tokenizer.stream_decoder()
    shown = prompt
    if not prompt:
        shown = "".join(stream.push(i) for i in ids)
    else:
        for i in ids[-8:]:  # prime the decoder with the prompt's last tokens (word spacing)
            stream.push(i)
    text = [shown]
    if on_text is not None:
        on_text(shown)

    def emit(token: int) -> None:
        piece = stream.push(token)
        text.append(piece)
        if on_text is not None and piece:
            on_text(piece)

    generate_ids(scorer, ids, sampling, emit)
    return "".join(text)
