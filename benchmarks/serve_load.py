"""`rnnkit serve` under load (issue 19, item 4): concurrent clients against a real server process.

A server is started as its own process (`python -m rnnkit serve RUN` on 127.0.0.1, a free port)
and CLIENTS concurrent clients (asyncio, one httpx.AsyncClient) each stream one generation of
TOKENS tokens (Server-Sent Events, every event parsed; a stream must end with a "done" event of
reason "length" and TOKENS new tokens) and then score a sentence; that is one round, ROUNDS in all.
Per round: requests, errors (anything but the above; must be 0), latency p50/p95 of generations
and of scores, time to first token p50/p95 (request sent -> first "text" event), tokens/s (new
tokens of every stream / the round's wall time), the server's mean rows per decoding step (from
/healthz: above 1 means that clients shared forward passes) and the server's resident memory after
the round (VmRSS in /proc/PID/status). The first round warms up (allocations, caches); memory that
keeps growing after it, by more than --rss-bound MB (default 10: see DEFAULT_RSS_BOUND_MB), is
reported as a failure (exit status 1), as are errors and a server that does not exit 0 on SIGTERM.

Then the same load against a server started with `--max-batch 1` (one request decoded at a time,
in order): tokens/s of each server (the median over the rounds after the first) and their ratio,
the batching gain, measured in the same run. Last, the same generations decoded by the server's
worker in this process without HTTP (batched and one at a time): what batching buys the decoding
itself, and how much of the server's time the HTTP side takes.

Without --run, a run of the default shape (`rnnkit train`: 1x512 LSTM, char, timemachine) is
trained for 20 steps into a temporary directory: the weights do not change the speed, the shape
does. `--hidden 32` gives a tiny model instead, whose figures differ (a step costs little next to
the HTTP and event overhead, so batching gains less).

    PYTHONPATH=src python benchmarks/serve_load.py [--run RUN] [--clients 32] [--rounds 3]
        [--tokens 200] [--threads N] [--json out.json]

Bounded: every request has a timeout (--request-timeout), every round a deadline (--round-timeout),
and the servers are stopped (SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SRC = Path(__file__).resolve().parents[1] / "src"  # the server runs this checkout's rnnkit
PROMPTS = (
    "The Time Traveller",
    "It was",
    "I saw",
    "the machine",
    "Weena",
    "In the morning",
    "The Morlocks",
    "and then",
)
SCORED = "The Time Traveller (for so it will be convenient to speak of him) was expounding a recondite matter to us."
# Growth of the server's RSS from round 1 to the last: measured 0.0-0.4 MB in 11 runs (1x512 and
# 1x32 models, batched and not, 32 clients x 200 tokens, 3 rounds); glibc's per-thread arenas can
# move a threaded process's RSS by a few MB. 10 MB is 25 times what was measured and still catches
# a leak of about 150 KB per request (5 MB a round of 32 clients), e.g. a kept state or event list.
DEFAULT_RSS_BOUND_MB = 10.0


# ---------------------------------------------------------------------------------------------
# the server process


def child_env() -> dict[str, str]:
    """The server's environment: this checkout's rnnkit first, whatever else is set."""
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """`python -m rnnkit serve RUN --port P OPTIONS...` on 127.0.0.1; its stderr (the banner and the
    request log) goes to a file, not a pipe, so that a long run cannot block on a full pipe."""

    def __init__(self, run: str | Path, *options: str, start_timeout: float = 120.0):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        command = [sys.executable, "-m", "rnnkit", "serve", str(run), "--port", str(self.port), *options]
        self.process = subprocess.Popen(command, env=child_env(), stdout=subprocess.DEVNULL, stderr=self._stderr)
        try:
            self._wait_healthy(start_timeout)
        except BaseException:
            self.kill()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.process.returncode}: {self.stderr()[-2000:]}")
            try:
                if httpx.get(self.base + "/healthz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the server did not answer /healthz within {timeout:.0f} s: {self.stderr()[-2000:]}")

    def health(self) -> dict[str, Any]:
        return httpx.get(self.base + "/healthz", timeout=10.0).json()

    def rss_mb(self) -> float:
        """Resident memory of the server process now (VmRSS, kB in /proc/PID/status), in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS in /proc/{self.pid}/status")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send `sig` and wait for the exit status (SIGKILL after `timeout` s: returns -9)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.process.returncode)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stderr(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()
        self._stderr.close()


# ---------------------------------------------------------------------------------------------
# the clients


