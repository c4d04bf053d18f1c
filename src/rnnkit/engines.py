"""The training-step seam: what the Trainer needs from an engine, for PyTorch and for NumPy.

An engine owns a model and its optimizer and does one update on a batch:

    loss, grad_norm, new_state = engine.step(x, y, state, lr)

(forward over the window, backward through time, clip the global gradient norm, update), plus
what a checkpoint needs: named weights, optimizer and RNG state, and the carried hidden state as
plain tensors. The Trainer (train.py) owns everything else: batches, schedule, evaluation,
logging, checkpoints. Both engines use PyTorch's parameter names, so their weights interchange.

`Engine` declares that interface; the Trainer calls nothing else. NT-ASGD's weight averaging is
a capability only the torch engine has (`supports_averaging`): the config refuses ntasgd for the
NumPy engine, and the Trainer checks the capability before it relies on it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch

from .config import ModelConfig, TrainConfig
from .errors import CheckpointError, ConfigError
from .models.base import Scorer, TorchModel
from .models.registry import build_torch_model
from .models.torch_lm import (
    TorchScorer,
    activation_penalty,
    detach_state,
    export_weights,
    import_weights,
)

StepResult = tuple[Any, Any, Any]  # (loss, grad_norm, new state); loss and norm may stay on the device


class Engine(Protocol):
    """What the Trainer may call on any engine (a model and its optimizer)."""

    supports_averaging: bool  # NT-ASGD's weight average: torch only

    def step(
        self, x: torch.Tensor, y: torch.Tensor, state: Any, lr: float, skip_nonfinite: bool = False
    ) -> StepResult | None:
        """One update on inputs x and targets y (N, T) from `state` at rate `lr`: (mean
        cross-entropy, global gradient norm before clipping, new state, detached); None when
        `skip_nonfinite` and the loss or gradient is NaN/inf (then no update was made)."""

    def scorer(self) -> Scorer:
        """The model as it is evaluated and saved, behind the scoring seam."""

    def weights(self) -> dict[str, torch.Tensor]:
        """Named weights (PyTorch's names and layouts), for model.safetensors."""

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None: ...

    def state(self) -> dict[str, Any]:
        """Optimizer and RNG state, plain tensors and strings (read back with weights_only=True)."""

    def load_state(self, state: dict[str, Any]) -> None: ...

    def state_to_tensors(self, state: Any) -> list[torch.Tensor] | None:
        """A carried recurrent state as CPU tensors (None stays None), for trainer_state.pt."""

    def state_from_tensors(self, saved: list[torch.Tensor] | None) -> Any: ...

    def num_parameters(self) -> int: ...

    @property
    def averaging(self) -> bool:
        """Whether the weight average has started (always False without supports_averaging)."""

    def start_averaging(self) -> None:
        """Switch to NT-ASGD's weight average; only where supports_averaging."""


class TorchEngine:
    """Autograd, cuDNN on GPU, fused AdamW on CUDA, bf16 autocast with `amp`; AR/TAR added to the
    loss it minimises, and NT-ASGD's weight average (WeightAverage) once the trainer switches it on."""

    supports_averaging = True

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        device: torch.device,
        amp: bool,
        data_parallel: bool = False,
    ):
        self.device, self.amp, self.clip = device, amp, train_config.clip
        self.ar_alpha, self.tar_beta = train_config.ar_alpha, train_config.tar_beta
        self.model = build_torch_model(model_config).to(device)
        if model_config.freeze_embed:  # --freeze-embed: no gradient, so no update, no decay, no clip share
            self.model.get_parameter("embed.weight").requires_grad_(False)
        self.optimizer = make_torch_optimizer(self.model, train_config, device)
        self.average: WeightAverage | None = None  # NT-ASGD, once triggered (see start_averaging)
        # under torchrun, DDP averages gradients across processes during backward
        self.forward_model: Callable[..., Any] = self.model
        if data_parallel:
            from torch.nn.parallel import DistributedDataParallel

            self.forward_model = DistributedDataParallel(
                self.model, device_ids=[device] if device.type == "cuda" else None
            )

    def step(
        self, x: torch.Tensor, y: torch.Tensor, state: Any, lr: float, skip_nonfinite: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, Any] | None:
        """One update; None when `skip_nonfinite` and the loss or gradient is NaN/inf (no update).

        Loss and grad norm stay on the device: reading them would make the CPU wait for the GPU,
        so only `skip_nonfinite` (which must decide before the update) reads them every step.
        """
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast("cuda", torch.bfloat16, enabled=self.amp):
            loss, objective, state = self._losses(x, y, state)
        self.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        max_norm = self.clip if self.clip is not None else math.inf  # inf: measure, do not clip
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        if skip_nonfinite and not bool(torch.isfinite(objective) & torch.isfinite(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        if self.average is not None:
            self.average.update(self.model)
        # the cross-entropy alone is returned and logged as train_loss (AR/TAR left out), so that
        # it compares with val_loss and with runs without them
        return loss.detach(), grad_norm, detach_state(state)

    def _losses(self, x: torch.Tensor, y: torch.Tensor, state: Any) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """(cross-entropy, what to minimise: cross-entropy + AR/TAR, new state)."""
        if not (self.ar_alpha > 0 or self.tar_beta > 0):
            _, loss, state = self.forward_model(x, y, state)
            return loss, loss, state
        _, loss, state, (raw, dropped) = self.forward_model(x, y, state, return_activations=True)
        return loss, loss + activation_penalty(raw, dropped, self.ar_alpha, self.tar_beta), state

    @property
    def averaging(self) -> bool:
        return self.average is not None

    def start_averaging(self) -> None:
        """NT-ASGD's switch: from now on evaluation and checkpoints use the running mean of the weights."""
        self.average = WeightAverage(self.model)

    def _served(self) -> TorchModel:
        """The model that is evaluated and saved: the weight average once NT-ASGD has switched."""
        return self.average.model if self.average is not None else self.model

    def scorer(self) -> Scorer:
        return TorchScorer(self._served(), self.device, self.amp)

    def weights(self) -> dict[str, torch.Tensor]:
        """What model.safetensors holds: the averaged weights once NT-ASGD has switched (the
        weights being trained then travel in the trainer state, see `state`)."""
        return export_weights(self._served())

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Load a checkpoint's weights; call `load_state` next, which sorts out an average."""
        import_weights(self.model, weights)

    def state(self) -> dict[str, Any]:
        cuda_rng = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []
        average = None
        if self.average is not None:
            average = {"count": self.average.count, "trained_weights": export_weights(self.model)}
        return {
            "optimizer": self.optimizer.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": cuda_rng,
            "average": average,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_cpu"])
        if self.device.type == "cuda" and state["rng_cuda"]:
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        average = state.get("average")  # absent in checkpoints from before NT-ASGD
        if average is None:
            self.average = None
        else:
            # load_weights put the saved (averaged) weights into the model: they become the
            # average, and the weights being trained come back from the trainer state
            self.start_averaging()
            assert self.average is not None
            self.average.count = int(average["count"])
            import_weights(self.model, average["trained_weights"])

    def state_to_tensors(self, state: Any) -> list[torch.Tensor] | None:
        if state is None:
            return None
        return [s.detach().cpu() for s in (state if isinstance(state, tuple) else (state,))]

    def state_from_tensors(self, saved: list[torch.Tensor] | None) -> Any:
        if saved is None:
            return None
        tensors = [s.to(self.device) for s in saved]
        return tuple(tensors) if len(tensors) == 2 else tensors[0]

    def num_parameters(self) -> int:
        return self.model.num_parameters()


class WeightAverage:
    """The averaging half of NT-ASGD (Merity et al. 2017, sec. 3; Polyak & Juditsky 1992): a copy of
    the model whose weights are the mean of the trained weights over the updates since the switch,

        w_avg = (1/count) * sum_{i=T}^{k} w_i,   kept as   w_avg += (w_k - w_avg) / count

    A Python counter, not a device tensor, so an update never waits for the GPU."""

    def __init__(self, model: TorchModel):
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.count = 1  # the weights at the switch are the first term of the mean

    @torch.no_grad()
    def update(self, model: TorchModel) -> None:
        self.count += 1
        for mine, theirs in zip(self.model.parameters(), model.parameters(), strict=True):
            mine.lerp_(theirs, 1.0 / self.count)


def make_torch_optimizer(model: TorchModel, train: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    params = list(model.parameters())
    if train.optimizer in ("sgd", "ntasgd"):  # ntasgd: plain SGD updates; the averaging is WeightAverage
        return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)
    # fused AdamW on CUDA: one kernel for all parameters instead of a loop of small ones
    fused: dict[str, Any] = {"fused": True} if device.type == "cuda" else {}  # else torch's own default
    return torch.optim.AdamW(params, lr=train.lr, weight_decay=train.weight_decay, **fused)


class NumpyEngine:
    """Hand-written forward and backward (models/numpy_lm.py) and NumPy optimizers; CPU only.
    No weight averaging: NT-ASGD is a torch-engine option (the config refuses it here)."""

    supports_averaging = False
    averaging = False

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig, seed: int):
        from .models.numpy_lm import NumpyRNNLM
        from .models.numpy_optim import SGD, AdamW

        self.device, self.clip = torch.device("cpu"), train_config.clip
        self.model = NumpyRNNLM(model_config, seed=seed)
        self.frozen = ("embed.weight",) if model_config.freeze_embed else ()  # as requires_grad=False in torch
        self.rng = np.random.default_rng(seed + 2)  # dropout masks
        self.optimizer: SGD | AdamW
        if train_config.optimizer == "sgd":
            self.optimizer = SGD(momentum=train_config.momentum, weight_decay=train_config.weight_decay)
        else:
            self.optimizer = AdamW(weight_decay=train_config.weight_decay)

    def step(
        self, x: torch.Tensor, y: torch.Tensor, state: Any, lr: float, skip_nonfinite: bool = False
    ) -> tuple[float, float, Any] | None:
        from .models.numpy_optim import clip_grad_norm

        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported by the trainer
            loss, grads, state = self.model.loss_and_grads(x.numpy(), y.numpy(), state, rng=self.rng)
            for name in self.frozen:
                del grads[name]
            grad_norm = clip_grad_norm(grads, self.clip if self.clip is not None else math.inf)
            if skip_nonfinite and not (math.isfinite(loss) and math.isfinite(grad_norm)):
                return None
            self.optimizer.step(self.model.params, grads, lr)
        return loss, grad_norm, state

    def scorer(self) -> Scorer:
        return self.model

    def start_averaging(self) -> None:
        raise ConfigError("NT-ASGD weight averaging is a torch-engine feature; use --engine torch")

    def weights(self) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(np.ascontiguousarray(p)) for name, p in self.model.params.items()}

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        try:
            self.model.load_state_dict({name: t.numpy() for name, t in weights.items()})
        except ValueError as error:
            raise CheckpointError(f"weights do not fit this model: {error}") from None

    def state(self) -> dict[str, Any]:
        # plain tensors and strings only: trainer_state.pt is read back with weights_only=True
        return {
            "optimizer": _arrays_to_tensors(self.optimizer.state_dict()),
            "rng_numpy": json.dumps(self.rng.bit_generator.state),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(_tensors_to_arrays(state["optimizer"]))
        self.rng.bit_generator.state = json.loads(state["rng_numpy"])

    def state_to_tensors(self, state: Any) -> list[torch.Tensor] | None:
        if state is None:
            return None
        return [torch.from_numpy(np.array(s)) for s in (state if isinstance(state, tuple) else (state,))]

    def state_from_tensors(self, saved: list[torch.Tensor] | None) -> Any:
        if saved is None:
            return None
        arrays = [s.numpy().copy() for s in saved]
        return tuple(arrays) if len(arrays) == 2 else arrays[0]

    def num_parameters(self) -> int:
        return self.model.num_parameters()


def _arrays_to_tensors(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))
    if isinstance(value, dict):
        return {k: _arrays_to_tensors(v) for k, v in value.items()}
    return value


def _tensors_to_arrays(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.numpy().copy()
    if isinstance(value, dict):
        return {k: _tensors_to_arrays(v) for k, v in value.items()}
    return value


def read_pretrained(
    model_config: ModelConfig, tokenizer: Any, train_ids: np.ndarray, log: Any
) -> tuple[ModelConfig, Any]:
    """`--embed-from`: the vectors matched to the vocabulary (text/vectors.py), and the model
    config with the embedding size the vectors have; the coverage goes to `log`."""
    from .text.vectors import match_vocabulary, read_vectors

    path = model_config.embed_from
    assert path is not None, "read_pretrained is for a config with embed_from set"
    if not hasattr(tokenizer, "vocab"):
        raise ConfigError(
            "--embed-from matches whole tokens to words; a bpe vocabulary holds word pieces "
            "(use --tokenizer word, or char with character vectors)"
        )
    vectors = read_vectors(path)
    match = match_vocabulary(vectors, tokenizer.vocab.itos, train_ids)
    if len(match.ids) == 0:
        from .errors import DataError

        raise DataError(
            f"--embed-from: none of the {len(tokenizer):,} vocabulary tokens has a vector in {path} "
            "(is it the right file for this tokenizer?)"
        )
    log(match.summary(path))
    if vectors.dim != model_config.embed:
        log(f"embed-from: the embedding size follows the vectors: {vectors.dim} (not {model_config.embed})")
    return dataclasses.replace(model_config, embed=vectors.dim), match


def load_pretrained(engine: Engine, match: Any) -> None:
    """Copy the matched vectors into the embedding rows of their tokens; other rows keep their init."""
    weights = engine.weights()
    weights["embed.weight"][torch.from_numpy(match.ids)] = torch.from_numpy(match.matrix).to(
        weights["embed.weight"].dtype
    )
    engine.load_weights(weights)


def make_engine(
    model_config: ModelConfig, train_config: TrainConfig, device: torch.device, amp: bool, data_parallel: bool = False
) -> Engine:
    """The engine `model_config.engine` names, with its model and optimizer built."""
    if model_config.engine == "numpy":
        if data_parallel:
            raise ConfigError("the NumPy engine trains in one process; use --engine torch under torchrun")
        return NumpyEngine(model_config, train_config, train_config.seed)
    return TorchEngine(model_config, train_config, device, amp, data_parallel)
