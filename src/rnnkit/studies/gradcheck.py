"""Finite-difference check of the NumPy engine's hand-written gradients.

For a tiny model in float64, every element of every parameter (or a random subset, on request)
is nudged by +-eps and the loss re-evaluated; the central difference is compared with the
analytic gradient from `NumpyRNNLM.loss_and_grads`. A fourth-order stencil

    dL/dp ~ (-L(p+2e) + 8 L(p+e) - 8 L(p-e) + L(p-2e)) / (12 e)

has truncation error O(e^4) instead of O(e^2), so with e = 1e-3 it is good to ~1e-13 absolute
(rounding of the loss dominates), far below the 1e-6 relative tolerance the engine is held to.

    python -m rnnkit.gradcheck            # every cell, 1 and 2 layers, uni- and bidirectional
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ..config import ModelConfig
from ..models import numpy_layers as nl
from ..models.numpy_lm import NumpyRNNLM

# Floor on |a| + |n|. The loss (~2 nats) is known to ~1e-16 relative, so the stencil's numeric
# derivative carries ~1e-13 absolute noise: below ~1e-6 a gradient cannot be resolved to 1e-6
# relative by any finite difference in float64, and exactly-zero pairs must not divide 0 by 0.
TINY = 1e-6
RELU_MARGIN = 1e-3  # closest a ReLU pre-activation may sit to its kink at the checked point


def relative_error(analytic: np.ndarray, numeric: np.ndarray, tiny: float = TINY) -> np.ndarray:
    """|a - n| / max(|a| + |n|, tiny), element-wise."""
    return np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), tiny)


def _random_state(model: NumpyRNNLM, batch: int, rng: np.random.Generator) -> Any:
    """A nonzero incoming state, so the path through h0 (and c0) is exercised."""
    shape = model.initial_state(batch)
    if isinstance(shape, tuple):
        return tuple(0.5 * rng.standard_normal(s.shape) for s in shape)
    return 0.5 * rng.standard_normal(shape.shape)


KINKED = ("rnn_relu", "mingru", "minlstm")  # ReLU; minGRU/minLSTM's g(k) changes slope at k = 0


def _kink_offsets(cache: dict) -> list[np.ndarray]:
    """Per layer, how far each unit sits from its activation's kink (signed): the ReLU
    pre-activation, or g(k) - 1/2 for the min-RNNs' g (k + 1/2 above 0, sigmoid below)."""
    return [c["pre"] if "pre" in c else c["parts"]["gk"] - 0.5 for layer in cache["layers"] for c in layer]


def _relu_margin(cache: dict) -> float:
    """Distance of the nearest unit to its kink: there the activation has no derivative, and a
    finite difference whose stencil straddles it measures a slope that does not exist."""
    return float(min(np.abs(offsets).min() for offsets in _kink_offsets(cache)))


