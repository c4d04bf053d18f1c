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
    expected = {"embed.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l1", "rnn.bias_ih_l1", "head.weight", "head.bias"}
    assert expected <= names
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
        logprobs, state = scorer.next_logprobs(x[:, t : t + 1], state)
        summed -= logprobs[0, y[0, t]]
    assert total == pytest.approx(summed, rel=1e-5)


def test_adaptive_softmax_is_a_distribution_and_scores_like_its_log_probs():
    torch.manual_seed(3)
    lm = RNNLM(
        ModelConfig(model="lstm", layers=1, hidden=16, embed=8, vocab_size=500, adaptive_softmax=True, dropout=0.0)
    )
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


# --- AWD-LSTM regularisers (training only; eval and parameter names as a plain model) ---

AWD = {"embed_dropout": 0.2, "dropout_input": 0.3, "dropout_hidden": 0.3, "dropout_output": 0.3, "weight_drop": 0.5}


def twin_models(model="lstm", layers=3, **options):
    """A regularised model and a plain one with the same weights."""
    torch.manual_seed(0)
    base = {"model": model, "layers": layers, "hidden": 12, "embed": 6, "vocab_size": 9, "dropout": 0.0}
    regularised, plain = RNNLM(ModelConfig(**base, **options)), RNNLM(ModelConfig(**base))
    plain.load_state_dict(regularised.state_dict())
    return regularised, plain


def random_ids(seed=1, shape=(3, 11)):
    return torch.randint(0, 9, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("model", ["rnn", "gru", "lstm"])
def test_regularised_model_has_canonical_names_and_evaluates_like_a_plain_one(model):
    regularised, plain = twin_models(model, **AWD)
    assert list(regularised.state_dict()) == list(plain.state_dict())
    assert export_weights(regularised).keys() == export_weights(plain).keys()
    assert sum(1 for _ in regularised.parameters()) == sum(1 for _ in plain.parameters())
    x = random_ids()
    regularised.train()
    regularised(x, x)  # a training forward first: eval must not depend on it
    regularised.eval(), plain.eval()
    first, _, state = regularised(x)
    assert torch.equal(first, plain(x)[0])
    assert torch.equal(regularised(x)[0], first)  # deterministic
    assert torch.equal(regularised(x, state=state)[0], plain(x, state=state)[0])


def test_weight_drop_on_the_cudnn_module_through_public_apis():
    import warnings

    regularised, plain = twin_models("lstm", layers=2, weight_drop=0.5)
    x = random_ids()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (d) no deprecation or RNN-weights warning, no exception
        regularised.train()
        first, loss, _ = regularised(x, x)
        second, _, _ = regularised(x, x)
        loss.backward()
        regularised.eval()
        evaluated = regularised(x)[0]
    assert not torch.allclose(first, second)  # (a) a fresh mask per training forward
    plain.eval()
    assert torch.equal(evaluated, plain(x)[0])  # (b) eval: no mask, the plain model exactly
    for layer in range(2):  # (c) the raw weights learn; dropped entries get no gradient
        grad = regularised.rnn.get_parameter(f"weight_hh_l{layer}").grad
        assert grad is not None and grad.abs().sum() > 0
        assert 0.2 < (grad == 0).float().mean() < 0.8  # about half the entries were dropped (p = 0.5)
    assert isinstance(regularised.rnn, torch.nn.LSTM) and regularised.rnn.num_layers == 2


@pytest.mark.parametrize("model", ["gru", "lstm"])
def test_layer_by_layer_path_computes_what_the_fused_module_computes(model):
    # p so small that every mask keeps everything: only the execution path differs
    regularised, plain = twin_models(model, layers=3, dropout_hidden=1e-12, weight_drop=1e-12)
    x = random_ids()
    state = plain.initial_state(3)
    state = tuple(torch.randn_like(s) for s in state) if model == "lstm" else torch.randn_like(state)
    regularised.train(), plain.train()
    logits, loss, new_state = regularised(x, x, state)
    plain_logits, plain_loss, plain_state = plain(x, x, state)
    torch.testing.assert_close(logits, plain_logits, rtol=1e-6, atol=1e-6)
    ours_parts = new_state if model == "lstm" else (new_state,)
    for ours, theirs in zip(ours_parts, plain_state if model == "lstm" else (plain_state,), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    loss.backward(), plain_loss.backward()
    torch.testing.assert_close(regularised.rnn.weight_ih_l2.grad, plain.rnn.weight_ih_l2.grad, rtol=1e-5, atol=1e-6)


def test_all_options_off_keeps_the_plain_fast_path(monkeypatch):
    from rnnkit.models import torch_lm

    def refuse(*args, **kwargs):
        raise AssertionError("functional_call used on the plain path")

    monkeypatch.setattr(torch_lm, "functional_call", refuse)
    lm = RNNLM(ModelConfig(layers=2, hidden=8, embed=4, vocab_size=9, dropout=0.1))
    lm.train()
    lm(random_ids(), random_ids(2))[1].backward()
    regularised = RNNLM(ModelConfig(layers=2, hidden=8, embed=4, vocab_size=9, weight_drop=0.1))
    regularised.eval()
    regularised(random_ids())  # eval of a regularised model: the plain path too
    with pytest.raises(AssertionError, match="functional_call"):
        regularised.train()(random_ids())
    # embedding and locked input/output dropout leave the recurrent layers one fused call too
    fused = RNNLM(
        ModelConfig(layers=2, hidden=8, embed=4, vocab_size=9, embed_dropout=0.1, dropout_input=0.1, dropout_output=0.1)
    )
    fused.train()(random_ids(), random_ids(2))[1].backward()


def test_locked_dropout_shares_one_mask_across_time():
    from rnnkit.models.torch_lm import locked_dropout

    torch.manual_seed(0)
    out = locked_dropout(torch.ones(4, 50, 16), 0.25)
    assert torch.equal(out, out[:, :1].expand_as(out))  # the same mask at every time step
    assert out.unique().tolist() == pytest.approx([0.0, 1 / 0.75])
    assert not torch.equal(out[0, 0], out[1, 0])  # but one per sequence


def test_output_dropout_is_locked_and_applied_after_the_last_layer():
    torch.manual_seed(0)
    lm = RNNLM(ModelConfig(layers=1, hidden=16, embed=4, vocab_size=9, dropout_output=0.5)).train()
    _, _, _, (raw, dropped) = lm(random_ids(shape=(2, 30)), return_activations=True)
    ratio = dropped / raw
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio))
    assert set(ratio[:, 0].flatten().round(decimals=4).tolist()) == {0.0, 2.0}


