"""rnnkit export: the exported graphs compute what the torch model computes, state carried
across calls, and run without rnnkit (onnxruntime + NumPy)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.checkpoint import save_checkpoint
from rnnkit.cli import main
from rnnkit.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from rnnkit.errors import ConfigError, OutputExistsError
from rnnkit.export import export_model
from rnnkit.models.torch_lm import RNNLM, export_weights
from rnnkit.text.corpora import load_corpus
from rnnkit.text.tokenizer import build_tokenizer

ort = pytest.importorskip("onnxruntime")
README = Path(__file__).resolve().parents[1] / "README.md"
WINDOWS = (5, 3, 1, 4)  # lengths the export never saw, carried one after the other


def make_run(
    directory: Path, model="lstm", layers=1, tie=False, embed=8, tokenizer="char", seed=0, data="toy", **model_options
):
    """A run directory holding a freshly initialised (untrained) model: parity needs no training."""
    corpus = load_corpus(data)
    tok = build_tokenizer(tokenizer, corpus.train, (corpus.val, corpus.test))
    hidden = embed if tie else 8
    config = RunConfig(
        model=ModelConfig(
            model=model, layers=layers, hidden=hidden, embed=embed, tie=tie, vocab_size=len(tok), **model_options
        ),
        data=DataConfig(data=data, tokenizer=tokenizer),
        train=TrainConfig(device="cpu"),
    )
    torch.manual_seed(seed)
    net = RNNLM(config.model).eval()
    with torch.no_grad():  # larger weights than the default init: states far from zero test more
        for parameter in net.rnn.parameters():
            parameter.mul_(3.0)
    save_checkpoint(directory / "best", config, export_weights(net), tok, kind="best", step=0, val_loss=1.0)
    return net


def torch_windows(net, ids, state):
    """The torch model itself (not the export wrapper) over WINDOWS, state carried."""
    outputs, start = [], 0
    with torch.no_grad():
        for length in WINDOWS:
            logits, _, state = net(torch.from_numpy(ids[:, start : start + length]), state=state)
            start += length
            states = state if isinstance(state, tuple) else (state,)
            outputs.append((logits.numpy(), [s.numpy() for s in states]))
    return outputs


def onnx_windows(path, ids, state_arrays):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    outputs, start = [], 0
    for length in WINDOWS:
        feeds = dict(zip(names, [ids[:, start : start + length], *state_arrays], strict=True))
        logits, *state_arrays = session.run(None, feeds)
        start += length
        outputs.append((logits, state_arrays))
    return outputs


def max_differences(got, expected):
    logits = max(float(np.abs(g[0] - e[0]).max()) for g, e in zip(got, expected, strict=True))
    state = max(
        float(np.abs(gs - es).max())
        for g, e in zip(got, expected, strict=True)
        for gs, es in zip(g[1], e[1], strict=True)
    )
    return logits, state


@pytest.mark.parametrize(
    "model,layers,tie",
    [
        ("rnn", 1, False),
        ("rnn", 2, True),
        ("gru", 1, True),
        ("gru", 2, False),
        ("lstm", 1, False),
        ("lstm", 2, False),
        ("lstm", 1, True),
        ("lstm", 2, True),
    ],
)
def test_onnx_matches_torch_across_windows(tmp_path, model, layers, tie):
    net = make_run(tmp_path / "run", model, layers, tie)
    document = export_model(tmp_path / "run", "onnx", tmp_path / "out")
    assert document["graph"] == "window" and document["parity"]["within_1e-5"]
    rng = np.random.default_rng(1)
    ids = rng.integers(0, net.config.vocab_size, (2, sum(WINDOWS)))
    start = [
        rng.normal(0, 0.5, (layers, 2, net.config.hidden)).astype(np.float32)
        for _ in range(2 if model == "lstm" else 1)
    ]
    torch_state = tuple(torch.from_numpy(s) for s in start)
    expected = torch_windows(net, ids, torch_state if model == "lstm" else torch_state[0])
    got = onnx_windows(tmp_path / "out" / "window.onnx", ids, start)
    logits_diff, state_diff = max_differences(got, expected)
    assert logits_diff < 1e-5 and state_diff < 1e-5
    assert np.abs(expected[-1][0]).max() > 0.1  # the comparison is not between near-zero numbers


@pytest.mark.parametrize("model", ["rnn_relu", "gru"])
def test_step_graph_one_hot_inputs(tmp_path, model):
    """embed 0 (one-hot inputs) and the relu RNN export too; the step graph takes (batch,) ids."""
    net = make_run(tmp_path / "run", model, layers=2, embed=0)
    document = export_model(tmp_path / "run", "onnx", tmp_path / "out", graph="step")
    assert document["inputs"][0]["shape"] == ["batch"] and document["outputs"][0]["shape"] == ["batch", "vocab"]
    session = ort.InferenceSession(str(tmp_path / "out" / "step.onnx"))
    ids = np.array([3, 1, 4], dtype=np.int64)
    h = np.zeros((2, 3, 8), np.float32)
    for _ in range(3):  # feed each step's state back in
        logits, h_next = session.run(None, {"input_ids": ids, "h": h})
        with torch.no_grad():
            expected, _, state = net(torch.from_numpy(ids)[:, None], state=torch.from_numpy(h))
        assert np.abs(logits - expected[:, 0].numpy()).max() < 1e-5
        assert np.abs(h_next - state.numpy()).max() < 1e-5
        h, ids = h_next, (ids + 1) % net.config.vocab_size


def test_adaptive_softmax_word_model_exports_log_probabilities(tmp_path):
    net = make_run(
        tmp_path / "run", "lstm", tokenizer="word", data="timemachine", adaptive_softmax=True, cutoffs=(400, 2000)
    )
    document = export_model(tmp_path / "run", "onnx", tmp_path / "out")
    assert "log-probabilities" in document["outputs"][0]["meaning"]
    assert document["tokenizer"]["files"] == {"rnnkit": "tokenizer.json", "huggingface": "hf_tokenizer.json"}
    session = ort.InferenceSession(str(tmp_path / "out" / "window.onnx"))
    zeros = np.zeros((1, 1, 8), np.float32)
    log_probs = session.run(None, {"input_ids": np.array([[1, 2, 3]]), "h": zeros, "c": zeros})[0]
    assert np.allclose(np.exp(log_probs).sum(-1), 1.0, atol=1e-5)
    with torch.no_grad():
        expected = net.head.log_prob(net.rnn(net.embed(torch.tensor([[1, 2, 3]])))[0][0]).numpy()
    assert np.abs(log_probs[0] - expected).max() < 1e-5


@pytest.mark.parametrize(
    "format,graph",
    [("torchscript", "window"), ("torchscript", "step"), pytest.param("pt2", "step", marks=pytest.mark.slow)],
)  # torch.export: 6 s
def test_torchscript_and_pt2_load_without_rnnkit_classes(tmp_path, format, graph):
    net = make_run(tmp_path / "run", "lstm", layers=2)
    document = export_model(tmp_path / "run", format, tmp_path / "out", graph=graph)
    path = tmp_path / "out" / document["file"]
    with warnings.catch_warnings():  # torch 2.13 deprecates torch.jit.load; the format is what was asked for
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path)) if format == "torchscript" else torch.export.load(str(path)).module()
    ids = torch.tensor([[2, 5, 1, 0], [4, 4, 3, 2], [1, 1, 1, 1]])
    state = (torch.randn(2, 3, 8), torch.randn(2, 3, 8))
    if graph == "step":
        logits, h, c = module(ids[:, 0], *state)
        with torch.no_grad():
            expected, _, (eh, ec) = net(ids[:, :1], state=state)
        expected = expected[:, 0]
    else:
        logits, h, c = module(ids, *state)
        with torch.no_grad():
            expected, _, (eh, ec) = net(ids, state=state)
    assert torch.allclose(logits, expected, atol=1e-6) and torch.allclose(h, eh, atol=1e-6)
    assert torch.allclose(c, ec, atol=1e-6) and document["parity"]["max_abs_diff_logits"] < 1e-5


def test_description_and_tokenizer_files(tmp_path):
    make_run(tmp_path / "run", "gru")
    assert main(["export", str(tmp_path / "run"), "--json"]) == 0
    out = tmp_path / "run" / "export"
    document = json.loads((out / "window.onnx.json").read_text())
    assert [i["name"] for i in document["inputs"]] == ["input_ids", "h"]
    assert [o["name"] for o in document["outputs"]] == ["logits", "h_out"]
    assert document["dynamic_axes"] == ["batch", "seq"] and document["opset"] == 17
    assert document["size_bytes"] == (out / "window.onnx").stat().st_size
    assert (out / "tokenizer.json").is_file() and document["tokenizer"]["vocab"][0] == document["tokenizer"]["vocab"][0]
    session = ort.InferenceSession(str(out / "window.onnx"))
    assert [(i.name, i.shape) for i in session.get_inputs()] == [
        ("input_ids", ["batch", "seq"]),
        ("h", [1, "batch", 8]),
    ]


def test_refusals_are_one_line(tmp_path, capsys, tiny):
    import rnnkit

    rnnkit.train(tiny("ngram", model="ngram", tokenizer="char"))
    assert main(["export", str(tmp_path / "ngram")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no graph to export" in err and "lstm" in err
    make_run(tmp_path / "run")
    with pytest.raises(SystemExit) as exit_code:
        main(["export", str(tmp_path / "run"), "--format", "tflite"])
    err = capsys.readouterr().err
    assert exit_code.value.code == 2 and "invalid choice" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match="--graph step with pt2"):
        export_model(tmp_path / "run", "pt2", graph="window")
    with pytest.raises(ConfigError, match="between 9 and 20"):
        export_model(tmp_path / "run", "onnx", opset=30)
    export_model(tmp_path / "run", "onnx")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        export_model(tmp_path / "run", "onnx")
    assert export_model(tmp_path / "run", "onnx", overwrite=True)["parity"]["within_1e-5"]


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    make_run(tmp_path / "run")
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ConfigError, match=re.escape("pip install 'rnnkit[export]'")):
        export_model(tmp_path / "run", "onnx")
    assert not list((tmp_path / "run" / "export").glob("*.onnx*"))  # nothing half-written


def readme_snippet() -> str:
    """The sampling example in the README's "Share and deploy" section, verbatim."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- onnx-sampling-example -->\n```python\n(.*?)```", text, re.S)
    assert match, "README lost its ONNX sampling example"
    return match.group(1)


