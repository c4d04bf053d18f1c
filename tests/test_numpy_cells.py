"""The new cells: the Cho-form GRU and minGRU/minLSTM agree across engines; the min-RNNs' parallel
log-space scan equals their sequential loop; the concatenation identity; training, checkpoints
and refusals for all of them."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.config import ModelConfig, RunConfig
from rnnkit.errors import ConfigError
from rnnkit.models import minrnn
from rnnkit.models.cho_gru import ChoGRU
from rnnkit.models.numpy_cells import stacked_product
from rnnkit.models.numpy_lm import NumpyRNNLM
from rnnkit.models.registry import build_torch_model
from rnnkit.models.torch_lm import export_weights
from rnnkit.train import train

V = 11


def both_engines(**options):
    """A torch model in float64 and the NumPy model with the same weights."""
    config = ModelConfig(**({"layers": 2, "hidden": 6, "embed": 4, "vocab_size": V} | options))
    torch.manual_seed(3)
    model = build_torch_model(config).double().eval()
    net = NumpyRNNLM(config, dtype=np.float64)
    net.load_state_dict({name: t.numpy() for name, t in export_weights(model).items()})
    return model, net


@pytest.mark.parametrize(
    "options",
    [dict(model="gru", gru_form="cho"), dict(model="mingru"), dict(model="minlstm"), dict(model="mingru", embed=0)],
    ids=["cho", "mingru", "minlstm", "mingru-onehot"],
)
def test_numpy_and_torch_compute_the_same_model(options):
    model, net = both_engines(**options)
    idx = np.random.default_rng(0).integers(0, V, (3, 9))
    logits, _, state = model(torch.from_numpy(idx))
    np_logits, _, np_state = net(idx)
    np.testing.assert_allclose(np_logits, logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np_state, state.detach().numpy(), rtol=1e-10, atol=1e-12)
    # and a second window from the carried state
    logits2, _, _ = model(torch.from_numpy(idx[:, ::-1].copy()), state=state)
    np.testing.assert_allclose(net(idx[:, ::-1].copy(), state=np_state)[0], logits2.detach().numpy(), rtol=1e-10)


def test_cho_gru_step_is_the_reset_before_the_product_equation():
    torch.manual_seed(0)
    gru = ChoGRU(3, 4).double()
    x, h = torch.randn(2, 1, 3, dtype=torch.float64), torch.randn(1, 2, 4, dtype=torch.float64)
    w_ih, w_hh, b_ih, b_hh = gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0
    gi, h0 = x[:, 0] @ w_ih.T + b_ih, h[0]
    r = torch.sigmoid(gi[:, :4] + h0 @ w_hh[:4].T + b_hh[:4])
    z = torch.sigmoid(gi[:, 4:8] + h0 @ w_hh[4:8].T + b_hh[4:8])
    n = torch.tanh(gi[:, 8:] + (r * h0) @ w_hh[8:].T + b_hh[8:])  # r before the product (Cho et al. 2014)
    out, _ = gru(x, h)
    torch.testing.assert_close(out[:, 0], (1 - z) * n + z * h0)
    # the cuDNN form with the very same weights is another function
    cudnn = torch.nn.GRU(3, 4, batch_first=True).double()
    cudnn.load_state_dict(gru.state_dict())
    assert (cudnn(x, h)[0] - out).abs().max() > 1e-3


def test_cho_and_cudnn_forms_differ_in_both_engines():
    cho_torch, cho_numpy = both_engines(model="gru", gru_form="cho")
    cudnn = NumpyRNNLM(ModelConfig(model="gru", layers=2, hidden=6, embed=4, vocab_size=V), dtype=np.float64)
    cudnn.load_state_dict(cho_numpy.state_dict())
    idx = np.random.default_rng(1).integers(0, V, (2, 6))
    assert np.abs(cudnn(idx)[0] - cho_numpy(idx)[0]).max() > 1e-3


# ------------------------------------------------------------------ minGRU / minLSTM: parallel == sequential


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_parallel_log_space_scan_equals_the_sequential_loop_at_t512(kind, dtype):
    gen = torch.Generator().manual_seed(0)
    k = 2.0 * torch.randn(4, 512, minrnn.GATES[kind] * 16, generator=gen, dtype=dtype)
    h0 = torch.rand(4, 16, generator=gen, dtype=dtype)  # a carried state (positive, as g makes it)
    for start in (h0, torch.zeros_like(h0)):
        parallel = minrnn.parallel_scan(kind, k, start)
        sequential = minrnn.sequential_scan(kind, k, start)
        assert torch.isfinite(parallel).all()
        torch.testing.assert_close(parallel, sequential, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_scan_gradients_equal_the_loop_gradients(kind):
    gen = torch.Generator().manual_seed(1)
    k = torch.randn(2, 200, minrnn.GATES[kind] * 8, generator=gen, dtype=torch.float64, requires_grad=True)
    h0 = torch.rand(2, 8, generator=gen, dtype=torch.float64)
    weights = torch.randn(2, 200, 8, generator=gen, dtype=torch.float64)
    (grad_parallel,) = torch.autograd.grad((minrnn.parallel_scan(kind, k, h0) * weights).sum(), k)
    (grad_sequential,) = torch.autograd.grad((minrnn.sequential_scan(kind, k, h0) * weights).sum(), k)
    torch.testing.assert_close(grad_parallel, grad_sequential, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_scan_is_stable_where_gates_saturate(kind):
    # |k| up to 60: gates round to 0 or 1 in float32, and a* (the summed log a) reaches -3800 within
    # a chunk; the log-space scan and its gradient stay finite. float32 keeps ~6e-8 * |a*| of
    # relative precision there (the cancellation a*_t - a*_s), so it agrees to 1e-3; float64 to 1e-5
    for dtype, tolerance in ((torch.float32, 1e-3), (torch.float64, 1e-5)):
        width = minrnn.GATES[kind] * 16
        k = torch.linspace(-60, 60, 512 * width, dtype=dtype).reshape(1, 512, width)
        k = k[:, :, torch.randperm(width, generator=torch.Generator().manual_seed(0))].requires_grad_(True)
        h = minrnn.parallel_scan(kind, k, torch.zeros(1, 16, dtype=dtype))
        h.sum().backward()
        assert torch.isfinite(h).all() and torch.isfinite(k.grad).all()
        expected = minrnn.sequential_scan(kind, k.detach(), torch.zeros(1, 16, dtype=dtype))
        torch.testing.assert_close(h, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_the_loop_with_its_hand_written_backward_equals_the_parallel_scan(kind):
    gen = torch.Generator().manual_seed(2)
    k = torch.randn(2, 300, minrnn.GATES[kind] * 8, generator=gen, dtype=torch.float64, requires_grad=True)
    h0 = torch.rand(2, 8, generator=gen, dtype=torch.float64)
    weights = torch.randn(2, 300, 8, generator=gen, dtype=torch.float64)
    fused = minrnn.fused_sequential_scan(kind, k, h0)
    torch.testing.assert_close(fused, minrnn.parallel_scan(kind, k, h0), rtol=1e-10, atol=1e-12)
    (grad_fused,) = torch.autograd.grad((fused * weights).sum(), k)
    (grad_parallel,) = torch.autograd.grad((minrnn.parallel_scan(kind, k, h0) * weights).sum(), k)
    torch.testing.assert_close(grad_fused, grad_parallel, rtol=1e-8, atol=1e-10)
    a, b = (t.detach().requires_grad_(True) for t in minrnn.coefficients(kind, k.detach()))
    h0 = h0.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(minrnn.LinearScan.apply, (a[:, :20], b[:, :20], h0))


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_training_forward_is_the_same_by_scan_or_loop(kind):
    torch.manual_seed(0)
    model = build_torch_model(ModelConfig(model=kind, layers=2, hidden=8, embed=4, vocab_size=V, dropout=0))
    idx, targets = torch.randint(0, V, (3, 130)), torch.randint(0, V, (3, 130))
    model.parallel = True  # the log-space scan, as on a GPU
    _, loss_scan, _ = model(idx, targets)
    grads_scan = torch.autograd.grad(loss_scan, list(model.parameters()))
    model.parallel = None  # the CPU's default: the loop with its hand-written backward
    _, loss_loop, _ = model(idx, targets)
    grads_loop = torch.autograd.grad(loss_loop, list(model.parameters()))
    torch.testing.assert_close(loss_loop, loss_scan, rtol=1e-5, atol=1e-6)
    for g_loop, g_scan in zip(grads_loop, grads_scan, strict=True):
        torch.testing.assert_close(g_loop, g_scan, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_model_windows_use_the_scan_and_single_tokens_the_loop(kind):
    torch.manual_seed(0)
    model = build_torch_model(ModelConfig(model=kind, layers=2, hidden=8, embed=4, vocab_size=V)).eval()
    idx = torch.randint(0, V, (2, 70))
    model.parallel = True
    whole, _, final = model(idx)  # the parallel scan
    model.parallel = None
    state, steps = None, []
    for t in range(70):  # one token at a time: the sequential form, as generation runs it
        logits, _, state = model(idx[:, t : t + 1], state=state)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state, final, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ the concatenation identity


def test_one_product_with_stacked_weights_equals_two_products():
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((3, 5)), rng.standard_normal((3, 4))
    w_xh, w_hh = rng.standard_normal((5, 4)), rng.standard_normal((4, 4))
    np.testing.assert_allclose(stacked_product(x, h, w_xh, w_hh), x @ w_xh + h @ w_hh, rtol=1e-12)
    assert stacked_product(x, h, w_xh, w_hh).shape == (3, 4)
    # and with a wrong stacking order the identity fails: it is not an accident of the numbers
    assert np.abs(np.concatenate([x, h], 1) @ np.concatenate([w_hh, w_xh], 0) - x @ w_xh - h @ w_hh).max() > 1e-3


def test_stacked_product_is_the_rnn_cell_in_the_engine():
    from rnnkit.models.numpy_layers import rnn_forward

    rng = np.random.default_rng(1)
    x, h0 = rng.standard_normal((1, 2, 3)), rng.standard_normal((2, 4))
    w_ih, w_hh, b_ih, b_hh = (rng.standard_normal(s) for s in ((4, 3), (4, 4), 4, 4))
    hs, _, _ = rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh)  # PyTorch layout: W_xh = weight_ih^T
    np.testing.assert_allclose(hs[0], np.tanh(stacked_product(x[0], h0, w_ih.T, w_hh.T) + b_ih + b_hh), rtol=1e-12)


# ------------------------------------------------------------------ training, checkpoints, refusals


def cell_config(tiny, name, steps, engine="torch", **model):
    config = tiny(name, steps=steps)
    return RunConfig(ModelConfig(layers=1, hidden=16, embed=8, engine=engine, **model), config.data, config.train)


@pytest.mark.parametrize("engine", ["torch", "numpy"])
@pytest.mark.parametrize(
    "model",
    [dict(model="mingru"), dict(model="minlstm"), dict(model="gru", gru_form="cho")],
    ids=["mingru", "minlstm", "cho"],
)
def test_new_cells_train_and_resume_exactly(tiny, engine, model):
    whole = train(cell_config(tiny, "whole", 20, engine, dropout=0.1, **model))
    part = train(cell_config(tiny, "part", 10, engine, dropout=0.1, **model))
    resumed = train(resume=part.checkpoint, steps=20, quiet=True)
    assert resumed.val_loss == whole.val_loss
    first = json.loads((Path(whole.checkpoint) / "metrics.jsonl").read_text().splitlines()[0])
    assert whole.best_val_loss < first["train_loss"]


def test_checkpoint_records_the_gru_form_and_loads_in_either_engine(tiny):
    cho = train(cell_config(tiny, "cho", 10, model="gru", gru_form="cho"))
    plain = train(cell_config(tiny, "plain", 10, model="gru"))
    assert json.loads((Path(cho.checkpoint) / "config.json").read_text())["config"]["model"]["gru_form"] == "cho"
    assert json.loads((Path(plain.checkpoint) / "config.json").read_text())["config"]["model"]["gru_form"] == "cudnn"
    torch_loss = rnnkit.load(cho.checkpoint, device="cpu").evaluate().loss
    assert rnnkit.load(cho.checkpoint, engine="numpy").evaluate().loss == pytest.approx(torch_loss, rel=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "lstm", "--gru-form", "cho"], "a lstm model is not a GRU"),
        (["--model", "gru", "--gru-form", "reset-first"], "gru_form must be one of cudnn, cho"),
        (["--model", "mingru", "--weight-drop", "0.2"], "--weight-drop"),
        (["--model", "minlstm", "--ar-alpha", "2"], "takes neither"),
    ],
)
def test_refusals_are_one_line_exit_2(args, message, capsys, tmp_path):
    assert main(["train", *args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_changing_the_model_kind_drops_the_recorded_gru_form():
    from rnnkit.config import with_overrides

    gru = RunConfig(ModelConfig(model="gru", gru_form="cho"))
    assert with_overrides(gru, {"model": "lstm"}).model.gru_form is None
    assert with_overrides(gru, {"hidden": 8}).model.gru_form == "cho"
    with pytest.raises(ConfigError):
        ModelConfig(model="rnn", gru_form="cudnn")
