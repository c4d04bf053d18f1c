"""Text scored token by token: log-probability, surprisal and the likeliest alternatives.

For a text w_1..w_n (its tokens under the model's tokenizer) the model first reads one
start-of-text token w_0 (`tokenizer.start_id()`: a newline, the context generation also gives a
prompt; see generate.start_ids), then every token of the text is scored:

    logprob_t   = ln p(w_t | w_0 .. w_{t-1})         nats, t = 1..n
    surprisal_t = -logprob_t / ln 2                  bits
    total       = -sum_t logprob_t                   nats
    perplexity  = exp(total / n),  bits per char = total / ln 2 / (characters of the text)

Which tokens, exactly: the stream w_0..w_n is read as `evaluate` reads a token stream, and
`evaluate` of that stream scores every token after its first, so both score w_1..w_n. A stream of
n + 1 tokens is cut into S = min(max_streams, max(1, n // 2048)) contiguous rows of
L = n // S targets (rnnkit.data.eval_batches' layout), each row read from a zero state; the last
row also scores the n - S*L (< S) targets that `evaluate_split` leaves out of a long stream. So
for n <= 4095 (one row) the totals equal `evaluate_split` on the stream; for longer texts they
equal it on every token it scores. `rnnkit evaluate RUN --data FILE` (the whole file) is this
total (api.LanguageModel.evaluate), so the two commands print the same figures.

Rows of every text are batched together (longest first), padded at their ends (an RNN never
reads ahead, so padding changes nothing before it), and walked in windows of `seq_len` with the
state carried: one forward pass per window of the whole batch, not a loop per token.

No torch here: on a NumPy scorer this module runs without importing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataError, PromptError
from .models.base import Scorer

MIN_STREAM = 2048  # the shortest row a long text is cut into: data.eval_batches' `min_stream`


@dataclass
class TextScore:
    """One text's scores; arrays are per token of the text, in order."""

    text: str
    ids: np.ndarray  # int64 (n,) the text's tokens
    starts: np.ndarray  # int64 (n,) character span [start, end) of each token in the text
    ends: np.ndarray
    logprobs: np.ndarray  # float64 (n,) ln p(token | start-of-text, the tokens before it)
    top_ids: np.ndarray | None = None  # int64 (n, k) the k likeliest tokens at each position
    top_logprobs: np.ndarray | None = None  # float64 (n, k)
    unknown: int = 0  # tokens scored as <unk>
    tokenizer: Any = field(default=None, repr=False)

    @property
    def surprisal(self) -> np.ndarray:
        """Bits: -log2 p(token | context)."""
        return -self.logprobs / math.log(2)

    @property
    def total_nats(self) -> float:
        return float(-self.logprobs.sum())

    @property
    def loss(self) -> float:
        """Mean nats per token, what `evaluate` calls loss."""
        return self.total_nats / len(self.ids)

    @property
    def bits_per_token(self) -> float:
        return self.loss / math.log(2)

    @property
    def bits_per_char(self) -> float:
        return self.total_nats / math.log(2) / max(1, len(self.text))

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 700.0))

    def totals(self) -> dict[str, float]:
        return {
            "tokens": len(self.ids),
            "chars": len(self.text),
            "total_nats": self.total_nats,
            "loss": self.loss,
            "bits_per_token": self.bits_per_token,
            "bits_per_char": self.bits_per_char,
            "perplexity": self.perplexity,
            "unk_rate": self.unknown / len(self.ids),
        }

    @property
    def tokens(self) -> list[dict[str, Any]]:
        """One dict per token: token (the text it covers), id, start, end, logprob (nats),
        surprisal (bits) and, when asked for, top: the likeliest tokens [{token, id, logprob}]."""
        names = token_names(self.tokenizer, self.top_ids) if self.top_ids is not None else None
        surprisal = self.surprisal
        rows = []
        for i, (start, end) in enumerate(zip(self.starts.tolist(), self.ends.tolist(), strict=True)):
            row = {
                "token": self.text[start:end],
                "id": int(self.ids[i]),
                "start": start,
                "end": end,
                "logprob": float(self.logprobs[i]),
                "surprisal": float(surprisal[i]),
            }
            if names is not None and self.top_ids is not None and self.top_logprobs is not None:
                row["top"] = [
                    {"token": names[i][j], "id": int(self.top_ids[i, j]), "logprob": float(self.top_logprobs[i, j])}
                    for j in range(self.top_ids.shape[1])
                ]
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, **self.totals(), "token_scores": self.tokens}


