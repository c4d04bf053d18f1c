"""The NumPy optimizers and clipping follow torch.optim and torch.nn.utils to float64 rounding."""

import numpy as np
import pytest
import torch

from rnnkit.models.numpy_optim import SGD, AdamW, clip_grad_norm

SHAPES = {"w": (4, 3), "b": (4,), "e": (5, 2)}


@pytest.fixture(autouse=True)
def single_threaded_torch():
    """Tiny torch references run ~50x faster on one thread than on two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


LRS = [0.1, 0.05, 0.2, 0.01, 0.3, 0.07]


def problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = [{k: rng.standard_normal(s) for k, s in SHAPES.items()} for _ in LRS]
    return params, grads


def run_torch(make_opt, params, grads):
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt = make_opt(list(tparams.values()))
    for lr, g in zip(LRS, grads, strict=True):
        for group in opt.param_groups:
            group["lr"] = lr
        for k, p in tparams.items():
            p.grad = torch.tensor(g[k])
        opt.step()
    return {k: p.detach().numpy() for k, p in tparams.items()}


def run_numpy(opt, params, grads):
    params = {k: v.copy() for k, v in params.items()}
    for lr, g in zip(LRS, grads, strict=True):
        opt.step(params, {k: v.copy() for k, v in g.items()}, lr)
    return params


def assert_same(mine, theirs, tol=1e-10):
    for k in theirs:
        err = np.abs(mine[k] - theirs[k]).max() / np.abs(theirs[k]).max()
        assert err < tol, (k, err)


@pytest.mark.parametrize(
    "momentum,weight_decay,dampening,nesterov",
    [
        (0.0, 0.0, 0.0, False),
        (0.9, 0.0, 0.0, False),
        (0.9, 0.01, 0.0, False),
        (0.8, 0.1, 0.3, False),
        (0.9, 0.01, 0.0, True),
    ],
)
def test_sgd_matches_torch(momentum, weight_decay, dampening, nesterov):
    params, grads = problem()
    theirs = run_torch(
        lambda ps: torch.optim.SGD(
            ps, lr=0.1, momentum=momentum, weight_decay=weight_decay, dampening=dampening, nesterov=nesterov
        ),
        params,
        grads,
    )
    mine = run_numpy(
        SGD(momentum=momentum, weight_decay=weight_decay, dampening=dampening, nesterov=nesterov), params, grads
    )
    assert_same(mine, theirs)


@pytest.mark.parametrize(
    "weight_decay,betas,eps", [(0.0, (0.9, 0.999), 1e-8), (0.01, (0.9, 0.999), 1e-8), (0.1, (0.8, 0.95), 1e-6)]
)
def test_adamw_matches_torch(weight_decay, betas, eps):
    params, grads = problem(1)
    theirs = run_torch(
        lambda ps: torch.optim.AdamW(ps, lr=0.1, betas=betas, eps=eps, weight_decay=weight_decay), params, grads
    )
    mine = run_numpy(AdamW(betas=betas, eps=eps, weight_decay=weight_decay), params, grads)
    assert_same(mine, theirs)


@pytest.mark.parametrize("make", [lambda: SGD(momentum=0.9, weight_decay=0.01), lambda: AdamW()])
def test_resuming_from_state_dict_continues_exactly(make):
    params, grads = problem(2)
    straight = run_numpy(make(), params, grads)
    first = make()
    p = {k: v.copy() for k, v in params.items()}
    for lr, g in zip(LRS[:3], grads[:3], strict=True):
        first.step(p, g, lr)
    saved = first.state_dict()
    assert saved["step"] == 3
    second = make()
    second.load_state_dict(saved)
    for lr, g in zip(LRS[3:], grads[3:], strict=True):
        second.step(p, g, lr)
    for k in straight:
        assert np.array_equal(p[k], straight[k])


def test_optimizer_state_dict_is_a_copy_and_is_checked():
    params, grads = problem(3)
    opt = AdamW()
    opt.step(params, grads[0], 0.1)
    saved = opt.state_dict()
    saved["exp_avg"]["w"][:] = 0
    assert np.any(opt.exp_avg["w"] != 0)
    with pytest.raises(ValueError, match="exp_avg_sq"):
        AdamW().load_state_dict({"step": 1, "exp_avg": {}})
    with pytest.raises(ValueError, match="step"):
        SGD().load_state_dict({"step": -1, "momentum_buffer": {}})
    with pytest.raises(ValueError, match="different parameters"):
        AdamW().load_state_dict({"step": 1, "exp_avg": {"w": np.zeros(2)}, "exp_avg_sq": {}})


@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(max_norm):
    _, grads = problem(4)
    grads = grads[0]
    tensors = [torch.tensor(g.copy(), requires_grad=False) for g in grads.values()]
    params = [torch.zeros_like(t, requires_grad=True) for t in tensors]
    for p, t in zip(params, tensors, strict=True):
        p.grad = t
    total_torch = torch.nn.utils.clip_grad_norm_(params, max_norm).item()
    total = clip_grad_norm(grads, max_norm)
    assert total == pytest.approx(total_torch, rel=1e-12)
    for g, p in zip(grads.values(), params, strict=True):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-12)
    norm_after = np.sqrt(sum((g * g).sum() for g in grads.values()))
    assert norm_after <= max_norm + 1e-9 and (max_norm < total or norm_after == pytest.approx(total))


def test_clip_keeps_float32():
    grads = {"a": np.full(4, 10.0, dtype=np.float32)}
    assert clip_grad_norm(grads, 1.0) == pytest.approx(20.0)
    assert grads["a"].dtype == np.float32 and np.linalg.norm(grads["a"]) == pytest.approx(1.0, rel=1e-5)