def gradcheck(
    model: str,
    layers: int = 1,
    bidirectional: bool = False,
    *,
    embed: int = 5,
    hidden: int = 4,
    vocab: int = 7,
    batch: int = 2,
    steps: int = 4,
    tie: bool = False,
    dropout: float = 0.0,
    seed: int = 0,
    eps: float = 1e-3,
    max_elements: int | None = None,
    gru_form: str | None = None,
) -> dict[str, float]:
    """Max relative error |a - n| / max(|a| + |n|, 1e-6) between analytic and numeric gradients,
    per parameter, for a tiny float64 model. `embed=0` checks one-hot input; `tie=True` needs
    embed == hidden. With dropout > 0 the same masks are drawn for every evaluation (the rng is
    re-seeded), so the check covers the dropout backward too. `max_elements` caps the elements
    checked per parameter (a random subset); None checks every element.
    """
    config = ModelConfig(
        model=model,
        layers=layers,
        hidden=hidden,
        embed=embed,
        dropout=dropout,
        tie=tie,
        vocab_size=vocab,
        gru_form=gru_form,
    )
    net = NumpyRNNLM(config, dtype=np.float64, seed=seed, bidirectional=bidirectional)
    rng = np.random.default_rng(seed + 100)
    mask_seed = seed + 200
    for _attempt in range(100):  # for ReLU: a point where the loss is smooth (see _relu_margin)
        idx = rng.integers(0, vocab, (batch, steps))
        targets = rng.integers(0, vocab, (batch, steps))
        state = _random_state(net, batch, rng)
        _, _, cache = net.forward(idx, state, train=True, rng=np.random.default_rng(mask_seed))
        if model not in KINKED or _relu_margin(cache) > RELU_MARGIN:
            break

    def evaluate() -> tuple[float, np.ndarray | None]:
        """The loss, and which side of its kink each unit is on (None for smooth cells)."""
        _, _, cache = net.forward(idx, state, train=True, rng=np.random.default_rng(mask_seed))
        loss = nl.softmax_cross_entropy(cache["logits"], targets.T, grad=False)[0]
        if model not in KINKED:
            return loss, None
        return loss, np.concatenate([(offsets > 0).ravel() for offsets in _kink_offsets(cache)])

    _, grads, _ = net.loss_and_grads(idx, targets, state, rng=np.random.default_rng(mask_seed))
    _, pattern = evaluate()
    errors = {}
    for name, param in net.params.items():
        flat = param.reshape(-1)  # a view: writes go into the model
        chosen = np.arange(flat.size)
        if max_elements is not None and flat.size > max_elements:
            chosen = rng.choice(flat.size, max_elements, replace=False)
        numeric = np.array([_derivative(flat, int(k), eps, evaluate, pattern) for k in chosen])
        errors[name] = float(relative_error(grads[name].reshape(-1)[chosen], numeric).max())
    return errors


def _derivative(
    flat: np.ndarray, k: int, eps: float, evaluate: Callable[[], tuple[float, Any]], pattern: np.ndarray | None
) -> float:
    """Fourth-order central difference of the loss in element k of a parameter.

    A ReLU switching on or off inside the stencil puts a kink in the sampled function and the
    difference is meaningless there, so the step shrinks (x1/10, twice) until no unit switches.
    """
    original = flat[k]
    for step in (eps, eps / 10, eps / 100):
        values, smooth = [], True
        for offset in (-2, -1, 1, 2):
            flat[k] = original + offset * step
            loss, now = evaluate()
            values.append(loss)
            smooth = smooth and (pattern is None or np.array_equal(now, pattern))
        flat[k] = original
        if smooth:
            break
    # differences first: a parameter the loss ignores gives exactly 0, not rounding noise
    return (8 * (values[2] - values[1]) - (values[3] - values[0])) / (12 * step)


def suite() -> dict[str, dict[str, float]]:
    """The standard configurations: every cell x 1, 2 layers x uni/bidirectional, one-hot input,
    tied weights, the unfused embedding path (V > 3 D), and dropout."""
    results = {}
    for cell in ("rnn", "rnn_relu", "gru", "lstm", "mingru", "minlstm"):
        for num_layers in (1, 2):
            for bidir in (False, True):
                results[f"{cell} L={num_layers}{' bidir' if bidir else ''}"] = gradcheck(
                    cell, layers=num_layers, bidirectional=bidir
                )
        results[f"{cell} one-hot"] = gradcheck(cell, embed=0)
        results[f"{cell} tied"] = gradcheck(cell, embed=4, hidden=4, tie=True)
        results[f"{cell} unfused embed=2"] = gradcheck(cell, embed=2)
        results[f"{cell} L=2 dropout 0.3"] = gradcheck(cell, layers=2, dropout=0.3)
    for num_layers in (1, 2):  # the Cho et al. (2014) GRU: reset gate before the recurrent product
        results[f"gru cho L={num_layers}"] = gradcheck("gru", layers=num_layers, gru_form="cho")
    results["gru cho one-hot bidir"] = gradcheck("gru", embed=0, bidirectional=True, gru_form="cho")
    return results


def main() -> int:
    worst_overall = 0.0
    for label, errors in suite().items():
        name, worst = max(errors.items(), key=lambda item: item[1])
        worst_overall = max(worst_overall, worst)
        print(f"{label:<24} max rel error {worst:.2e}  ({name})")
    ok = worst_overall < 1e-6
    print(f"{'PASS' if ok else 'FAIL'}: worst {worst_overall:.2e} (tolerance 1e-6)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