def token_names(tokenizer: Any, ids: np.ndarray) -> list[list[str]]:
    """The vocabulary's spelling of each id of (n, k) ids (BPE: the text the token decodes to)."""
    vocab = getattr(tokenizer, "vocab", None)
    if vocab is not None:
        return [[vocab.itos[i] for i in row] for row in ids.tolist()]
    cache: dict[int, str] = {}
    return [[cache.setdefault(i, tokenizer.decode([i])) for i in row] for row in ids.tolist()]


def text_tokens(tokenizer: Any, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, starts, ends): the text's tokens and the character span each covers.

    Spans index the text as the tokenizer reads it (lowercased when it lowercases; for the few
    characters whose lowercase is longer, such as 'İ', spans then index the lowercased text)."""
    if not text:
        raise DataError("the text to score is empty")
    ids = tokenizer.encode(text)
    if len(ids) == 0:
        raise DataError("the text to score holds no tokens for this tokenizer")
    source = text.lower() if tokenizer.lowercase else text
    if tokenizer.kind == "char":
        starts = np.arange(len(ids), dtype=np.int64)
        return ids, starts, starts + 1
    if tokenizer.kind == "word":
        from .text.wordscan import WORD_PATTERN

        spans = np.array([m.span() for m in WORD_PATTERN.finditer(source)], dtype=np.int64).reshape(-1, 2)
    else:
        spans = _bpe_spans(tokenizer, source)
    if len(spans) != len(ids):  # a bug, not bad input: the two readings of the text must agree
        raise RuntimeError(f"{len(ids)} tokens but {len(spans)} spans for this text")
    return ids, spans[:, 0].copy(), spans[:, 1].copy()


def _bpe_spans(tokenizer: Any, text: str) -> np.ndarray:
    """(n, 2) character offsets of byte-level BPE tokens, unit by unit as BPETokenizer.encode
    reads the text (each distinct unit encoded once); a token holding part of a character's
    bytes shares that character's span."""
    from .text.tokenizer import BPE_UNIT, LINE_BREAKS

    if LINE_BREAKS.search(text):
        pieces, at = [], 0
        for line in text.splitlines(keepends=True):
            pieces.append((at, line))
            at += len(line)
    else:
        pieces = [(m.start(), m.group()) for m in BPE_UNIT.finditer(text)]
    distinct = sorted({piece for _, piece in pieces})
    encoded = tokenizer.hf.encode_batch(distinct, add_special_tokens=False)
    offsets = {
        piece: np.array(e.offsets, dtype=np.int64).reshape(-1, 2) for piece, e in zip(distinct, encoded, strict=True)
    }
    return np.concatenate([offsets[piece] + at for at, piece in pieces]) if pieces else np.zeros((0, 2), np.int64)


