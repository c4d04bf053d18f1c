"""Fine-tuning: train --init-from RUN --data NEW (rnnkit.finetune)."""

import json

import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.config import ModelConfig, RunConfig
from rnnkit.errors import ConfigError, DataError
from rnnkit.finetune import grown_tokenizer, grown_weights
from rnnkit.models.torch_lm import RNNLM, export_weights
from rnnkit.text.tokenizer import build_tokenizer

NEW_TEXT = "hello she sang. he holds a gold bead. you buy a bug hound. " * 60  # only letters the toy corpus has
OPTIONS = dict(
    steps=4, eval_interval=4, log_interval=2, quiet=True, sample_tokens=0, device="cpu", seed=3, batch_size=4, seq_len=8
)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    from conftest import tiny_config

    return rnnkit.train(tiny_config(tmp_path_factory.mktemp("ft") / "source", tokenizer="char", steps=30))


@pytest.fixture
def new_file(tmp_path):
    path = tmp_path / "new.txt"
    path.write_text(NEW_TEXT)
    return path


def test_starts_from_the_source_weights_not_from_scratch(source, new_file, tmp_path):
    """The fine-tune's val loss before any update is the source model's on the new text's val split,
    and far from what a freshly initialised model of the same shape has there."""
    tuned = rnnkit.train(
        init_from=source.checkpoint, data=str(new_file), out=str(tmp_path / "tuned"), lr=1e-3, **OPTIONS
    )
    document = json.loads((tmp_path / "tuned" / "config.json").read_text())
    origin = document["init_from"]
    assert origin["path"] == str(source.best_checkpoint) and origin["added_tokens"] == []
    before = rnnkit.load(source.checkpoint, device="cpu").evaluate(str(new_file), split="val")
    assert origin["new_val_loss_before"] == pytest.approx(before.loss, rel=1e-6)
    scratch = rnnkit.train(
        RunConfig.from_dict(
            {
                "model": {"model": "lstm", "layers": 1, "hidden": 32, "embed": 16},
                "data": {"data": str(new_file), "tokenizer": "char", "batch_size": 4, "seq_len": 8},
            }
        ),
        out=str(tmp_path / "scratch"),
        steps=1,
        eval_interval=1,
        quiet=True,
        sample_tokens=0,
        device="cpu",
        seed=3,
    )
    assert abs(scratch.val_loss - before.loss) > 0.05  # equal to 1e-6 above, not to a fresh model
    saved = json.loads((tmp_path / "tuned" / "best" / "config.json").read_text())
    assert saved["init_from"]["path"] == origin["path"]  # every checkpoint of the run records it
    assert saved["config"]["model"]["hidden"] == 32 and saved["config"]["data"]["data"] == str(new_file)
    lm = rnnkit.load(tuned.checkpoint, device="cpu")
    assert lm.tokenizer.to_dict() == rnnkit.load(source.checkpoint).tokenizer.to_dict()
    assert tuned.steps == 4  # a fresh schedule: step counting starts again


