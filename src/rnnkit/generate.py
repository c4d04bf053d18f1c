"""Text generation over the scoring seam: greedy, temperature, top-k and top-p (nucleus) sampling,
and beam search.

Sampling runs in NumPy with a seeded Generator, so the same seed gives the same text for every
engine and baseline. Sampled tokens are handed to `on_text` as they are produced (streaming); a
beam search's tokens once the search has ended (until then the best continuation can change).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, PromptError
from .models.base import Scorer
from .text.tokenizer import Tokenizer


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int = 200
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False
    seed: int | None = None
    beam: int | None = None  # beam search with this many continuations kept

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
        if self.beam is not None:
            if isinstance(self.beam, bool) or not isinstance(self.beam, int) or not 1 <= self.beam <= 10_000:
                raise ConfigError(f"beam must be an integer from 1 to 10000, got {self.beam!r}")
            if self.greedy or self.top_k is not None or self.top_p is not None or self.temperature != 1.0:
                raise ConfigError("beam search looks for the most likely continuation: it takes no temperature, "
                                  "top-k, top-p or greedy")


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
    """The ids the model reads before it generates: a newline, then the prompt.

    Models learn from windows cut anywhere in a stream, each starting from the state the last
    one left, so a zero state followed at once by a prompt's first character is unlike anything
    they were trained on; after a newline the prompt reads as the start of a line (the
    shakespeare-char-cpu preset's model: the first 30 characters of 200 validation lines cost
    2.04 nats/char from a zero state, 1.66 after a newline; benchmarks/prompt_context.py). An
    empty prompt is the newline alone; a prompt that starts with a newline, or a vocabulary
    without one, gets nothing added.
    """
    start = np.array([tokenizer.start_id()], dtype=np.int64)
    if not prompt:
        return start
    ids = tokenizer.encode(prompt)
    if len(ids) == 0:
        raise PromptError("the prompt holds no tokens for this tokenizer")
    if prompt.startswith("\n") or tokenizer.decode(start) != "\n":
        return ids
    return np.concatenate([start, ids])


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


def beam_search_ids(scorer: Scorer, prompt_ids: np.ndarray, width: int, max_new_tokens: int) -> tuple[list[int], float]:
    """(the `max_new_tokens` ids after the prompt that a beam of `width` finds most likely, their
    total log-probability in nats).

    At each step every kept continuation is extended by every token, and the `width` extensions
    with the highest log p(y_1..y_t | prompt) = sum_i log p(y_i | prompt, y_<i) are kept (beam
    search as in d2l.ai's "Beam Search" section). With no end token every candidate has the same
    length, so the sums compare without length normalisation. Width 1 is greedy decoding; a width
    of at least V^(n-1) for n new tokens tries every continuation. In between, a wider beam
    usually finds a likelier continuation, but with no guarantee of the likeliest.
    """
    logprobs, state = scorer.next_logprobs(prompt_ids[None, :], scorer.initial_state(1))
    scores = np.zeros(1)
    parents, tokens = [], []  # per step: the kept row each continuation extends, and its token
    for step in range(max_new_tokens):
        candidates = (scores[:, None] + logprobs).ravel()
        keep = min(width, candidates.size)
        best = np.argpartition(-candidates, keep - 1)[:keep]
        best = best[np.argsort(-candidates[best], kind="stable")]
        rows, chosen = np.divmod(best, logprobs.shape[1])
        scores = candidates[best]
        parents.append(rows)
        tokens.append(chosen)
        if step + 1 < max_new_tokens:
            logprobs, state = scorer.next_logprobs(chosen[:, None], scorer.select_state(state, rows))
    return _trace_back(parents, tokens), float(scores[0])  # no step: the prompt alone, 0.0


def _trace_back(parents: list[np.ndarray], tokens: list[np.ndarray]) -> list[int]:
    """The best continuation's tokens, followed back from its last step (row 0 is the best)."""
    row, ids = 0, []
    for step in range(len(tokens) - 1, -1, -1):
        ids.append(int(tokens[step][row]))
        row = int(parents[step][row])
    return ids[::-1]


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

    if sampling.beam is None:
        generate_ids(scorer, ids, sampling, emit)
    else:
        for token in beam_search_ids(scorer, ids, sampling.beam, sampling.max_new_tokens)[0]:
            emit(token)
    return "".join(text)


PROMPT_WORDS = 3  # a prompt long enough to set the scene, short enough to leave the model the text


def prompt_from_text(tokenizer: Tokenizer, ids: np.ndarray, words: int = PROMPT_WORDS) -> str:
    """The first `words` words of the first whole line among the first 400 tokens of `ids`
    (a run's validation split: text the model did not train on, in its own style), for the
    sample a run ends with. The first line is tried last (a split usually starts mid-line), and a
    line whose words the vocabulary lacks is passed over. "" when no line will do: the sample
    then starts from a newline (see start_ids)."""
    lines = tokenizer.decode(np.asarray(ids[:400]).tolist()).split("\n")
    whole = lines[1:-1] if len(lines) > 2 else []  # the last line may be cut at token 400
    for line in whole + lines[:1]:
        prompt = " ".join(line.split()[:words])
        if prompt and _encodes_fully(tokenizer, prompt):
            return prompt
    return ""


def _encodes_fully(tokenizer: Tokenizer, text: str) -> bool:
    try:
        ids = tokenizer.encode(text)
    except PromptError:
        return False
    unk = getattr(tokenizer, "unk_id", None)
    return len(ids) > 0 and (unk is None or not (ids == unk).any())
