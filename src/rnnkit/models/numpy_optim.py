"""Optimizers and gradient clipping for the NumPy engine, defined exactly as in torch.optim.

Parameters and gradients are dicts name -> array; `step` updates the parameter arrays in place
(so a model holding them sees the change). The learning rate is an argument of `step`, so any
schedule can drive it. `state_dict` / `load_state_dict` save and restore the step count and the
per-parameter buffers, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def clip_grad_norm(grads: Mapping[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients in place so that their global L2 norm is at most max_norm.

    As torch.nn.utils.clip_grad_norm_: total = ||(||g_1||, ..., ||g_k||)||_2, and every g is
    multiplied by min(1, max_norm / (total + 1e-6)). Returns the norm before clipping.
    """
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:  # torch multiplies by the clamped coefficient; times 1.0 changes nothing
        for g in grads.values():
            g *= g.dtype.type(coef)
    return total


def _check_buffers(state: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, dict[str, np.ndarray]]:
    """Validate an optimizer state dict's buffer sections: dicts of name -> float array."""
    out = {}
    for key in keys:
        section = state.get(key)
        if not isinstance(section, Mapping):
            raise ValueError(f"optimizer state has no '{key}' section (a dict of arrays)")
        arrays = {name: np.array(value) for name, value in section.items()}
        for name, array in arrays.items():
            if not np.issubdtype(array.dtype, np.floating):
                raise ValueError(f"optimizer buffer {key}[{name}] must hold floats")
        out[key] = arrays
    if len(keys) == 2 and set(out[keys[0]]) != set(out[keys[1]]):
        raise ValueError(f"optimizer buffers {keys[0]} and {keys[1]} name different parameters")
    step = state.get("step")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"optimizer state 'step' must be a non-negative integer, got {step!r}")
    return out


class SGD:
    """torch.optim.SGD: g <- g + wd p;  b <- g (first step) or mu b + (1 - dampening) g;
    g <- g + mu b (nesterov) or b;  p <- p - lr g."""

    def __init__(
        self, momentum: float = 0.0, weight_decay: float = 0.0, dampening: float = 0.0, nesterov: bool = False
    ) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov momentum needs momentum > 0 and dampening = 0")
        self.momentum, self.weight_decay = momentum, weight_decay
        self.dampening, self.nesterov = dampening, nesterov
        self.step_count = 0
        self.momentum_buffer: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: Mapping[str, np.ndarray], lr: float) -> None:
        self.step_count += 1
        for name, grad in grads.items():
            p = params[name]
            d_p = grad + self.weight_decay * p if self.weight_decay else grad
            if self.momentum:
                buf = self.momentum_buffer.get(name)
                if buf is None:
                    buf = self.momentum_buffer[name] = np.array(d_p, dtype=p.dtype)
                else:
                    buf *= self.momentum
                    buf += (1 - self.dampening) * d_p
                d_p = d_p + self.momentum * buf if self.nesterov else buf
            p -= lr * d_p

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step_count, "momentum_buffer": {k: v.copy() for k, v in self.momentum_buffer.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        buffers = _check_buffers(state, ("momentum_buffer",))
        self.step_count = int(state["step"])
        self.momentum_buffer = buffers["momentum_buffer"]


class AdamW:
    """torch.optim.AdamW (decoupled weight decay), for step t = 1, 2, ...:

    p <- p (1 - lr wd)
    m <- b1 m + (1 - b1) g;     v <- b2 v + (1 - b2) g^2
    p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """

    def __init__(
        self, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2
    ) -> None:
        self.beta1, self.beta2 = betas
        self.eps, self.weight_decay = eps, weight_decay
        self.step_count = 0
        self.exp_avg: dict[str, np.ndarray] = {}
        self.exp_avg_sq: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: Mapping[str, np.ndarray], lr: float) -> None:
        self.step_count += 1
        b1, b2 = self.beta1, self.beta2
        step_size = lr / (1 - b1**self.step_count)
        bc2_sqrt = math.sqrt(1 - b2**self.step_count)
        for name, grad in grads.items():
            p = params[name]
            if name not in self.exp_avg:
                self.exp_avg[name] = np.zeros_like(p)
                self.exp_avg_sq[name] = np.zeros_like(p)
            m, v = self.exp_avg[name], self.exp_avg_sq[name]
            if self.weight_decay:
                p *= 1 - lr * self.weight_decay
            m += (1 - b1) * (grad - m)  # torch's lerp form of b1 m + (1 - b1) g
            v *= b2
            v += (1 - b2) * grad * grad
            denom = np.sqrt(v)
            denom /= bc2_sqrt
            denom += self.eps
            p -= step_size * (m / denom)

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_count,
            "exp_avg": {k: v.copy() for k, v in self.exp_avg.items()},
            "exp_avg_sq": {k: v.copy() for k, v in self.exp_avg_sq.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        buffers = _check_buffers(state, ("exp_avg", "exp_avg_sq"))
        self.step_count = int(state["step"])
        self.exp_avg, self.exp_avg_sq = buffers["exp_avg"], buffers["exp_avg_sq"]