def test_readme_sampling_example_runs_without_rnnkit(tmp_path):
    """The README's snippet, run as it is in a fresh interpreter that cannot import rnnkit,
    samples exactly the tokens the torch model gives with the same random numbers."""
    snippet = readme_snippet()
    folder = re.search(r'folder = "([^"]+)"', snippet).group(1)
    net = make_run(tmp_path / "run", "lstm", layers=2)
    export_model(tmp_path / "run", "onnx", tmp_path / folder, graph="step")
    script = tmp_path / "sample.py"
    script.write_text("import sys\nsys.modules['rnnkit'] = None\n" + snippet, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "", "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == replay_in_torch(net, tmp_path / folder / "step.onnx.json", snippet)


def replay_in_torch(net, description_path, snippet):
    """The snippet's sampling loop with the torch model giving the logits."""
    info = json.loads(description_path.read_text())
    temperature = float(re.search(r"/ ([0-9.]+)\)", snippet).group(1))
    count = int(re.search(r"range\((\d+)\)", snippet).group(1))
    seed = int(re.search(r"default_rng\((\d+)\)", snippet).group(1))
    vocab, rng, state = info["tokenizer"]["vocab"], np.random.default_rng(seed), None
    token, text = info["tokenizer"]["start_id"], []
    for _ in range(count):
        with torch.no_grad():
            logits, _, state = net(torch.tensor([[token]]), state=state)
        logits = logits[0, 0].numpy()
        p = np.exp((logits - logits.max()) / temperature)
        token = rng.choice(len(p), p=p / p.sum())
        text.append(vocab[token])
    return "".join(text) + "\n"
