"""The neural n-gram (Bengio et al. 2003, models/mlp.py): a hand-worked forward pass, its state
(the last K tokens), training and resume through the Trainer, compare, and its refusals."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.config import ModelConfig
from rnnkit.errors import ConfigError
from rnnkit.models.mlp import MLPLM
from rnnkit.models.registry import scorer_from_weights
from rnnkit.models.torch_lm import export_weights
from rnnkit.studies.compare import ModelSpec, parse_models
from rnnkit.train import train


def hand_model() -> MLPLM:
    """V = 3, D = 1, K = 2, one hidden unit: every number small enough to follow by hand."""
    model = MLPLM(ModelConfig(model="mlp", context=2, layers=1, hidden=1, embed=1, vocab_size=3))
    with torch.no_grad():
        model.embed.weight.copy_(torch.tensor([[1.0], [2.0], [-1.0], [0.5]]))  # row 3: before the text
        model.hidden[0].weight.copy_(torch.tensor([[0.5, -1.0]]))  # (older token, newer token)
        model.hidden[0].bias.copy_(torch.tensor([0.1]))
        model.head.weight.copy_(torch.tensor([[1.0], [-1.0], [2.0]]))
        model.head.bias.copy_(torch.tensor([0.0, 0.5, -0.5]))
    return model.eval()


def test_logits_match_the_hand_computation():
    # idx = [0, 2] from the start of a text: the windows are (<start>, 0) and (0, 2)
    #   t=1: x = [C(3), C(0)] = [0.5, 1.0];  a = tanh(0.5*0.5 - 1*1.0 + 0.1) = tanh(-0.65)
    #   t=2: x = [C(0), C(2)] = [1.0, -1.0]; a = tanh(0.5*1.0 - 1*(-1.0) + 0.1) = tanh(1.6)
    #   logits = [a, -a + 0.5, 2a - 0.5]
    a1, a2 = -0.5716699660851172, 0.9216685544064713
    expected = [[a1, -a1 + 0.5, 2 * a1 - 0.5], [a2, -a2 + 0.5, 2 * a2 - 0.5]]
    logits, loss, state = hand_model()(torch.tensor([[0, 2]]), torch.tensor([[2, 1]]))
    np.testing.assert_allclose(logits[0].detach().numpy(), expected, rtol=1e-6)
    assert state.tolist() == [[0], [2]]  # (K, N): the last two tokens read, oldest first
    logp = torch.log_softmax(torch.tensor(expected), -1)
    assert loss.item() == pytest.approx(-(logp[0, 2] + logp[1, 1]).item() / 2, rel=1e-6)


def test_the_state_carries_the_context_across_windows():
    model = hand_model()
    idx = torch.tensor([[0, 2, 1, 1, 0], [2, 2, 0, 1, 2]])
    whole, _, final = model(idx)
    first, _, state = model(idx[:, :2])
    second, _, state = model(idx[:, 2:], state=state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)
    assert torch.equal(state, final) and state.tolist() == [[1, 1], [0, 2]]
    # only the last K tokens matter: a different distant past gives the same prediction
    other, _, _ = model(torch.tensor([[2, 2, 2, 1, 0]]))
    torch.testing.assert_close(other[0, -1], whole[0, -1])


def test_scorer_state_holds_ids_and_selects_rows():
    config = ModelConfig(model="mlp", context=3, layers=2, hidden=8, embed=4, vocab_size=5)
    torch.manual_seed(0)
    scorer, _ = scorer_from_weights(config, export_weights(MLPLM(config)))
    state = scorer.initial_state(2)
    assert state.shape == (3, 2) and state.dtype == torch.long and (state == 5).all()
    _, state = scorer.next_logprobs(np.array([[1, 2], [3, 4]]), state)
    assert scorer.select_state(state, np.array([1, 1, 0])).tolist() == [[5, 5, 5], [3, 3, 1], [4, 4, 2]]


def mlp_config(tiny, name, steps, **model):
    config = tiny(name, steps=steps, eval_interval=5)
    options = dict(model="mlp", context=2, layers=1, hidden=16, embed=8) | model
    return type(config)(ModelConfig(**options), config.data, config.train)


def test_mlp_trains_and_resumes_exactly(tiny):
    whole = train(mlp_config(tiny, "whole", 20, dropout=0.1))
    part = train(mlp_config(tiny, "part", 10, dropout=0.1))
    resumed = train(resume=part.checkpoint, steps=20, quiet=True)
    assert resumed.val_loss == whole.val_loss
    first = json.loads((tmp_path_of(whole) / "metrics.jsonl").read_text().splitlines()[0])
    assert whole.best_val_loss < first["train_loss"] - 0.5  # it learnt: well below where it started


def tmp_path_of(result):
    from pathlib import Path

    return Path(result.checkpoint)


@pytest.mark.parametrize(
    "model, message",
    [
        (dict(model="mlp", context=0), "context must be between 1"),
        (dict(model="mlp"), "needs --context K"),
        (dict(model="lstm", context=2), "no fixed context"),
        (dict(model="mlp", context=2, engine="numpy"), "torch engine only"),
        (dict(model="mlp", context=2, tie=True, embed=256), "--tie"),
        (dict(model="mlp", context=2, embed=0), "--embed > 0"),
        (dict(model="mlp", context=2, weight_drop=0.2), "--weight-drop"),
    ],
)
def test_refusals(model, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**model)


def test_cli_context_zero_is_one_line_exit_2(capsys, tmp_path):
    assert main(["train", "--model", "mlp", "--context", "0", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "context must be between 1" in err


def test_compare_parses_mlp_with_its_context():
    assert parse_models("mlp:2,ngram:3,mingru") == [ModelSpec("mlp", 2), ModelSpec("ngram", 3), ModelSpec("mingru")]
    assert ModelSpec("mlp", 2).model_config(1, 16, 8, 0.0).context == 2
    with pytest.raises(ConfigError, match="mlp needs an integer context"):
        parse_models("mlp")
    with pytest.raises(ConfigError, match="context must be between 1"):
        parse_models("mlp:0")


def test_compare_runs_mlp_beside_the_ngram(tmp_path):
    out = tmp_path / "cmp"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(
            [
                "compare",
                "--data",
                "toy",
                "--tokenizer",
                "word",
                "--hidden",
                "16",
                "--embed",
                "8",
                "--batch-size",
                "4",
                "--seq-len",
                "8",
                "--lr",
                "0.02",
                "--device",
                "cpu",
                "--models",
                "ngram:2,mlp:2",
                "--budget-seconds",
                "1",
                "--out",
                str(out),
                "--quiet",
                "--json",
            ]
        )
    assert code == 0
    rows = json.loads(stdout.getvalue())
    assert [row["model"] for row in rows] == ["ngram:2", "mlp:2"]
    assert rows[1]["steps"] > 0 and (out / "mlp-2" / "best").is_dir()
