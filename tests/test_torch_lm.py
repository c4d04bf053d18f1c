import pytest
import torch

from rnnkit.config import ModelConfig
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.models.torch_lm import RNNLM, TorchScorer, export_weights, import_weights

TEXT_IDS = torch.tensor([[0, 1, 2, 3, 4, 5, 1, 2, 6, 7, 0, 1, 2, 3, 4, 5, 1, 2, 6, 7]])


@pytest.mark.parametrize("model", ["rnn", "rnn_relu", "gru", "lstm"])
@pytest.mark.parametrize("embed", [0, 8])
def test_contract_shapes_and_overfit(model, embed):
    torch.manual_seed(0)
    lm = RNNLM(ModelConfig(model=model, layers=2, hidden=32, embed=embed, vocab_size=8))
    x, y = TEXT_IDS[:, :-1], TEXT_IDS[:, 1:]
    logits, loss, state = lm(x, y)
    assert logits.shape == (1, 19, 8)
    assert (state[0] if model == "lstm" else state).shape == (2, 1, 32)
    first = loss.item()
    optimizer = torch.optim.Adam(lm.parameters(), lr=0.02)
    for _ in range(150):
        _, loss, _ = lm(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05 < first  # each cell memorises a tiny text


def test_no_targets_means_no_loss():
    lm = RNNLM(ModelConfig(hidden=8, embed=4, layers=1, vocab_size=5))
    _, loss, _ = lm(torch.zeros(2, 3, dtype=torch.long))
    assert loss is None


def test_tied_weights_are_one_tensor_and_saved_once():
    lm = RNNLM(ModelConfig(hidden=16, embed=16, tie=True, vocab_size=11))
    assert lm.head.weight is lm.embed.weight
    weights = export_weights(lm)
    assert "head.weight" not in weights and "embed.weight" in weights
    other = RNNLM(ModelConfig(hidden=16, embed=16, tie=True, vocab_size=11))
    import_weights(other, weights)
    assert torch.equal(other.head.weight, lm.embed.weight)


def test_parameter_names_follow_torch_layout():
    lm = RNNLM(ModelConfig(model="gru", layers=2, hidden=6, embed=3, vocab_size=9))
    names = set(export_weights(lm))
    assert {"embed.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l1", "rnn.bias_ih_l1", "head.weight", "head.bias"} <= names
    assert lm.rnn.weight_ih_l0.shape == (18, 3)  # r, z, n stacked


def test_import_refuses_mismatched_weights():
    lm = RNNLM(ModelConfig(hidden=8, embed=4, vocab_size=5))
    weights = export_weights(lm)
    weights["head.bias"] = torch.zeros(6)
    with pytest.raises(CheckpointError, match="shape"):
        import_weights(lm, weights)
    with pytest.raises(CheckpointError, match="missing"):
        import_weights(lm, {})


def test_vocab_size_must_be_set():
    with pytest.raises(ConfigError):
        RNNLM(ModelConfig())


def test_scorer_score_matches_next_logprobs():
    torch.manual_seed(1)
    lm = RNNLM(ModelConfig(model="gru", layers=1, hidden=8, embed=4, vocab_size=8))
    scorer = TorchScorer(lm)
    x, y = TEXT_IDS[:, :-1].numpy(), TEXT_IDS[:, 1:].numpy()
    total, _ = scorer.score(x, y, scorer.initial_state(1))
    state, summed = scorer.initial_state(1), 0.0
    for t in range(x.shape[1]):
        logprobs, state = scorer.next_logprobs(x[:, t:t + 1], state)
        summed -= logprobs[0, y[0, t]]
    assert total == pytest.approx(summed, rel=1e-5)


def test_adaptive_softmax_is_a_distribution_and_scores_like_its_log_probs():
    torch.manual_seed(3)
    lm = RNNLM(ModelConfig(model="lstm", layers=1, hidden=16, embed=8, vocab_size=500, adaptive_softmax=True))
    idx = torch.randint(0, 500, (2, 7))
    targets = torch.randint(0, 500, (2, 7))
    log_probs, _, _ = lm(idx)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 7), atol=1e-5)
    logits, loss, _ = lm(idx, targets)
    assert logits is None
    expected = -log_probs.gather(-1, targets[..., None]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    total, _ = TorchScorer(lm).score(idx.numpy(), targets.numpy(), None)
    assert total == pytest.approx(expected.item() * 14, rel=1e-5)


def test_adaptive_softmax_refusals():
    with pytest.raises(ConfigError, match="tie"):
        ModelConfig(adaptive_softmax=True, tie=True, embed=256, hidden=256)
    with pytest.raises(ConfigError, match="cutoffs"):
        ModelConfig(cutoffs=(50, 20))
    with pytest.raises(ConfigError, match="do not fit"):
        RNNLM(ModelConfig(vocab_size=5, adaptive_softmax=True))
