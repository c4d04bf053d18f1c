"""`rnnkit serve` as a real process (issue 19, item 4): 32 concurrent clients streaming and scoring,
how it stops on SIGTERM/SIGINT with a stream in progress, and a client that goes away mid-stream.

The clients are benchmarks/serve_load.py's (the benchmark runs the same load at full size)."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

import rnnkit  # noqa: E402 (after the skips: without the serve extra there is nothing to test)

ROOT = Path(__file__).resolve().parents[1]
CLIENTS, ROUNDS, TOKENS = 32, 3, 40
# resident memory the server may gain from round 2 to round 3 (after round 1 has warmed it up):
# measured 0.0-0.3 MB with this tiny model; a leak of every request's state would show as more
RSS_GROWTH_BOUND_MB = 10.0
LONG = 1_000_000  # max_new_tokens of a generation that is still running when the test acts


def _serve_load():
    spec = importlib.util.spec_from_file_location("serve_load", ROOT / "benchmarks" / "serve_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["serve_load"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


serve_load = _serve_load()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny char model of the Time Machine (its prompts' characters are in the vocabulary)."""
    from conftest import tiny_config

    config = tiny_config(tmp_path_factory.mktemp("serve-load") / "tiny", tokenizer="char", data="timemachine", steps=5)
    return rnnkit.train(config).checkpoint


def _server(run, *options):
    return serve_load.ServerProcess(run, "--threads", "1", "--max-new-tokens", str(LONG), *options)


@pytest.fixture(scope="module")
def server(run):
    with _server(run) as started:
        yield started


def _events(response):
    """The events of a streamed generation, as they come."""
    for line in response.iter_lines():
        event = serve_load.parse_sse_line(line)
        if event is not None:
            yield event


def _steps_and_rows(server) -> tuple[int, int]:
    counts = next(iter(server.health()["batching"].values()))
    return counts["steps"], counts["rows"]


def test_concurrent_clients_are_all_answered_in_shared_decoding_steps(server):
    steps_before, rows_before = _steps_and_rows(server)
    rss = []
    for _ in range(ROUNDS):
        wall, outcomes = asyncio.run(serve_load.load_round(server.base, CLIENTS, TOKENS, request_timeout=60))
        generations = [o for o in outcomes if o.kind == "generate"]
        scores = [o for o in outcomes if o.kind == "score"]
        assert len(generations) == len(scores) == CLIENTS
        assert [o.status for o in outcomes] == [200] * 2 * CLIENTS
        assert [o.error for o in outcomes] == [None] * 2 * CLIENTS  # every stream ended with "done"
        assert {(o.reason, o.new_tokens) for o in generations} == {("length", TOKENS)}
        assert all(o.first_token is not None and 0 < o.first_token <= o.seconds for o in generations)
        figures = serve_load.summarise_round(wall, outcomes)
        assert figures["errors"] == 0 and figures["requests"] == 2 * CLIENTS
        assert figures["new_tokens"] == CLIENTS * TOKENS and figures["tokens_per_s"] > 0
        rss.append(server.rss_mb())
    health = server.health()
    assert health["status"] == "ok" and sum(health["in_flight"].values()) == 0
    steps, rows = _steps_and_rows(server)
    # every token of every stream was decoded, and clients shared forward passes: the 32 streams
    # of a round took far fewer steps than one per token of each
    assert rows - rows_before == ROUNDS * CLIENTS * TOKENS
    assert (rows - rows_before) / (steps - steps_before) > 1
    assert rss[2] - rss[1] < RSS_GROWTH_BOUND_MB, rss


def test_seeded_streams_under_load_match_the_same_request_alone(server):
    """Batching changes no one's text: a client's seeded stream is what it gets alone (up to the
    rounding of a batched product, which a 40-token stream of a tiny model does not reach)."""

    async def alone_then_together():
        async with httpx.AsyncClient(timeout=60) as client:
            alone = await serve_load.stream_generation(client, server.base, "It was", TOKENS, seed=3, keep_events=True)
            together = await asyncio.gather(
                *(
                    serve_load.stream_generation(client, server.base, "It was", TOKENS, seed=seed, keep_events=True)
                    for seed in (1, 2, 3, 4, 5, 6, 7, 8)
                )
            )
        return alone, together

    alone, together = asyncio.run(alone_then_together())
    assert alone.error is None and all(o.error is None for o in together)
    assert together[2].events[-1]["texts"] == alone.events[-1]["texts"]
    pieces = "".join(e["pieces"][0] for e in together[2].events if e["event"] == "text")
    assert "It was" + pieces == alone.events[-1]["texts"][0]