def test_embedding_dropout_drops_whole_word_types():
    from rnnkit.models.torch_lm import embedding_dropout

    torch.manual_seed(0)
    embed = torch.nn.Embedding(1000, 3)
    idx = torch.randint(0, 1000, (8, 400))
    out = embedding_dropout(embed(idx), idx, 1000, 0.4)
    scale = (out / embed(idx))[..., 0].detach()  # one factor per position
    assert bool((torch.isclose(scale, torch.tensor(0.0)) | torch.isclose(scale, torch.tensor(1 / 0.6))).all())
    for token in idx[0, :20].tolist():  # every occurrence of a type shares its fate
        assert scale[idx == token].unique().numel() == 1
    kept = {t for t in idx.unique().tolist() if scale[idx == t][0] > 0}
    assert 0.5 < len(kept) / idx.unique().numel() < 0.7  # about 1 - p of the types survive
    out.sum().backward()
    dropped_rows = [t for t in idx.unique().tolist() if t not in kept]
    assert embed.weight.grad[dropped_rows].abs().sum() == 0 and embed.weight.grad[sorted(kept)].abs().sum() > 0


def test_activation_penalty_is_ar_plus_tar():
    from rnnkit.models.torch_lm import activation_penalty

    raw = torch.tensor([[[1.0, 2.0], [3.0, 0.0], [3.0, 1.0]]])  # (N=1, T=3, H=2)
    dropped = raw * 2
    ar = (dropped**2).mean()  # (4 + 16 + 36 + 0 + 36 + 4) / 6 = 16
    tar = torch.tensor([2.0, -2.0, 0.0, 1.0]).pow(2).mean()  # h_t - h_{t-1}: 9/4
    assert activation_penalty(raw, dropped, 2.0, 0.0).item() == pytest.approx(2 * ar.item())
    assert activation_penalty(raw, dropped, 0.0, 3.0).item() == pytest.approx(3 * tar.item())
    assert activation_penalty(raw, dropped, 2.0, 3.0).item() == pytest.approx(2 * 16 + 3 * 9 / 4)
    assert activation_penalty(raw[:, :1], dropped[:, :1], 0.0, 3.0).item() == 0.0  # one step: no TAR
