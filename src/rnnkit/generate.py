"""Text generation over the scoring seam: greedy, temperature, top-k and top-p (nucleus) sampling,
and beam search.

Sampling runs in NumPy with a seeded Generator, so the same seed gives the same text for every
engine and baseline. Sampled tokens are handed to `on_text` as they are produced (streaming); a
beam search's tokens once the search has ended (until then the best continuation can change).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError, PromptError
from .models.base import Scorer
from .text.tokenizer import Tokenizer


@dataclass(frozen=True)
class SamplingConfig:
    """How to continue a prompt, in Hugging Face's names (one spelling each).

    do_sample: sample (True) or take the likeliest token (False: greedy; with num_beams > 1, beam
    search). None means "sample, unless num_beams > 1". num_return_sequences: independent samples
    (batched), or the best continuations of a beam search. stop: strings that end a continuation
    (cut before the first one; the stop string is not part of the text).
    """

    max_new_tokens: int = 200
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    do_sample: bool | None = None
    seed: int | None = None
    num_beams: int = 1  # beam search with this many continuations kept
    num_return_sequences: int = 1
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_new_tokens, bool)
            or not isinstance(self.max_new_tokens, int)
            or not 0 <= self.max_new_tokens <= 10_000_000
        ):
            raise ConfigError(f"max_new_tokens must be an integer >= 0, got {self.max_new_tokens!r}")
        if not isinstance(self.temperature, (int, float)) or not 0 < self.temperature < float("inf"):
            raise ConfigError(f"temperature must be a positive number, got {self.temperature!r}")
        if self.top_k is not None and (
            isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1
        ):
            raise ConfigError(f"top_k must be an integer >= 1, got {self.top_k!r}")
        if self.top_p is not None and (not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1):
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.do_sample is not None and not isinstance(self.do_sample, bool):
            raise ConfigError(f"do_sample must be True, False or None, got {self.do_sample!r}")
        for name in ("num_beams", "num_return_sequences"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
                raise ConfigError(f"{name} must be an integer from 1 to 10000, got {value!r}")
        self._check_stop()
        if self.num_beams > 1:
            if self.do_sample or self.top_k is not None or self.top_p is not None or self.temperature != 1.0:
                raise ConfigError(
                    "beam search (num_beams > 1) looks for the likeliest continuation: it takes no "
                    "do_sample, temperature, top_k or top_p"
                )
            if self.num_return_sequences > self.num_beams:
                raise ConfigError(
                    f"a beam of {self.num_beams} keeps {self.num_beams} continuations: "
                    f"num_return_sequences must be at most that, got {self.num_return_sequences}"
                )
        elif self.do_sample is False and self.num_return_sequences > 1:
            raise ConfigError(
                "greedy decoding (do_sample=False) has one result: num_return_sequences must be 1 "
                "(sample, or use num_beams)"
            )

    def _check_stop(self) -> None:
        if (
            isinstance(self.stop, str)
            or not isinstance(self.stop, (tuple, list))
            or not all(isinstance(s, str) for s in self.stop)
        ):
            raise ConfigError(f"stop must be a list of strings, got {self.stop!r}")
        if any(s == "" for s in self.stop):
            raise ConfigError("a stop string must not be empty (it would end every continuation at once)")
        object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def sampling(self) -> bool:
        return self.num_beams == 1 and self.do_sample is not False


RENAMED_GENERATE = {
    "beam": "num_beams",
    "greedy": "do_sample=False",
    "num_samples": "num_return_sequences",
    "max_tokens": "max_new_tokens",
    "length": "max_new_tokens",
    "stop_strings": "stop",
}


def filter_logprobs(
    logprobs: np.ndarray, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> np.ndarray:
    """The sampling distribution (..., V) from next-token log-probabilities (..., V), row by row.

    p_i proportional to exp(log p_i / temperature), restricted to the k most likely tokens
    (top-k) and then to the smallest set whose probability reaches top_p (nucleus, Holtzman 2020).
    """
    scaled = logprobs / temperature
    if top_k is not None and top_k < scaled.shape[-1]:
        kth = np.partition(scaled, -top_k, axis=-1)[..., -top_k : -top_k + 1 or None]
        scaled = np.where(scaled >= kth, scaled, -np.inf)
    probs = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs, axis=-1, kind="stable")
        cumulative = np.cumsum(np.take_along_axis(probs, order, axis=-1), axis=-1)
        # keep every token up to the first whose running sum reaches top_p (1e-12 forgives rounding)
        keep_sorted = np.concatenate(
            [np.ones_like(cumulative[..., :1], dtype=bool), cumulative[..., :-1] < top_p - 1e-12], axis=-1
        )
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        probs = np.where(keep, probs, 0.0)
        probs /= probs.sum(axis=-1, keepdims=True)
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


def generate_ids(
    scorer: Scorer, prompt_ids: np.ndarray, sampling: SamplingConfig, on_token: Callable[[int], None] | None = None
) -> list[int]:
    """Read the prompt, then produce `max_new_tokens` ids one at a time (one sequence)."""
    produced: list[int] = []

    def step(tokens: np.ndarray) -> bool:
        produced.append(int(tokens[0]))
        if on_token is not None:
            on_token(int(tokens[0]))
        return True

    generate_batch(scorer, prompt_ids, sampling, 1, step)
    return produced


def generate_batch(
    scorer: Scorer, prompt_ids: np.ndarray, sampling: SamplingConfig, rows: int, on_step: Callable[[np.ndarray], bool]
) -> None:
    """`rows` continuations of one prompt, side by side: the prompt is read once, its state copied
    to every row, then each step is one forward pass over all rows. `on_step` gets the new token
    of every row (N,) and returns False once nothing more is wanted (every row has stopped)."""
    logprobs, state = read_prompt(scorer, prompt_ids, rows)
    chooser = TokenChooser(sampling, rows)
    for _ in range(sampling.max_new_tokens):
        tokens = chooser.choose(logprobs)
        if not on_step(tokens):
            return
        logprobs, state = scorer.next_logprobs(tokens[:, None], state)


def read_prompt(scorer: Scorer, prompt_ids: np.ndarray, rows: int = 1) -> tuple[np.ndarray, Any]:
    """(log-probabilities (rows, V) of the first new token, the state): the prompt is read once
    and its state copied to every row."""
    logprobs, state = scorer.next_logprobs(prompt_ids[None, :], scorer.initial_state(1))
    if rows > 1:
        copies = np.zeros(rows, dtype=np.int64)
        logprobs, state = logprobs[copies], scorer.select_state(state, copies)
    return logprobs, state


class TokenChooser:
    """The next token of each of `rows` continuations, from their log-probabilities (rows, V):
    the likeliest (greedy) or a draw from the filtered distribution (see filter_logprobs).

    Sampling draws one uniform number per row per step, u ~ U[0, 1), and takes the first token
    whose cumulative probability exceeds u (inverse-CDF sampling). Each row has its own Generator
    (row 0: the seed itself, row r: the seed sequence [seed, r]), so a row's text does not depend
    on how many rows are drawn beside it: sample 1 of N is the text of a single sample, and a
    server that decodes many requests in one batch draws what `generate` draws.
    """

    def __init__(self, sampling: SamplingConfig, rows: int):
        self.sampling = sampling
        self.rngs = [
            np.random.default_rng(sampling.seed if row == 0 or sampling.seed is None else [sampling.seed, row])
            for row in range(rows)
        ]

    def choose(self, logprobs: np.ndarray) -> np.ndarray:
        """int64 (rows,) tokens from log-probabilities (rows, V)."""
        sampling = self.sampling
        if sampling.do_sample is False:
            return np.argmax(logprobs, axis=-1).astype(np.int64)
        probs = filter_logprobs(logprobs, sampling.temperature, sampling.top_k, sampling.top_p)
        draws = np.array([rng.random() for rng in self.rngs])
        tokens = np.minimum((np.cumsum(probs, axis=-1) <= draws[:, None]).sum(axis=-1), probs.shape[-1] - 1)
        return tokens.astype(np.int64)


def beam_search_ids(scorer: Scorer, prompt_ids: np.ndarray, width: int, max_new_tokens: int) -> tuple[list[int], float]:
    """(the `max_new_tokens` ids after the prompt that a beam of `width` finds most likely, their
    total log-probability in nats); see beam_search."""
    return beam_search(scorer, prompt_ids, width, max_new_tokens)[0]


def beam_search(
    scorer: Scorer, prompt_ids: np.ndarray, width: int, max_new_tokens: int, keep: int = 1
) -> list[tuple[list[int], float]]:
    """The `keep` best continuations a beam of `width` ends with, best first, each with its total
    log-probability in nats.

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
        kept = min(width, candidates.size)
        best = np.argpartition(-candidates, kept - 1)[:kept]
        best = best[np.argsort(-candidates[best], kind="stable")]
        rows, chosen = np.divmod(best, logprobs.shape[1])
        scores = candidates[best]
        parents.append(rows)
        tokens.append(chosen)
        if step + 1 < max_new_tokens:
            logprobs, state = scorer.next_logprobs(chosen[:, None], scorer.select_state(state, rows))
    # no step: the prompt alone, 0.0
    return [(_trace_back(parents, tokens, row), float(scores[row])) for row in range(min(keep, len(scores)))]