@dataclass
class Outcome:
    """One request as a client saw it: `error` is None when the answer was what was asked for."""

    kind: str  # generate or score
    status: int = 0
    seconds: float = 0.0
    first_token: float | None = None  # generations: seconds to the first "text" event
    new_tokens: int = 0
    reason: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def parse_sse_line(line: str) -> dict[str, Any] | None:
    """The event of one line of a Server-Sent Events stream (`data: {json}`); None for the blank
    lines between events (the server sends nothing else)."""
    if not line.strip():
        return None
    if not line.startswith("data:"):
        raise ValueError(f"not an SSE data line: {line[:80]!r}")
    return json.loads(line[len("data:") :])


async def stream_generation(
    client: httpx.AsyncClient, base: str, prompt: str, tokens: int, seed: int, keep_events: bool = False
) -> Outcome:
    """POST /v1/generate with "stream": true; read every event until "done" (or "error")."""
    outcome = Outcome("generate")
    body = {"prompt": prompt, "max_new_tokens": tokens, "seed": seed, "stream": True}
    started = time.perf_counter()
    last: dict[str, Any] | None = None
    try:
        async with client.stream("POST", base + "/v1/generate", json=body) as response:
            outcome.status = response.status_code
            if response.status_code != 200:
                outcome.error = f"status {response.status_code}: {(await response.aread())[:200]!r}"
                return outcome
            async for line in response.aiter_lines():
                event = parse_sse_line(line)
                if event is None:
                    continue
                last = event
                if keep_events:
                    outcome.events.append(event)
                if event["event"] == "text" and outcome.first_token is None:
                    outcome.first_token = time.perf_counter() - started
                if event["event"] in ("done", "error"):
                    break
    except (httpx.HTTPError, ValueError) as error:
        outcome.error = f"{type(error).__name__}: {error}"
        return outcome
    finally:
        outcome.seconds = time.perf_counter() - started
    outcome.error = _generation_error(last, tokens)
    if last is not None and last["event"] == "done":
        outcome.new_tokens, outcome.reason = int(last["new_tokens"]), last["reason"]
    return outcome


def _generation_error(last: dict[str, Any] | None, tokens: int) -> str | None:
    if last is None:
        return "the stream ended without an event"
    if last["event"] != "done":
        return f"the stream ended with {last['event']!r}: {last.get('error', '')}"
    if last["reason"] != "length" or last["new_tokens"] != tokens:
        return f"done with reason {last['reason']!r} after {last['new_tokens']} tokens (asked for {tokens})"
    return None


async def score(client: httpx.AsyncClient, base: str, text: str) -> Outcome:
    """POST /v1/score; the answer must score every token of the text."""
    outcome = Outcome("score")
    started = time.perf_counter()
    try:
        response = await client.post(base + "/v1/score", json={"text": text})
        outcome.status = response.status_code
        if response.status_code != 200:
            outcome.error = f"status {response.status_code}: {response.text[:200]}"
        elif len(response.json().get("token_scores", ())) != response.json().get("tokens", -1):
            outcome.error = "the answer does not score every token"
    except (httpx.HTTPError, ValueError) as error:
        outcome.error = f"{type(error).__name__}: {error}"
    outcome.seconds = time.perf_counter() - started
    return outcome


async def one_client(client: httpx.AsyncClient, base: str, index: int, tokens: int) -> list[Outcome]:
    """What each client does in a round: one streamed generation, then one score."""
    generated = await stream_generation(client, base, PROMPTS[index % len(PROMPTS)], tokens, seed=index)
    return [generated, await score(client, base, SCORED)]


