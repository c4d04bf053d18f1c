"""`rnnkit serve`: an HTTP API and a web page over trained models (FastAPI on uvicorn, the `[serve]` extra).

    POST /v1/generate   prompt -> continuations; streamed as Server-Sent Events with "stream": true
    POST /v1/score      text -> per-token log-probabilities, surprisal, top predictions, totals
    POST /v1/inspect    text -> the values of one hidden unit per token (and the units that vary most)
    GET  /v1/models     what is loaded: kind, sizes, tokenizer, training results
    GET  /healthz       liveness, generations in flight, and batching so far (steps, rows decoded)
    GET  /              the page (page/index.html, app.js, style.css: no build step, no CDN)
    GET  /openapi.json  the OpenAPI description (no /docs page: FastAPI's loads scripts from a CDN)

The endpoints are thin over the Python API: generation uses generate.py's pieces inside a batching
worker (batcher.py), scoring is `LanguageModel.score`, the unit view is studies/inspect.py's
`unit_values`. Every model's work runs on its worker thread, so the event loop only moves bytes.

Bad input gets a 4xx answer whose JSON body is {"error": "one line"}; the server never answers a
client's mistake with a 500 and keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..api import unknown_tokens_note
from ..errors import ConfigError, RnnkitError
from ..generate import SamplingConfig, start_ids
from .batcher import Generation, ModelWorker, ServerBusy
from .models import ServedModel, ServeOptions

PAGE = Path(__file__).resolve().parent / "page"
PAGE_FILES = {"": "index.html", "app.js": "app.js", "style.css": "style.css"}
Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# requests (their JSON schemas are the OpenAPI description)


class _Request(BaseModel):
    # a misspelt field is an error, not silently ignored; "5" is not a number
    model_config = ConfigDict(extra="forbid", strict=True)


class GenerateRequest(_Request):
    model: str | None = Field(None, description="a name from /v1/models (default: the first model)")
    prompt: str = Field("", description="text to continue; empty: start from a newline")
    max_new_tokens: int = Field(200, description="tokens to add (at most the server's --max-new-tokens)")
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    do_sample: bool | None = Field(None, description="false: greedy decoding (or beam search with num_beams)")
    num_beams: int = 1
    num_return_sequences: int = 1
    stop: list[str] = Field(default_factory=list, description="strings that end a continuation")
    seed: int | None = Field(None, description="the same seed gives the same text (default: a new one, returned)")
    stream: bool = Field(False, description="Server-Sent Events: start, text pieces, done")


class ScoreRequest(_Request):
    model: str | None = None
    text: str
    top_k: int = Field(5, description="likeliest alternatives reported per token (0: none)")


class InspectRequest(_Request):
    model: str | None = None
    text: str
    layer: int = 0
    signal: str = Field("h", description="h (hidden state); LSTM also c, i, f, o; GRU also z, r")
    unit: int | None = Field(None, description="the unit whose values come back (default: the one that varies most)")


# ---------------------------------------------------------------------------------------------
# errors: one line of JSON


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _validation_message(error: RequestValidationError) -> tuple[int, str]:
    """(status, one line) for pydantic's list of problems: malformed JSON is 400, the rest 422."""
    problems = error.errors()
    first = problems[0] if problems else {}
    if first.get("type") == "json_invalid":
        return 400, f"malformed JSON: {first.get('ctx', {}).get('error', 'cannot parse the body')}"
    parts = []
    for problem in problems[:3]:
        where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body") or "body"
        kind = problem.get("type", "")
        if kind == "missing":
            parts.append(f"{where} is required")
        elif kind == "extra_forbidden":
            parts.append(f"unknown field {where}")
        else:
            parts.append(f"{where}: {problem.get('msg', 'invalid')}")
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return 422, "; ".join(parts) + more


