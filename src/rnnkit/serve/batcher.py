"""One worker thread per served model: it decodes every client's generation in one batch, and
runs scoring and unit traces between decoding steps.

Decoding one token for N requests costs about one forward pass of a batch of N, not N passes: a
recurrent step is a matrix product whose cost grows slowly with the batch on a CPU and hardly at
all on a GPU. So the worker keeps one joined state for every row of every active request, and
each step (1) picks each request's next tokens from its rows of the log-probabilities with that
request's own sampling settings and random generators, (2) drops the rows of requests that have
ended, and (3) reads all the new tokens in one forward pass. A request that arrives joins the
batch at the next step (its prompt is read on its own, then its state joined to the others).

What each request draws is what `rnnkit generate` draws with the same settings: the pieces used
here are generate.py's (read_prompt, TokenChooser, TextRows), and each request's random numbers
come from its own generators. Only the floating-point rounding of a batched matrix product can
differ from that of a single row, which can change a sampled token when a draw falls within about
1e-7 of a boundary between two tokens.

Beam search is not batched across requests (a beam is already a batch); it runs between steps.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import RnnkitError
from ..generate import SamplingConfig, TextRows, TokenChooser, generate_texts, read_prompt

Emit = Callable[[dict[str, Any]], None]
STREAM_INTERVAL = 0.02  # seconds between a stream's "text" events (50 a second: smooth to the eye)


class ServerBusy(RnnkitError):
    """Too many generations in flight: the client should retry later (HTTP 503)."""


@dataclass
class Generation:
    """One request: a prompt, its sampling settings, and where its events go (`emit` is called
    from the worker thread). `cancel()` may be called from any thread."""

    prompt: str
    ids: np.ndarray  # what the model reads first: generate.start_ids(tokenizer, prompt)
    sampling: SamplingConfig
    emit: Emit
    warning: str | None = None  # prompt tokens read as <unk>, said in the "start" event
    cancelled: threading.Event = field(default_factory=threading.Event)
    # set by the worker
    text: TextRows | None = None
    chooser: TokenChooser | None = None
    produced: int = 0
    started: float = 0.0
    finished: bool = False
    unsent: list[str] | None = None  # text made since the last "text" event, per row
    last_sent: float = 0.0

    @property
    def rows(self) -> int:
        return self.sampling.num_return_sequences

    def cancel(self) -> None:
        self.cancelled.set()


class ModelWorker:
    """Serialises every use of one model on one thread (a model's forward pass is not shared
    between threads) and batches generations across requests.

    max_batch: requests decoded together in one forward pass (1: one request at a time, in order).
    max_pending: generations in flight (decoding or waiting); one more is refused with ServerBusy.
    """

    def __init__(
        self, name: str, lm: Any, max_batch: int = 64, max_pending: int = 64, log: Callable[[str], None] = print
    ):
        self.name, self.lm, self.scorer, self.log = name, lm, lm.scorer, log
        self.max_batch, self.max_pending = max_batch, max_pending
        self._lock = threading.Condition()
        self._waiting: deque[Generation] = deque()
        self._tasks: deque[tuple[Callable[[], Any], Future]] = deque()
        self._active: list[Generation] = []
        self._logprobs: np.ndarray | None = None  # (rows of every active request, V)
        self._state: Any = None
        self._closing = False
        self.steps = 0  # decoding steps taken, and the request-rows they decoded (batching, measured)
        self.rows_decoded = 0
        self._thread = threading.Thread(target=self._run, name=f"rnnkit-serve-{name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ from any thread

    def submit(self, generation: Generation) -> None:
        with self._lock:
            if self._closing:
                raise ServerBusy("the server is shutting down")
            if len(self._active) + len(self._waiting) >= self.max_pending:
                raise ServerBusy(
                    f"{self.max_pending} generations are already in flight for {self.name} "
                    "(--max-concurrent); retry shortly"
                )
            self._waiting.append(generation)
            self._lock.notify()

    def call(self, function: Callable[[], Any]) -> Future:
        """Run `function` on the worker thread between decoding steps; its result as a Future."""
        future: Future = Future()
        with self._lock:
            if self._closing:
                raise ServerBusy("the server is shutting down")
            self._tasks.append((function, future))
            self._lock.notify()
        return future

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._active) + len(self._waiting)

    def close(self, timeout: float = 5.0) -> None:
        """End every generation (reason "shutdown", its text so far) and stop the thread."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ the worker thread

    def _run(self) -> None:
        while True:
            with self._lock:
                while not (self._closing or self._waiting or self._tasks or self._active):
                    self._lock.wait()
                if self._closing:
                    break
                tasks = list(self._tasks)
                self._tasks.clear()
                room = self.max_batch - len(self._active)
                arriving = [self._waiting.popleft() for _ in range(min(room, len(self._waiting)))]
            for function, future in tasks:
                self._run_task(function, future)
            try:
                for generation in arriving:
                    self._admit(generation)
                if self._active:
                    self._step()
            except Exception as error:  # a bug: end what is in flight with an error, keep serving
                self._fail(self._active + arriving, error)
        self._shut_down()

    @staticmethod
    def _run_task(function: Callable[[], Any], future: Future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(function())
        except BaseException as error:  # handed to the request that asked: it answers 4xx or 500
            future.set_exception(error)

    def _admit(self, generation: Generation) -> None:
        """Read the prompt; join the batch, or (beam search) run the whole search now."""
        generation.started = time.perf_counter()
        if generation.cancelled.is_set():
            return self._finish(generation, "cancelled")
        sampling, ids = generation.sampling, generation.ids
        if sampling.num_beams > 1:
            return self._beam(generation)
        generation.text = TextRows(self.lm.tokenizer, generation.prompt, ids, sampling.stop, generation.rows)
        generation.chooser = TokenChooser(sampling, generation.rows)
        self._start(generation, generation.text.prompt)
        if sampling.max_new_tokens == 0:
            return self._finish(generation, "length")
        logprobs, state = read_prompt(self.scorer, ids, generation.rows)
        self._logprobs = logprobs if self._logprobs is None else np.concatenate([self._logprobs, logprobs])
        self._state = state if self._state is None else self.scorer.join_states([self._state, state])
        self._active.append(generation)

    @staticmethod
    def _start(generation: Generation, prompt: str) -> None:
        event = {"event": "start", "prompt": prompt}
        if generation.warning:
            event["warning"] = generation.warning
        generation.emit(event)

    def _beam(self, generation: Generation) -> None:
        shown: list[str] = []
        texts = generate_texts(self.scorer, self.lm.tokenizer, generation.prompt, generation.sampling, shown.append)
        self._start(generation, shown[0])
        generation.produced = generation.sampling.max_new_tokens
        generation.emit({"event": "text", "pieces": [text[len(shown[0]) :] for text in texts]})
        generation.finished = True
        generation.emit(self._done_event(generation, texts, "length"))

    def _step(self) -> None:
        """One token for every row of every active request, then one forward pass for those that go on."""
        assert self._logprobs is not None
        kept_rows: list[int] = []
        kept_tokens: list[np.ndarray] = []
        still: list[Generation] = []
        row = 0
        for generation in self._active:
            assert generation.chooser is not None and generation.text is not None
            rows = range(row, row + generation.rows)
            row += generation.rows
            if generation.cancelled.is_set():
                self._finish(generation, "cancelled")
                continue
            tokens = generation.chooser.choose(self._logprobs[rows.start : rows.stop])
            pieces = generation.text.push(tokens.tolist())
            generation.produced += 1
            if any(pieces):
                self._send_text(generation, pieces)
            if generation.text.stopped:
                self._finish(generation, "stop")
            elif generation.produced >= generation.sampling.max_new_tokens:
                self._finish(generation, "length")
            else:
                kept_rows.extend(rows)
                kept_tokens.append(tokens)
                still.append(generation)
        self.steps += 1
        self.rows_decoded += row
        self._active = still
        if not still:
            self._logprobs = self._state = None
            return
        state = self._state
        if len(kept_rows) < row:
            state = self.scorer.select_state(state, np.asarray(kept_rows, dtype=np.int64))
        tokens = np.concatenate(kept_tokens)
        self._logprobs, self._state = self.scorer.next_logprobs(tokens[:, None], state)

    def _fail(self, generations: list[Generation], error: Exception) -> None:
        import traceback

        self.log(f"error in {self.name}'s worker: {''.join(traceback.format_exception(error)).strip()}")
        for generation in generations:
            if not generation.finished:
                generation.finished = True
                generation.emit({"event": "error", "status": 500, "error": f"internal error ({type(error).__name__})"})
        self._active, self._logprobs, self._state = [], None, None

    @staticmethod
    def _send_text(generation: Generation, pieces: list[str], now: bool = False) -> None:
        """Hand new text to the client at most every STREAM_INTERVAL seconds (and at once the first
        time): a step of 32 clients is one forward pass, but 32 events for the event loop to encode
        and write, and the loop shares the process with the decoding."""
        unsent = generation.unsent
        generation.unsent = pieces if unsent is None else [a + b for a, b in zip(unsent, pieces, strict=True)]
        clock = time.perf_counter()
        if now or clock - generation.last_sent >= STREAM_INTERVAL:
            if any(generation.unsent):
                generation.emit({"event": "text", "pieces": generation.unsent})
            generation.unsent, generation.last_sent = None, clock

    def _finish(self, generation: Generation, reason: str) -> None:
        texts: list[str] = []
        if generation.text is not None:
            tails = generation.text.finish()
            self._send_text(generation, tails, now=True)
            texts = generation.text.texts()
        generation.finished = True
        generation.emit(self._done_event(generation, texts, reason))

    def _done_event(self, generation: Generation, texts: list[str], reason: str) -> dict[str, Any]:
        seconds = time.perf_counter() - generation.started if generation.started else 0.0
        return {
            "event": "done",
            "reason": reason,  # length, stop (a stop string), cancelled, shutdown
            "texts": texts,
            "new_tokens": generation.produced,
            "seconds": round(seconds, 4),
            "seed": generation.sampling.seed,
        }

    def _shut_down(self) -> None:
        with self._lock:
            waiting = list(self._waiting)
            tasks = list(self._tasks)
            self._waiting.clear()
            self._tasks.clear()
        for generation in self._active + waiting:
            self._finish(generation, "shutdown")
        self._active = []
        for _, future in tasks:
            future.cancel()