async def load_round(
    base: str, clients: int, tokens: int, request_timeout: float = 120.0, round_timeout: float = 600.0
) -> tuple[float, list[Outcome]]:
    """`clients` concurrent clients (one round): (wall seconds, every request's outcome)."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=request_timeout, limits=limits) as client:
        started = time.perf_counter()
        results = await asyncio.wait_for(
            asyncio.gather(*(one_client(client, base, i, tokens) for i in range(clients))), round_timeout
        )
        wall = time.perf_counter() - started
    return wall, [outcome for pair in results for outcome in pair]


# ---------------------------------------------------------------------------------------------
# figures


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between order statistics."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise_round(wall: float, outcomes: list[Outcome]) -> dict[str, Any]:
    generations = [o for o in outcomes if o.kind == "generate"]
    scores = [o for o in outcomes if o.kind == "score"]
    errors = [o.error for o in outcomes if o.error is not None]
    new_tokens = sum(o.new_tokens for o in generations)

    def ms(values: list[float], q: float) -> float | None:
        found = percentile(values, q)
        return None if found is None else round(1000 * found, 1)

    first_tokens = [o.first_token for o in generations if o.first_token is not None]
    return {
        "requests": len(outcomes),
        "errors": len(errors),
        "error_examples": errors[:3],
        "wall_s": round(wall, 3),
        "new_tokens": new_tokens,
        "tokens_per_s": round(new_tokens / wall, 1),
        "generate_ms_p50": ms([o.seconds for o in generations], 50),
        "generate_ms_p95": ms([o.seconds for o in generations], 95),
        "first_token_ms_p50": ms(first_tokens, 50),
        "first_token_ms_p95": ms(first_tokens, 95),
        "score_ms_p50": ms([o.seconds for o in scores], 50),
        "score_ms_p95": ms([o.seconds for o in scores], 95),
    }


def _batching(health: dict[str, Any]) -> tuple[int, int]:
    counts = next(iter(health["batching"].values()))
    return int(counts["steps"]), int(counts["rows"])


def run_load(
    run: str | Path,
    clients: int,
    rounds: int,
    tokens: int,
    server_options: tuple[str, ...] = (),
    request_timeout: float = 120.0,
    round_timeout: float = 600.0,
) -> dict[str, Any]:
    """Start a server, run `rounds` rounds against it, stop it (SIGTERM); every round's figures,
    the server's memory after each, and how it exited."""
    per_round = []
    with ServerProcess(run, *server_options) as server:
        start_rss = server.rss_mb()
        steps, rows = _batching(server.health())
        for _ in range(rounds):
            wall, outcomes = asyncio.run(load_round(server.base, clients, tokens, request_timeout, round_timeout))
            figures = summarise_round(wall, outcomes)
            health = server.health()
            now_steps, now_rows = _batching(health)
            figures["rows_per_step"] = round((now_rows - rows) / max(1, now_steps - steps), 2)
            steps, rows = now_steps, now_rows
            figures["in_flight_after"] = sum(health["in_flight"].values())
            figures["rss_mb"] = round(server.rss_mb(), 1)
            per_round.append(figures)
        exit_status = server.stop()
    after_warm_up = per_round[1:] or per_round
    return {
        "server_options": list(server_options),
        "start_rss_mb": round(start_rss, 1),
        "rounds": per_round,
        "errors": sum(r["errors"] for r in per_round),
        "tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in after_warm_up), 1),
        "rss_growth_mb": round(per_round[-1]["rss_mb"] - per_round[0]["rss_mb"], 1),
        "exit_status": exit_status,
    }


# ---------------------------------------------------------------------------------------------
# the script


def decode_alone(run: str, clients: int, tokens: int, max_batch: int, threads: int | None) -> float:
    """tokens/s of the server's decoding worker in this process, without HTTP: the same
    generations (prompt, seed, length) as the clients ask for, all submitted at once. What the
    batching itself buys, and how much of the server's time the HTTP side takes."""
    sys.path.insert(0, str(SRC))
    import threading

    import rnnkit
    from rnnkit.cli import serve_threads
    from rnnkit.generate import SamplingConfig, start_ids
    from rnnkit.runtime import set_threads, tune_allocator
    from rnnkit.serve.batcher import Generation, ModelWorker

    tune_allocator()
    set_threads(threads or serve_threads(), load_torch=False)  # as `rnnkit serve` runs
    lm = rnnkit.load(run, engine="auto")  # as `rnnkit serve` loads it
    worker = ModelWorker("alone", lm, max_batch=max_batch, max_pending=clients)
    finished = [threading.Event() for _ in range(clients)]

    def on_event(index: int):
        return lambda event: finished[index].set() if event["event"] in ("done", "error") else None

    hold = threading.Event()
    worker.call(hold.wait)  # every generation is queued before the first step
    for index in range(clients):
        prompt = PROMPTS[index % len(PROMPTS)]
        sampling = SamplingConfig(max_new_tokens=tokens, seed=index)
        worker.submit(Generation(prompt, start_ids(lm.tokenizer, prompt), sampling, on_event(index)))
    started = time.perf_counter()
    hold.set()
    for event in finished:
        event.wait()
    seconds = time.perf_counter() - started
    worker.close()
    return round(clients * tokens / seconds, 1)


