"""rnnkit.studies.diagnostics: gradient norms through time (vanishing gradients) and sigma_max(W_hh)."""

import json

import numpy as np
import pytest
import torch
from conftest import tiny_config

from rnnkit.cli import main
from rnnkit.config import ModelConfig
from rnnkit.errors import ConfigError
from rnnkit.models.torch_lm import RNNLM
from rnnkit.studies.diagnostics import (
    GradientOptions,
    gradients,
    hidden_gradient_norms,
    parse_kinds,
    recurrent_singular_values,
)
from rnnkit.train import train

T = 32
OPTIONS = GradientOptions(seq_len=T, batch_size=8, batches=2)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory):
    """A vanilla RNN and an LSTM briefly trained on the toy text (same seed, same budget)."""
    base = tmp_path_factory.mktemp("grad")
    runs = {}
    for model in ("rnn", "lstm"):
        config = tiny_config(base / model, model=model, steps=30, eval_interval=30)
        runs[model] = train(config).checkpoint
    return runs


@pytest.fixture(scope="module")
def measured(trained_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("grad-out") / "g"
    return gradients([trained_runs["rnn"], trained_runs["lstm"]], out=out, options=OPTIONS, log=lambda _m: None), out


def test_trained_rnn_gradient_vanishes_much_faster_than_lstm(measured):
    document, _ = measured
    rnn, lstm = document["models"]
    assert (rnn["model"], lstm["model"]) == ("rnn", "lstm")
    # T steps back, the RNN keeps a far smaller fraction of the last step's gradient
    assert rnn["relative"][T] < 1e-3 * lstm["relative"][T]
    assert rnn["decay_per_step"] < lstm["decay_per_step"] - 0.1
    assert all(value > 0 for value in rnn["grad_norm"][:8])


def test_json_and_png_structure(measured):
    document, out = measured
    saved = json.loads((out / "gradients.json").read_text())
    assert saved == json.loads(json.dumps(document))
    assert (out / "gradients.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert saved["seq_len"] == T and "top layer" in saved["quantity"]
    for row in saved["models"]:
        assert row["distance"] == list(range(T + 1)) and len(row["grad_norm"]) == T + 1
        assert row["relative"][0] == pytest.approx(1.0) and row["sequences"] > 0
        assert row["source"].endswith("best")
        (layer,) = row["singular_values"]
        assert layer["matrix"] == "rnn.weight_hh_l0" and layer["stacked"] > 0
    assert set(saved["models"][1]["singular_values"][0]["gates"]) == {"i", "f", "g", "o"}


def test_gradient_norms_follow_the_bptt_recurrence():
    """For a tanh RNN: dL/dh_{t-1} = (dL/dh_t * (1 - h_t^2)) W_hh, with dL/dh_T = W_out^T (p - y)."""
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(model="rnn", layers=1, hidden=6, embed=4, vocab_size=7)).double()
    x, y = torch.randint(0, 7, (3, 5)), torch.randint(0, 7, (3, 5))
    norms = hidden_gradient_norms(model, x, y)
    w_ih, w_hh = model.rnn.weight_ih_l0, model.rnn.weight_hh_l0
    bias = model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0
    with torch.no_grad():
        hs = [torch.zeros(3, 6, dtype=torch.float64)]
        for t in range(5):
            hs.append(torch.tanh(model.embed(x[:, t]) @ w_ih.T + hs[-1] @ w_hh.T + bias))
        probs = torch.softmax(model.head(hs[-1]), dim=-1)
        grad = (probs - torch.nn.functional.one_hot(y[:, -1], 7)) @ model.head.weight
        expected = [grad.norm(dim=-1)]
        for t in range(5, 0, -1):
            grad = (grad * (1 - hs[t] ** 2)) @ w_hh
            expected.append(grad.norm(dim=-1))
    assert torch.allclose(norms, torch.stack(expected), rtol=1e-9, atol=1e-12)


def test_singular_values_of_every_layer_and_gate():
    torch.manual_seed(1)
    model = RNNLM(ModelConfig(model="gru", layers=2, hidden=5, embed=3, vocab_size=4))
    rows = recurrent_singular_values(model)
    assert [row["matrix"] for row in rows] == ["rnn.weight_hh_l0", "rnn.weight_hh_l1"]
    weight = model.rnn.weight_hh_l1.detach().double().numpy()
    assert rows[1]["stacked"] == pytest.approx(np.linalg.svd(weight, compute_uv=False)[0])
    assert rows[1]["gates"]["z"] == pytest.approx(np.linalg.svd(weight[5:10], compute_uv=False)[0])


def test_fresh_models_through_the_cli(tmp_path, capsys):
    args = [
        "gradients",
        "--model",
        "rnn,gru",
        "--data",
        "toy",
        "--tokenizer",
        "word",
        "--seq-len",
        "8",
        "--batch-size",
        "4",
        "--batches",
        "1",
        "--hidden",
        "8",
        "--embed",
        "4",
        "--out",
        str(tmp_path / "g"),
        "--quiet",
        "--json",
    ]
    assert main(args) == 0
    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [row["label"] for row in document["models"]] == ["rnn", "gru"]
    assert all(row["source"] == "fresh" and len(row["grad_norm"]) == 9 for row in document["models"])
    assert main(args) == 2  # the results exist now: kept unless --overwrite
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "transformer"], "not a recurrent model"),
        (["--model", "ngram"], "not a recurrent model"),
        (["--seq-len", "0"], "seq_len must be"),
        (["/no/such/checkpoint"], "no such checkpoint"),
    ],
)
def test_bad_gradients_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert main(["gradients", *args, "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "g").exists()


def test_baseline_checkpoint_is_refused(tmp_path):
    run = train(tiny_config(tmp_path / "ngram", model="ngram")).checkpoint
    with pytest.raises(ConfigError, match="no hidden state"):
        gradients([run], out=tmp_path / "g", log=lambda _m: None)
    with pytest.raises(ConfigError):
        parse_kinds("rnn,rnn")