def stream_rows(length: int, max_streams: int) -> list[tuple[int, int]]:
    """[start, stop) of each row's inputs in a stream of `length` tokens (targets: one later);
    data.eval_batches' layout, with the last row running to the end of the stream."""
    targets = length - 1
    streams = int(min(max_streams, max(1, targets // MIN_STREAM)))
    per_row = targets // streams
    rows = [(r * per_row, (r + 1) * per_row) for r in range(streams)]
    rows[-1] = (rows[-1][0], targets)
    return rows


def score_streams(
    scorer: Scorer,
    streams: list[np.ndarray],
    seq_len: int = 256,
    max_streams: int = 32,
    top_k: int = 0,
    batch_rows: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """For each token stream, (logprobs (n-1,), top ids (n-1, k), top log-probs) of every token
    after its first; see the module docstring for the layout."""
    rows = [
        (s, start, stop) for s, stream in enumerate(streams) for start, stop in stream_rows(len(stream), max_streams)
    ]
    rows.sort(key=lambda row: row[1] - row[2])  # longest first: a batch pads its rows to its first
    out_lp = [np.empty(len(stream) - 1) for stream in streams]
    out_ids = [np.empty((len(stream) - 1, top_k), np.int64) for stream in streams]  # empty when top_k is 0
    out_top = [np.empty((len(stream) - 1, top_k)) for stream in streams]
    batch_rows = max(1, batch_rows or max_streams)
    for first in range(0, len(rows), batch_rows):
        batch = rows[first : first + batch_rows]
        width = batch[0][2] - batch[0][1]
        block = np.zeros((len(batch), width + 1), dtype=np.int64)  # padded with id 0 at the end
        for r, (s, start, stop) in enumerate(batch):
            block[r, : stop - start + 1] = streams[s][start : stop + 1]
        lp, top_ids, top_lp = _walk(scorer, block, seq_len, top_k)
        for r, (s, start, stop) in enumerate(batch):
            out_lp[s][start:stop] = lp[r, : stop - start]
            if top_ids is not None and top_lp is not None:
                out_ids[s][start:stop], out_top[s][start:stop] = top_ids[r, : stop - start], top_lp[r, : stop - start]
    return [(out_lp[s], out_ids[s] if top_k else None, out_top[s] if top_k else None) for s in range(len(streams))]


def _walk(
    scorer: Scorer, block: np.ndarray, seq_len: int, top_k: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Score block[:, 1:] given block[:, :-1] in windows of seq_len, the state carried across."""
    rows, width = block.shape[0], block.shape[1] - 1
    lp = np.empty((rows, width))
    k = min(top_k, scorer.vocab_size)
    top_ids = np.empty((rows, width, k), np.int64) if top_k else None
    top_lp = np.empty((rows, width, k)) if top_k else None
    state = scorer.initial_state(rows)
    for t0 in range(0, width, seq_len):
        t1 = min(width, t0 + seq_len)
        lp[:, t0:t1], top, state = scorer.token_logprobs(block[:, t0:t1], block[:, t0 + 1 : t1 + 1], state, top_k)
        if top is not None and top_ids is not None and top_lp is not None:
            top_ids[:, t0:t1], top_lp[:, t0:t1] = top
    return lp, top_ids, top_lp


def score_texts(
    scorer: Scorer,
    tokenizer: Any,
    texts: list[str],
    top_k: int | None = None,
    seq_len: int = 256,
    max_streams: int = 32,
    batch_rows: int | None = None,
    max_tokens: int | None = None,
) -> list[TextScore]:
    """Score each text (see the module docstring); `max_tokens` keeps only each text's first tokens."""
    k = _check_top_k(top_k)
    start = np.array([tokenizer.start_id()], dtype=np.int64)
    tokenized = []
    for text in texts:
        try:
            ids, starts, ends = text_tokens(tokenizer, text)
        except PromptError as error:
            raise DataError(f"cannot score this text with this model: {error}") from None
        if max_tokens is not None:
            ids, starts, ends = ids[:max_tokens], starts[:max_tokens], ends[:max_tokens]
        tokenized.append((ids, starts, ends))
    streams = [np.concatenate([start, ids]) for ids, _, _ in tokenized]
    scored = score_streams(scorer, streams, seq_len, max_streams, min(k, scorer.vocab_size), batch_rows)
    unk = tokenizer.unk_id
    return [
        TextScore(
            text, ids, starts, ends, lp, top_ids, top_lp, int((ids == unk).sum()) if unk is not None else 0, tokenizer
        )
        for text, (ids, starts, ends), (lp, top_ids, top_lp) in zip(texts, tokenized, scored, strict=True)
    ]


def _check_top_k(top_k: Any) -> int:
    from .errors import ConfigError

    if top_k is None:
        return 0
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k must be an integer >= 1 (or None), got {top_k!r}")
    return top_k