def train_run(out: Path, hidden: int, steps: int = 20) -> Path:
    """A run of the default shape (or `hidden` units), trained for a few steps (`rnnkit train`)."""
    command = [sys.executable, "-m", "rnnkit", "train", "--steps", str(steps), "--hidden", str(hidden)]
    command += ["--out", str(out), "--quiet", "--sample-tokens", "0"]
    subprocess.run(command, env=child_env(), check=True, stdout=subprocess.DEVNULL)
    return out


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def print_table(name: str, result: dict[str, Any]) -> None:
    columns = (
        ("round", None),
        ("requests", "requests"),
        ("errors", "errors"),
        ("gen p50 ms", "generate_ms_p50"),
        ("gen p95 ms", "generate_ms_p95"),
        ("TTFT p50 ms", "first_token_ms_p50"),
        ("TTFT p95 ms", "first_token_ms_p95"),
        ("score p50 ms", "score_ms_p50"),
        ("score p95 ms", "score_ms_p95"),
        ("tokens/s", "tokens_per_s"),
        ("rows/step", "rows_per_step"),
        ("RSS MB", "rss_mb"),
    )
    rows = [[str(i + 1)] + [_cell(r[key]) for _, key in columns[1:]] for i, r in enumerate(result["rounds"])]
    widths = [max(len(title), *(len(row[j]) for row in rows)) for j, (title, _) in enumerate(columns)]
    print(f"{name} (rnnkit serve {' '.join(result['server_options'])}; RSS at start {result['start_rss_mb']} MB)")
    print("  ".join(title.rjust(w) for (title, _), w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="run or checkpoint to serve (default: train the default shape for 20 steps)")
    parser.add_argument("--hidden", type=int, default=512, help="hidden units of the run trained without --run")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=200, help="new tokens per generation")
    parser.add_argument("--threads", type=int, help="the server's --threads (default: the server's default)")
    parser.add_argument("--rss-bound", type=float, default=DEFAULT_RSS_BOUND_MB, help="MB, rounds 2..R")
    parser.add_argument("--request-timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--round-timeout", type=float, default=600.0, help="seconds per round")
    parser.add_argument("--no-unbatched", action="store_true", help="skip the --max-batch 1 comparison")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.rounds < 1 or args.tokens < 1:
        parser.error("--clients, --rounds and --tokens must be at least 1")

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        run = args.run or str(train_run(Path(scratch) / "run", args.hidden))
        common = ("--threads", str(args.threads)) if args.threads else ()
        settings = (args.clients, args.rounds, args.tokens)
        timeouts = (args.request_timeout, args.round_timeout)
        results = {"batched": run_load(run, *settings, common, *timeouts)}
        if not args.no_unbatched:
            results["unbatched"] = run_load(run, *settings, (*common, "--max-batch", "1"), *timeouts)
        alone = {
            "batched": decode_alone(run, args.clients, args.tokens, 64, args.threads),
            "unbatched": decode_alone(run, args.clients, args.tokens, 1, args.threads),
        }

    report: dict[str, Any] = {
        "run": args.run or f"default shape, hidden {args.hidden}, 20 steps",
        "clients": args.clients,
        "rounds": args.rounds,
        "tokens": args.tokens,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "rss_bound_mb": args.rss_bound,
        **results,
        "decoding_alone_tokens_per_s": alone,
    }
    for name, result in results.items():
        print_table(name, result)
    failures = []
    for name, result in results.items():
        if result["errors"]:
            failures.append(f"{name}: {result['errors']} errors, e.g. {result['rounds'][-1]['error_examples']}")
        if args.rounds > 1 and result["rss_growth_mb"] > args.rss_bound:
            failures.append(f"{name}: RSS grew {result['rss_growth_mb']} MB after round 1 (bound {args.rss_bound})")
        if result["exit_status"] != 0:
            failures.append(f"{name}: the server exited with status {result['exit_status']} on SIGTERM")
    if "unbatched" in results:
        gain = results["batched"]["tokens_per_s"] / results["unbatched"]["tokens_per_s"]
        report["batching_gain"] = round(gain, 2)
        print(
            f"tokens/s (median of rounds 2..{args.rounds}): batched {results['batched']['tokens_per_s']:g}, "
            f"--max-batch 1 {results['unbatched']['tokens_per_s']:g}: batching gain {gain:.2f}x"
        )
    print(
        f"the decoding worker alone (no HTTP, in this process): batched {alone['batched']:g} tokens/s, "
        f"one at a time {alone['unbatched']:g}: {alone['batched'] / alone['unbatched']:.2f}x"
    )
    for name, result in results.items():
        print(f"{name}: RSS growth after round 1: {result['rss_growth_mb']:g} MB (bound {args.rss_bound:g} MB)")
    print(f"load average before {report['load_average_before']}, after {report['load_average_after']}")
    report["failures"] = failures
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for failure in failures:
        print("FAIL " + failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