def test_a_client_that_leaves_mid_stream_frees_its_place(server):
    with httpx.Client(base_url=server.base, timeout=30) as client:
        body = {"prompt": "It was", "max_new_tokens": LONG, "stream": True}
        with client.stream("POST", "/v1/generate", json=body) as response:
            assert response.status_code == 200
            texts = 0
            for event in _events(response):
                texts += event["event"] == "text"
                if texts == 20:  # still decoding (leaving the loop closes the stream)
                    assert sum(server.health()["in_flight"].values()) == 1
                    break
        # the connection is closed unread: the server notices at its next write and cancels
        deadline = time.monotonic() + 2.0
        while sum(server.health()["in_flight"].values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(server.health()["in_flight"].values()) == 0
        after = client.post("/v1/generate", json={"prompt": "It was", "max_new_tokens": 5, "seed": 1})
        assert after.status_code == 200 and after.json()["new_tokens"] == 5
    assert server.process.poll() is None
    # one failed write told the server; asyncio logs this from the fifth write to a closed socket on
    assert "socket.send() raised exception" not in server.stderr()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_streams_cleanly_and_the_server_exits_0(run, sig):
    server = _server(run)
    try:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            body = {"prompt": "It was", "max_new_tokens": LONG, "stream": True}
            with client.stream("POST", "/v1/generate", json=body) as response:
                events = []
                for event in _events(response):
                    events.append(event)
                    if len(events) == 20:  # decoding for certain: the signal arrives mid-stream
                        server.process.send_signal(sig)
        signalled = time.monotonic()
        status = server.process.wait(timeout=10)
        seconds = time.monotonic() - signalled
    finally:
        server.kill()
    done = events[-1]
    assert done["event"] == "done" and done["reason"] == "shutdown"
    assert 20 <= done["new_tokens"] < LONG
    assert done["texts"][0] == "It was" + "".join(e["pieces"][0] for e in events if e["event"] == "text")
    assert status == 0 and seconds < 5
    log = server.stderr()
    assert '"POST /v1/generate" 200' in log
    assert "Traceback" not in log and "error:" not in log


def test_percentiles_and_event_lines():
    assert serve_load.percentile([], 50) is None
    assert serve_load.percentile([3.0], 95) == 3.0
    assert serve_load.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert serve_load.percentile([float(v) for v in range(1, 101)], 95) == pytest.approx(95.05)
    assert serve_load.parse_sse_line("") is None
    assert serve_load.parse_sse_line('data: {"event": "done"}') == {"event": "done"}
    with pytest.raises(ValueError, match="not an SSE data line"):
        serve_load.parse_sse_line("event: ping")


@pytest.mark.slow  # two servers started and stopped (about 10 s on 2 busy cores)
def test_the_benchmark_reports_both_servers(run, tmp_path):
    import json
    import subprocess

    out = tmp_path / "load.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "serve_load.py"), "--run", str(run), "--threads", "1"]
    command += ["--clients", "4", "--rounds", "2", "--tokens", "5", "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=serve_load.child_env())
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    for name, max_batch in (("batched", None), ("unbatched", "1")):
        result = report[name]
        assert result["errors"] == 0 and result["exit_status"] == 0 and len(result["rounds"]) == 2
        assert all(r["requests"] == 8 and r["new_tokens"] == 20 and r["rss_mb"] > 0 for r in result["rounds"])
        assert ("--max-batch" in result["server_options"]) == (max_batch is not None)
    assert all(r["rows_per_step"] == 1 for r in report["unbatched"]["rounds"])
    assert report["batching_gain"] > 0 and report["failures"] == []
    assert "batching gain" in done.stdout and "RSS growth after round 1" in done.stdout