def _trace_back(parents: list[np.ndarray], tokens: list[np.ndarray], row: int = 0) -> list[int]:
    """A kept continuation's tokens, followed back from its last step (row 0 is the best)."""
    ids = []
    for step in range(len(tokens) - 1, -1, -1):
        ids.append(int(tokens[step][row]))
        row = int(parents[step][row])
    return ids[::-1]


class StopText:
    """A continuation's text with stop strings applied: text is let through once it cannot be the
    start of a stop string; at the first stop string the continuation ends (the stop string and
    what follows are dropped)."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops, self.pending, self.done = stops, "", False

    def push(self, piece: str) -> str:
        if self.done:
            return ""
        self.pending += piece
        found = [i for i in (self.pending.find(stop) for stop in self.stops) if i >= 0]
        if found:
            out, self.pending, self.done = self.pending[: min(found)], "", True
            return out
        hold = max(
            (
                n
                for stop in self.stops
                for n in range(min(len(stop) - 1, len(self.pending)), 0, -1)
                if self.pending.endswith(stop[:n])
            ),
            default=0,
        )
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(out) :]
        return out

    def flush(self) -> str:
        out, self.pending = ("" if self.done else self.pending), ""
        return out


def _prompt_decoder(tokenizer: Tokenizer, prompt: str, ids: np.ndarray) -> tuple[str, Any]:
    """(the text shown for the prompt, a stream decoder primed with its last tokens)."""
    stream = tokenizer.stream_decoder()
    if not prompt:
        return "".join(stream.push(i) for i in ids), stream
    for i in ids[-8:]:  # prime the decoder with the prompt's last tokens (word spacing)
        stream.push(i)
    return prompt, stream


class TextRows:
    """The texts of `rows` continuations of one prompt as their tokens arrive: each decoded (a
    stream decoder primed with the prompt's last tokens) and cut at its first stop string."""

    def __init__(self, tokenizer: Tokenizer, prompt: str, ids: np.ndarray, stop: tuple[str, ...], rows: int):
        self.prompt, first = _prompt_decoder(tokenizer, prompt, ids)  # the prompt as it is shown
        self.decoders = [first] + [_prompt_decoder(tokenizer, prompt, ids)[1] for _ in range(rows - 1)]
        self.stops = [StopText(stop) for _ in range(rows)]
        self.parts: list[list[str]] = [[self.prompt] for _ in range(rows)]

    def push(self, tokens: Sequence[int]) -> list[str]:
        """Add one token to each row; the new text of each row ("" while a stop string may be starting)."""
        return [self.push_row(row, token) for row, token in enumerate(tokens)]

    def push_row(self, row: int, token: int) -> str:
        piece = self.stops[row].push(self.decoders[row].push(token))
        self.parts[row].append(piece)
        return piece

    @property
    def stopped(self) -> bool:
        """Every row has met a stop string: nothing more will be added."""
        return all(stop.done for stop in self.stops)

    def finish(self) -> list[str]:
        """The text each row held back (a possible stop string's start that never completed)."""
        tails = [stop.flush() for stop in self.stops]
        for row, tail in enumerate(tails):
            self.parts[row].append(tail)
        return tails

    def texts(self) -> list[str]:
        """Prompt plus continuation, per row."""
        return ["".join(parts) for parts in self.parts]


def generate_texts(
    scorer: Scorer,
    tokenizer: Tokenizer,
    prompt: str,
    sampling: SamplingConfig,
    on_text: Callable[[str], None] | None = None,
) -> list[str]:
    """`num_return_sequences` texts, each the prompt plus a continuation (cut at a stop string).
    `on_text` receives the prompt, then each new piece of the first continuation as it is made
    (sampling, greedy) or once the search has ended (beam search)."""
    ids = start_ids(tokenizer, prompt)
    text = TextRows(tokenizer, prompt, ids, sampling.stop, sampling.num_return_sequences)

    def show(piece: str) -> None:
        if on_text is not None and piece:
            on_text(piece)

    if on_text is not None:
        on_text(text.prompt)
    if sampling.num_beams == 1:

        def step(tokens: np.ndarray) -> bool:
            show(text.push(tokens.tolist())[0])
            return not text.stopped

        generate_batch(scorer, ids, sampling, sampling.num_return_sequences, step)
    else:
        best = beam_search(scorer, ids, sampling.num_beams, sampling.max_new_tokens, sampling.num_return_sequences)
        for row, (continuation, _) in enumerate(best):
            for token in continuation:
                piece = text.push_row(row, token)
                if row == 0:
                    show(piece)
    tail = text.finish()[0]
    if on_text is not None and tail:
        on_text(tail)
    return text.texts()


def generate_text(
    scorer: Scorer,
    tokenizer: Tokenizer,
    prompt: str,
    sampling: SamplingConfig,
    on_text: Callable[[str], None] | None = None,
) -> str:
    """Prompt plus continuation as text; `on_text` receives the prompt, then each new piece."""
    return generate_texts(scorer, tokenizer, prompt, sampling, on_text)[0]


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