def _install_error_handlers(app: FastAPI, log: Log) -> None:
    def answer(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": _one_line(message)}, status_code=status)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return answer(error.status, error.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return answer(*_validation_message(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return answer(error.status_code, str(error.detail))

    @app.exception_handler(ServerBusy)
    async def busy(_: Request, error: ServerBusy) -> JSONResponse:
        response = answer(503, str(error))
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(RnnkitError)
    async def bad_input(_: Request, error: RnnkitError) -> JSONResponse:
        return answer(400, str(error))

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> JSONResponse:  # a bug in rnnkit, not the client's
        import traceback

        log(f"error: {request.method} {request.url.path}: {''.join(traceback.format_exception(error)).strip()}")
        return answer(500, f"internal error ({type(error).__name__}); the server log has the details")


# ---------------------------------------------------------------------------------------------
# the app


@dataclass
class ServerState:
    models: dict[str, ServedModel]
    options: ServeOptions
    log: Log
    workers: dict[str, ModelWorker] = field(default_factory=dict)
    closing: bool = False

    def model(self, name: str | None) -> ServedModel:
        if name is None:
            return next(iter(self.models.values()))
        if name not in self.models:
            raise ApiError(404, f"no model named {name!r}; loaded: {', '.join(self.models)}")
        return self.models[name]

    def begin_shutdown(self) -> None:
        """End every generation now (its stream gets a "done" event with reason "shutdown")."""
        self.closing = True
        for worker in self.workers.values():
            worker.close(timeout=0)


def create_app(models: dict[str, ServedModel], options: ServeOptions, log: Log = lambda _: None) -> FastAPI:
    """The FastAPI app over loaded models (see models.load_models)."""
    if not models:
        raise ConfigError("serve needs at least one model")
    state = ServerState(models, options, log)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for name, served in models.items():
            state.workers[name] = ModelWorker(name, served.lm, options.max_batch, options.max_concurrent, log)
        restore = _close_streams_on_signals(state)
        try:
            yield
        finally:
            restore()
            for worker in state.workers.values():
                worker.close()

    app = FastAPI(
        title="rnnkit",
        summary="Generate, score and look inside recurrent language models",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's /docs and /redoc pages load their scripts from a CDN: not offline
        redoc_url=None,
    )
    app.state.rnnkit = state
    _install_error_handlers(app, log)
    app.add_middleware(RequestLog, log=log, max_body=options.max_body_bytes)
    _routes(app, state)
    return app


def _close_streams_on_signals(state: ServerState) -> Callable[[], None]:
    """On SIGINT/SIGTERM, end the streams first (each client gets its text so far and a "done"
    event), then let uvicorn's own handler stop the server. Signal handlers belong to the main
    thread: a server run on another thread (tests) keeps uvicorn's behaviour."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(sig: int, frame: Any) -> None:
        state.begin_shutdown()
        before = previous[sig]
        if callable(before):
            before(sig, frame)
        elif sig == signal.SIGINT:
            raise KeyboardInterrupt

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, before in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, before)

    return restore


def _routes(app: FastAPI, state: ServerState) -> None:
    options = state.options

    @app.get("/", include_in_schema=False)
    @app.get("/app.js", include_in_schema=False)
    @app.get("/style.css", include_in_schema=False)
    async def page(request: Request) -> FileResponse:
        name = PAGE_FILES[request.url.path.lstrip("/")]
        return FileResponse(PAGE / name, headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", summary="Liveness: ok, the models loaded, generations in flight, batching so far")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "shutting down" if state.closing else "ok",
            "models": list(state.models),
            "in_flight": {name: worker.in_flight for name, worker in state.workers.items()},
            "batching": {name: _batching(worker) for name, worker in state.workers.items()},
        }

    @app.get("/v1/models", summary="The loaded models: kind, sizes, tokenizer and training results")
    async def list_models() -> dict[str, Any]:
        return {"models": [served.info for served in state.models.values()], "limits": options.limits()}

    @app.post("/v1/generate", summary="Continue a prompt (JSON, or Server-Sent Events with stream: true)")
    async def generate(body: GenerateRequest) -> Any:
        served = state.model(body.model)
        sampling = _sampling(body, options)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def emit(event: dict[str, Any]) -> None:  # called on the worker thread
            loop.call_soon_threadsafe(queue.put_nowait, event)

        tokenizer = served.lm.tokenizer
        ids = start_ids(tokenizer, body.prompt)  # a prompt the vocabulary cannot encode: 400 here
        generation = Generation(body.prompt, ids, sampling, emit, unknown_tokens_note(tokenizer, body.prompt))
        state.workers[served.name].submit(generation)
        if body.stream:
            return StreamingResponse(
                _sse(generation, queue, served.name),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            return await _collect(generation, queue, served.name)
        finally:
            generation.cancel()  # a client gone before the answer: stop decoding for it

    @app.post("/v1/score", summary="Per-token log-probabilities, surprisal and totals of a text")
    async def score(body: ScoreRequest) -> dict[str, Any]:
        served = state.model(body.model)
        _check_text(body.text, "score", options)
        if not 0 <= body.top_k <= 50:
            raise ApiError(422, f"top_k must be from 0 to 50, got {body.top_k}")
        result = await _on_worker(state, served, lambda: served.lm.score(body.text, top_k=body.top_k or None))
        return {"model": served.name, **result.to_dict()}

    @app.post("/v1/inspect", summary="One hidden unit's value after each token of a text (neural models)")
    async def inspect(body: InspectRequest) -> dict[str, Any]:
        served = state.model(body.model)
        _check_text(body.text, "inspect", options)
        return await _on_worker(
            state, served, lambda: served.unit_view(body.text, body.layer, body.signal, body.unit, options)
        )


def _batching(worker: ModelWorker) -> dict[str, Any]:
    """Decoding steps taken since the start and the request rows they decoded: more than one row
    per step on average means that clients' generations shared forward passes."""
    steps, rows = worker.steps, worker.rows_decoded
    return {"steps": steps, "rows": rows, "mean_rows_per_step": round(rows / steps, 3) if steps else 0.0}


def _check_text(text: str, purpose: str, options: ServeOptions) -> None:
    """A text to score or inspect: not empty (422), not over --max-score-chars (413)."""
    _check_length("text", len(text), options.max_score_chars, "--max-score-chars")
    if not text:
        raise ApiError(422, f"text is empty: there is nothing to {purpose}")


def _check_length(what: str, length: int, limit: int, option: str) -> None:
    if length > limit:
        raise ApiError(413, f"the {what} is {length:,} characters; this server takes at most {limit:,} ({option})")


def _sampling(body: GenerateRequest, options: ServeOptions) -> SamplingConfig:
    """The request's settings, checked against the server's limits (413/422) and then by
    SamplingConfig itself (400 with its message)."""
    _check_length("prompt", len(body.prompt), options.max_prompt_chars, "--max-prompt-chars")
    for name, value, limit, option in (
        ("max_new_tokens", body.max_new_tokens, options.max_new_tokens, "--max-new-tokens"),
        ("num_return_sequences", body.num_return_sequences, options.max_return_sequences, "--max-samples"),
        ("num_beams", body.num_beams, options.max_beams, "--max-beams"),
    ):
        if value > limit:
            raise ApiError(422, f"{name} is {value:,}; this server allows at most {limit:,} ({option})")
    if not math.isfinite(body.temperature):
        raise ApiError(422, "temperature must be a finite number")
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    return SamplingConfig(
        body.max_new_tokens,
        body.temperature,
        body.top_k,
        body.top_p,
        body.do_sample,
        seed,
        body.num_beams,
        body.num_return_sequences,
        tuple(body.stop),
    )


async def _sse(generation: Generation, queue: asyncio.Queue[dict[str, Any]], model: str) -> AsyncIterator[str]:
    """Server-Sent Events: `data: {json}` per event until "done" (or "error"). A client that goes
    away cancels the generation (Starlette stops iterating; `finally` runs).

    The events waiting in the queue are sent in one write: a client that reads slower than the
    model decodes gets its backlog at once instead of one write per token, and a client that has
    gone away costs one failed write, not a run of them (asyncio logs "socket.send() raised
    exception." from the fifth write to a closed socket on)."""
    try:
        while True:
            events = [await queue.get()]
            while events[-1]["event"] not in ("done", "error") and not queue.empty():
                events.append(queue.get_nowait())
            yield "".join(f"data: {json.dumps({**event, 'model': model}, ensure_ascii=False)}\n\n" for event in events)
            if events[-1]["event"] in ("done", "error"):
                return
    finally:
        generation.cancel()


async def _collect(generation: Generation, queue: asyncio.Queue[dict[str, Any]], model: str) -> dict[str, Any]:
    started = time.perf_counter()
    while True:
        event = await queue.get()
        if event["event"] == "error":
            raise ApiError(event.get("status", 400), event["error"])
        if event["event"] == "done":
            texts = event["texts"]
            answer = {
                "model": model,
                "text": texts[0] if texts else "",
                "texts": texts,
                "reason": event["reason"],
                "new_tokens": event["new_tokens"],
                "seed": event["seed"],
                "seconds": round(time.perf_counter() - started, 4),
            }
            if generation.warning:
                answer["warning"] = generation.warning
            return answer


async def _on_worker(state: ServerState, served: ServedModel, function: Callable[[], Any]) -> Any:
    """Run `function` on the model's worker thread (between decoding steps) and await it."""
    return await asyncio.wrap_future(state.workers[served.name].call(function))


# ---------------------------------------------------------------------------------------------
# request log and body limit (plain ASGI: it sees when a streamed response really ends)


class RequestLog:
    """One line per request when its response has been sent: client, method, path, status,
    bytes sent, milliseconds (a stream's whole duration). Refuses bodies over `max_body` bytes
    (413) before they are read."""

    def __init__(self, app: Any, log: Log, max_body: int):
        self.app, self.log, self.max_body = app, log, max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status, sent = time.perf_counter(), 0, 0

        async def counting_send(message: dict) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        length = dict(scope.get("headers") or []).get(b"content-length")
        try:
            if length is not None and length.isdigit() and int(length) > self.max_body:
                await _refuse(
                    counting_send, 413, f"the request body is {int(length):,} bytes; the limit is {self.max_body:,}"
                )
            else:
                await self.app(scope, receive, counting_send)
        finally:
            client = scope.get("client") or ("-", 0)
            milliseconds = (time.perf_counter() - started) * 1000
            self.log(f'{client[0]} "{scope["method"]} {scope["path"]}" {status or "-"} {sent} B {milliseconds:.0f} ms')


async def _refuse(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