def test_new_characters_refused_with_their_list_then_grown(source, tmp_path, capsys):
    path = tmp_path / "new.txt"
    path.write_text(NEW_TEXT + "Zebu #42 " * 5)
    argv = [
        "train",
        "--init-from",
        str(source.checkpoint),
        "--data",
        str(path),
        "--steps",
        "2",
        "--eval-interval",
        "2",
        "--sample-tokens",
        "0",
        "--device",
        "cpu",
        "--quiet",
        "--batch-size",
        "4",
        "--seq-len",
        "8",
    ]
    assert main([*argv, "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'#', '2', '4', 'Z'" in err and "--grow-vocab" in err
    assert not (tmp_path / "refused").exists()
    assert main([*argv, "--out", str(tmp_path / "grown"), "--grow-vocab", "--json"]) == 0
    document = json.loads((tmp_path / "grown" / "config.json").read_text())
    added = document["init_from"]["added_tokens"]
    assert sorted(added) == ["#", "2", "4", "Z"]
    old, new = rnnkit.load(source.checkpoint).tokenizer, rnnkit.load(tmp_path / "grown").tokenizer
    assert new.vocab.itos[: len(old)] == old.vocab.itos and new.vocab.itos[len(old) :] == added


@pytest.mark.parametrize("embed, tie", [(8, False), (0, False), (16, True)])
def test_grown_rows_keep_the_old_ones_and_start_unlikely(embed, tie):
    tokenizer = build_tokenizer("char", "abcab ca")
    config = RunConfig(
        model=ModelConfig(
            dropout=0.0, model="gru", layers=1, hidden=16, embed=embed, tie=tie, vocab_size=len(tokenizer)
        )
    )
    torch.manual_seed(0)
    weights = export_weights(RNNLM(config.model))
    grown = grown_weights(weights, config, 2)
    bigger = grown_tokenizer(tokenizer, ["x", "y"])
    assert bigger.encode("abc x").tolist() == tokenizer.encode("abc ").tolist() + [len(tokenizer)]
    assert bigger.vocab.stoi["x"] == len(tokenizer) and bigger.vocab.stoi["y"] == len(tokenizer) + 1
    V = len(tokenizer)
    assert torch.equal(grown["head.bias"][:V], weights["head.bias"])
    assert torch.all(grown["head.bias"][V:] == weights["head.bias"].min())
    if embed:
        assert torch.equal(grown["embed.weight"][:V], weights["embed.weight"])
        assert torch.allclose(grown["embed.weight"][V], weights["embed.weight"].mean(0))
    else:
        assert torch.equal(grown["rnn.weight_ih_l0"][:, :V], weights["rnn.weight_ih_l0"])
        assert grown["rnn.weight_ih_l0"].shape[1] == V + 2
    assert ("head.weight" in grown) == (not tie)
    bigger_config = ModelConfig(dropout=0.0, model="gru", layers=1, hidden=16, embed=embed, tie=tie, vocab_size=V + 2)
    model = RNNLM(bigger_config)
    from rnnkit.models.torch_lm import import_weights

    import_weights(model, grown)  # the grown weights fit a model of the grown vocabulary
    # on old tokens the grown model computes what the old one did: their logits are unchanged
    with torch.no_grad():
        old_model = RNNLM(config.model)
        import_weights(old_model, weights)
        idx = torch.tensor([[0, 1, 2, 1]])
        assert torch.allclose(model(idx)[0][..., :V], old_model(idx)[0], atol=1e-6)


def test_refusals(source, new_file, tmp_path, capsys):
    base = ["train", "--init-from", str(source.checkpoint), "--data", str(new_file), "--out", str(tmp_path / "x")]
    for extra, expect in (
        (["--model", "gru"], "--model gru (source: lstm)"),
        (["--hidden", "64"], "--hidden 64"),
        (["--tokenizer", "word"], "--tokenizer word"),
        (["--resume", "r"], "no config, resume"),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expect in err
    assert main(["train", "--init-from", str(source.checkpoint), "--out", str(tmp_path / "x")]) == 2
    assert "needs --data" in capsys.readouterr().err
    assert main(["train", "--grow-vocab", "--data", str(new_file), "--out", str(tmp_path / "x")]) == 2
    assert "--init-from" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    fitted = rnnkit.train(
        RunConfig.from_dict({"model": {"model": "ngram", "order": 2}, "data": {"data": "toy", "tokenizer": "char"}}),
        out=str(tmp_path / "ngram"),
        quiet=True,
        sample_tokens=0,
    )
    with pytest.raises(ConfigError, match="fitted in one pass"):
        rnnkit.train(init_from=fitted.checkpoint, data=str(new_file), out=str(tmp_path / "y"))
    with pytest.raises(DataError, match="lacks"):
        path = tmp_path / "z.txt"
        path.write_text("\u4e2d" * 100)
        rnnkit.train(init_from=source.checkpoint, data=str(path), out=str(tmp_path / "y"))
    assert not (tmp_path / "y").exists()
