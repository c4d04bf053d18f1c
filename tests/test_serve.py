"""`rnnkit serve`'s HTTP API (in-process, through Starlette's TestClient) and its batching worker:
what it answers matches the Python API, bad input gets a one-line 4xx, and the server keeps serving."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.cli import main  # noqa: E402
from rnnkit.generate import SamplingConfig, start_ids  # noqa: E402
from rnnkit.serve.app import create_app  # noqa: E402
from rnnkit.serve.batcher import Generation, ModelWorker  # noqa: E402
from rnnkit.serve.models import ServeOptions, load_models  # noqa: E402
from rnnkit.serve.server import banner  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(serve_runs):
    return load_models([str(serve_runs["lstm"]), str(serve_runs["ngram"])], engine="auto")


@pytest.fixture(scope="module")
def lms(serve_runs):
    return {name: rnnkit.load(path, engine="auto") for name, path in serve_runs.items()}  # as the CLI loads


@pytest.fixture
def served(models):
    logs: list[str] = []
    with TestClient(create_app(models, ServeOptions(max_new_tokens=3000), logs.append)) as client:
        client.logs = logs
        yield client


def events(response) -> list[dict]:
    return [json.loads(line[len("data: ") :]) for line in response.iter_lines() if line.startswith("data: ")]


def stream(client, **body) -> list[dict]:
    with client.stream("POST", "/v1/generate", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return events(response)


# ---------------------------------------------------------------------------------------------
# generate


@pytest.mark.parametrize("model", ["lstm", "ngram"])
@pytest.mark.parametrize(
    "settings",
    [
        {"temperature": 0.8, "seed": 3},
        {"top_k": 5, "top_p": 0.9, "seed": 11, "num_return_sequences": 3},
        {"do_sample": False},
        {"num_beams": 3, "num_return_sequences": 2},
        {"seed": 4, "stop": ["e "]},
    ],
)
def test_generate_gives_what_the_api_gives(served, lms, model, settings):
    answer = served.post("/v1/generate", json={"model": model, "prompt": "The ", "max_new_tokens": 40, **settings})
    assert answer.status_code == 200, answer.text
    expected = lms[model].generate("The ", max_new_tokens=40, **settings)
    expected = expected if isinstance(expected, list) else [expected]
    body = answer.json()
    assert body["texts"] == expected
    assert body["text"] == expected[0]
    if "stop" in settings:
        assert body["reason"] in ("stop", "length") and "e " not in body["text"][len("The ") :]
    else:
        assert body["reason"] == "length" and body["new_tokens"] == 40


def test_a_missing_seed_is_chosen_and_returned_so_the_text_can_be_made_again(served):
    first = served.post("/v1/generate", json={"prompt": "It", "max_new_tokens": 30}).json()
    assert isinstance(first["seed"], int)
    again = served.post("/v1/generate", json={"prompt": "It", "max_new_tokens": 30, "seed": first["seed"]}).json()
    assert again["text"] == first["text"]


@pytest.mark.parametrize("interval", [0.0, 10.0])
def test_stream_events_add_up_to_the_final_texts(served, lms, monkeypatch, interval):
    """Text events come at most every STREAM_INTERVAL seconds: 0 gives one per token, a long one
    gives the first token at once and the rest with "done"; the text is the same either way."""
    from rnnkit.serve import batcher

    monkeypatch.setattr(batcher, "STREAM_INTERVAL", interval)
    got = stream(served, prompt="The Time", max_new_tokens=25, seed=2, num_return_sequences=2)
    assert got[0]["event"] == "start" and got[0]["prompt"] == "The Time" and got[0]["model"] == "lstm"
    assert got[-1]["event"] == "done" and got[-1]["reason"] == "length" and got[-1]["new_tokens"] == 25
    texts = ["The Time", "The Time"]
    for event in got[1:-1]:
        assert event["event"] == "text"
        texts = [text + piece for text, piece in zip(texts, event["pieces"], strict=True)]
    assert (
        texts == got[-1]["texts"] == lms["lstm"].generate("The Time", max_new_tokens=25, seed=2, num_return_sequences=2)
    )
    text_events = len(got) - 2
    assert text_events == (25 if interval == 0 else 2)  # one per token; or the first, then the rest at the end


def test_zero_new_tokens_returns_the_prompt(served):
    assert served.post("/v1/generate", json={"prompt": "Abc", "max_new_tokens": 0}).json()["text"] == "Abc"


# ---------------------------------------------------------------------------------------------
# batching


def run_together(worker: ModelWorker, requests: list[tuple[str, SamplingConfig]]) -> list[dict]:
    """Submit every request at once; the "done" event of each."""
    finished = [threading.Event() for _ in requests]
    done: list[dict] = [{} for _ in requests]

    def emit_for(i):
        def emit(event):
            if event["event"] in ("done", "error"):
                done[i] = event
                finished[i].set()

        return emit

    for i, (prompt, sampling) in enumerate(requests):
        worker.submit(Generation(prompt, start_ids(worker.lm.tokenizer, prompt), sampling, emit_for(i)))
    for event in finished:
        assert event.wait(30)
    return done


def test_requests_decoded_in_one_batch_give_what_each_gives_alone(models, lms):
    requests = [
        ("The ", SamplingConfig(max_new_tokens=30, seed=1)),
        ("", SamplingConfig(max_new_tokens=10, temperature=0.7, seed=2, num_return_sequences=2)),
        ("It was", SamplingConfig(max_new_tokens=45, top_k=4, seed=3)),
        ("He ", SamplingConfig(max_new_tokens=20, do_sample=False)),
    ]
    worker = ModelWorker("lstm", models["lstm"].lm, max_batch=64)
    worker.call(lambda: time.sleep(0.2))  # hold the worker so that every request arrives before the first step
    try:
        done = run_together(worker, requests)
    finally:
        worker.close()
    for (prompt, sampling), event in zip(requests, done, strict=True):
        alone = lms["lstm"].generate(
            prompt,
            max_new_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_k=sampling.top_k,
            do_sample=sampling.do_sample,
            seed=sampling.seed,
            num_return_sequences=sampling.num_return_sequences,
        )
        assert event["texts"] == (alone if isinstance(alone, list) else [alone])
    # 5 rows were decoded together: 45 steps in all (the longest request), not 30 + 10 + 45 + 20
    assert worker.steps == 45
    assert worker.rows_decoded == 30 + 2 * 10 + 45 + 20


def test_one_request_at_a_time_without_batching(models):
    worker = ModelWorker("ngram", models["ngram"].lm, max_batch=1)
    try:
        run_together(worker, [("a", SamplingConfig(max_new_tokens=10, seed=s)) for s in range(3)])
    finally:
        worker.close()
    assert worker.steps == 30 and worker.rows_decoded == 30


# ---------------------------------------------------------------------------------------------
# score, inspect, models


def test_score_is_the_api_score(served, lms):
    text = "The Time Traveller smiled."
    body = served.post("/v1/score", json={"text": text, "top_k": 3}).json()
    expected = lms["lstm"].score(text, top_k=3)
    np.testing.assert_allclose([t["logprob"] for t in body["token_scores"]], expected.logprobs, rtol=1e-9)
    assert body["bits_per_char"] == pytest.approx(expected.bits_per_char, rel=1e-9)
    assert [t["token"] for t in body["token_scores"]] == list(text)
    assert len(body["token_scores"][0]["top"]) == 3
    assert served.post("/v1/score", json={"text": text, "model": "ngram"}).json()["model"] == "ngram"


def test_inspect_gives_one_unit_per_token(served, serve_runs):
    from rnnkit.studies.inspect import load_inspectable, unit_values

    text = "It was so."
    body = served.post("/v1/inspect", json={"text": text, "signal": "c", "unit": 5}).json()
    lm, model = load_inspectable(serve_runs["lstm"])
    pieces, values = unit_values(model, lm.tokenizer, text, 0, "c", 100)
    assert body["pieces"] == pieces == list(text)
    np.testing.assert_allclose(body["values"], values[:, 5], atol=1e-4)
    assert body["unit"] == 5 and body["hidden"] == 48
    most = served.post("/v1/inspect", json={"text": text}).json()
    assert most["unit"] == most["varied_units"][0]["unit"]
    assert [u["std"] for u in most["varied_units"]] == sorted((u["std"] for u in most["varied_units"]), reverse=True)


def test_models_healthz_and_openapi(served):
    listed = served.get("/v1/models").json()
    lstm, ngram = listed["models"]
    assert (lstm["name"], lstm["kind"], lstm["hidden"], lstm["tokenizer"]) == ("lstm", "lstm", 48, "char")
    assert lstm["inspectable"] and lstm["signals"] == ["h", "c", "i", "f", "o"]
    assert lstm["results"]["step"] == 30 and lstm["results"]["val_bpc"] > 0
    assert (ngram["kind"], ngram["order"], ngram["inspectable"]) == ("ngram", 3, False)
    assert listed["limits"]["max_new_tokens"] == 3000
    health = served.get("/healthz").json()
    assert (health["status"], health["models"], health["in_flight"]) == (
        "ok",
        ["lstm", "ngram"],
        {"lstm": 0, "ngram": 0},
    )
    assert set(health["batching"]["lstm"]) == {"steps", "rows", "mean_rows_per_step"}
    paths = served.get("/openapi.json").json()["paths"]
    assert {"/v1/generate", "/v1/score", "/v1/inspect", "/v1/models", "/healthz"} <= set(paths)
    assert "temperature" in json.dumps(served.get("/openapi.json").json()["components"])
    assert served.get("/docs").status_code == 404  # FastAPI's page would fetch scripts from a CDN


def test_the_page_is_self_contained(served):
    page = served.get("/")
    assert page.status_code == 200 and '<script src="app.js">' in page.text
    for name in ("/", "/app.js", "/style.css"):
        text = served.get(name).text
        assert "http://" not in text and "https://" not in text  # no CDN, no fonts from elsewhere


# ---------------------------------------------------------------------------------------------
# bad input: one line of JSON, 4xx, and the server goes on


BAD = [
    ("malformed JSON", b'{"prompt": ', 400, "malformed JSON"),
    ("wrong type", {"prompt": 5}, 422, "prompt"),
    ("number as string", {"max_new_tokens": "5"}, 422, "max_new_tokens"),
    ("unknown field", {"promt": "x"}, 422, "unknown field promt"),
    ("huge max_new_tokens", {"max_new_tokens": 10**9}, 422, "--max-new-tokens"),
    ("negative max_new_tokens", {"max_new_tokens": -1}, 400, "max_new_tokens"),
    ("too many samples", {"num_return_sequences": 1000}, 422, "--max-samples"),
    ("unknown model", {"model": "gpt"}, 404, "no model named 'gpt'"),
    ("temperature 0", {"temperature": 0}, 400, "temperature"),
    ("beam with temperature", {"num_beams": 2, "temperature": 0.5}, 400, "beam search"),
    ("empty stop string", {"stop": [""]}, 400, "stop string"),
    ("long prompt", {"prompt": "a" * 30_000}, 413, "--max-prompt-chars"),
    ("10 MB prompt", {"prompt": "a" * 10_000_000}, 413, "request body"),
    ("not an object", [1, 2], 422, "body"),
    ("a prompt the vocabulary cannot encode", {"prompt": "Жук"}, 400, "the vocabulary lacks: 'Ж'"),
]


@pytest.mark.parametrize("what,body,status,message", BAD, ids=[b[0] for b in BAD])
def test_bad_generate_requests_get_one_line(served, what, body, status, message):
    if isinstance(body, bytes):
        answer = served.post("/v1/generate", content=body, headers={"content-type": "application/json"})
    else:
        answer = served.post("/v1/generate", json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in error
    assert served.get("/healthz").json()["status"] == "ok"


@pytest.mark.parametrize(
    "path,body,status,message",
    [
        ("/v1/score", {}, 422, "text is required"),
        ("/v1/score", {"text": ""}, 422, "empty"),
        ("/v1/score", {"text": "abc", "top_k": 99}, 422, "top_k"),
        ("/v1/score", {"text": "x" * 200_000}, 413, "--max-score-chars"),
        ("/v1/score", {"text": "Жук"}, 400, "the vocabulary lacks"),
        ("/v1/inspect", {"text": "abc", "model": "ngram"}, 400, "no hidden units"),
        ("/v1/inspect", {"text": "abc", "layer": 3}, 400, "layer 3 is out of range"),
        ("/v1/inspect", {"text": "abc", "signal": "z"}, 400, "no signal 'z'"),
        ("/v1/inspect", {"text": "abc", "unit": 48}, 400, "unit 48 is out of range"),
    ],
)
def test_bad_score_and_inspect_requests(served, path, body, status, message):
    answer = served.post(path, json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_a_stream_refused_before_it_starts_gets_a_status(served):
    with served.stream("POST", "/v1/generate", json={"prompt": "Жук", "stream": True}) as response:
        assert response.status_code == 400
        response.read()
        assert "lacks" in response.json()["error"]


def test_a_bug_in_the_worker_ends_its_requests_with_500_and_the_server_goes_on(models, monkeypatch):
    scorer = models["ngram"].lm.scorer
    original = scorer.next_logprobs
    calls = {"n": 0}

    def broken_once(idx, state):
        calls["n"] += 1
        if calls["n"] == 2:
            raise FloatingPointError("a bug")
        return original(idx, state)

    monkeypatch.setattr(scorer, "next_logprobs", broken_once)
    logs: list[str] = []
    with TestClient(create_app(models, ServeOptions(), logs.append)) as client:
        failed = client.post("/v1/generate", json={"model": "ngram", "max_new_tokens": 5})
        assert failed.status_code == 500 and failed.json() == {"error": "internal error (FloatingPointError)"}
        assert any("FloatingPointError: a bug" in line for line in logs)  # the traceback is in the log
        assert client.post("/v1/generate", json={"model": "ngram", "max_new_tokens": 5}).status_code == 200


def test_unknown_paths_and_methods_are_json(served):
    assert served.get("/v2/nothing").json() == {"error": "Not Found"}
    assert served.get("/v1/generate").status_code == 405


def test_a_full_server_says_busy_and_a_client_gone_is_forgotten(models):
    app = create_app(models, ServeOptions(max_concurrent=1, max_new_tokens=100_000))
    with TestClient(app) as client:
        # the worker is held, so the stream's generation waits (in flight) until the 503 is seen
        app.state.rnnkit.workers["lstm"].call(lambda: time.sleep(0.5))
        body = {"max_new_tokens": 100_000, "stream": True}
        with client.stream("POST", "/v1/generate", json=body) as response:
            busy = client.post("/v1/generate", json={"max_new_tokens": 5})
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert "--max-concurrent" in busy.json()["error"]
            assert client.post("/v1/generate", json={"model": "ngram", "max_new_tokens": 5}).status_code == 200
            lines = response.iter_lines()
            assert json.loads(next(lines)[len("data: ") :])["event"] == "start"
        # the client went away mid-stream: its generation is cancelled and the slot is free again
        for _ in range(100):
            if client.get("/healthz").json()["in_flight"]["lstm"] == 0:
                break
            time.sleep(0.05)
        assert client.get("/healthz").json()["in_flight"]["lstm"] == 0
        assert client.post("/v1/generate", json={"max_new_tokens": 5}).status_code == 200


def test_every_request_is_logged(served):
    served.post("/v1/generate", json={"max_new_tokens": 3})
    served.post("/v1/generate", json={"prompt": 5})
    assert any('"POST /v1/generate" 200' in line and line.endswith(" ms") for line in served.logs)
    assert any('"POST /v1/generate" 422' in line for line in served.logs)


# ---------------------------------------------------------------------------------------------
# the command


def test_model_names(serve_runs, tmp_path):
    from pathlib import Path

    from rnnkit.serve.models import model_name

    run = serve_runs["lstm"]
    assert model_name(str(run), run / "best") == "lstm"
    assert model_name(str(run / "last"), run / "last") == "lstm"
    cached = tmp_path / "models--someone--shakespeare-lstm" / "snapshots" / "0123abcd"
    assert model_name("someone/shakespeare-lstm", cached) == "shakespeare-lstm"  # a Hub id, not the hash
    assert model_name("someone/shakespeare-lstm/", Path("x")) == "shakespeare-lstm"


def test_binding_to_every_interface_warns():
    assert any("no authentication" in line for line in banner(ServeOptions(host="0.0.0.0"), ["m"]))
    assert not any("no authentication" in line for line in banner(ServeOptions(), ["m"]))
    assert "127.0.0.1:8000" in banner(ServeOptions(), ["m"])[0]


@pytest.mark.parametrize(
    "args,message",
    [
        (["serve", "no/such/run"], "no/such/run"),
        (["serve", "RUN", "--port", "70000"], "--port"),
        (["serve", "RUN", "--max-batch", "0"], "--max-batch"),
    ],
)
def test_serve_refuses_bad_options_in_one_line(serve_runs, capsys, args, message):
    args = [str(serve_runs["lstm"]) if a == "RUN" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_serve_without_the_extra_names_it(monkeypatch, capsys, serve_runs):
    from rnnkit import runtime

    monkeypatch.setattr(runtime, "has_module", lambda module: module not in ("fastapi", "uvicorn"))
    assert main(["serve", str(serve_runs["lstm"])]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'rnnkit[serve]'" in err and len(err.splitlines()) == 1


def test_prompt_words_the_vocabulary_lacks_are_read_as_unk_and_said(tmp_path):
    from conftest import tiny_config

    from rnnkit.train import train

    train(tiny_config(tmp_path / "word", tokenizer="word", data="toy"))
    with TestClient(create_app(load_models([str(tmp_path / "word")]), ServeOptions())) as client:
        answer = client.post("/v1/generate", json={"prompt": "you say zebra", "max_new_tokens": 3, "seed": 1})
        assert answer.status_code == 200
        assert "read as <unk>" in answer.json()["warning"] and "zebra" in answer.json()["warning"]
        streamed = stream(client, prompt="you say zebra", max_new_tokens=3, seed=1)
        assert "zebra" in streamed[0]["warning"]
        assert "warning" not in client.post("/v1/generate", json={"prompt": "you say", "max_new_tokens": 3}).json()
