"""The training-step seam: what the Trainer needs from an engine, for PyTorch and for NumPy.

An engine owns a model and its optimizer and does one update on a batch:

    loss, grad_norm, new_state = engine.step(x, y, state, lr)

(forward over the window, backward through time, clip the global gradient norm, update), plus
what a checkpoint needs: named weights, optimizer and RNG state, and the carried hidden state as
plain tensors. The Trainer (train.py) owns everything else: batches, schedule, evaluation,
logging, checkpoints. Both engines use PyTorch's parameter names, so their weights interchange.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import torch

from .config import ModelConfig, TrainConfig
from .models.base import Scorer
from .models.torch_lm import RNNLM, TorchScorer, detach_state, export_weights, import_weights


class TorchEngine:
    """Autograd, cuDNN on GPU, fused AdamW on CUDA, bf16 autocast with `amp`."""

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig, device: torch.device, amp: bool,
                 data_parallel: bool = False):
        self.device, self.amp, self.clip = device, amp, train_config.clip
        self.model = RNNLM(model_config).to(device)
        self.optimizer = make_torch_optimizer(self.model, train_config, device)
        # under torchrun, DDP averages gradients across processes during backward
        self.forward_model = self.model
        if data_parallel:
            from torch.nn.parallel import DistributedDataParallel
            self.forward_model = DistributedDataParallel(
                self.model, device_ids=[device] if device.type == "cuda" else None)

    def step(self, x: torch.Tensor, y: torch.Tensor, state: Any, lr: float,
             skip_nonfinite: bool = False) -> tuple[torch.Tensor, torch.Tensor, Any] | None:
        """One update; None when `skip_nonfinite` and the loss or gradient is NaN/inf (no update).

        Loss and grad norm stay on the device: reading them would make the CPU wait for the GPU,
        so only `skip_nonfinite` (which must decide before the update) reads them every step.
        """
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast("cuda", torch.bfloat16, enabled=self.amp):
            _, loss, state = self.forward_model(x, y, state)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = self.clip if self.clip is not None else math.inf  # inf: measure, do not clip
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        if skip_nonfinite and not bool(torch.isfinite(loss) & torch.isfinite(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        return loss.detach(), grad_norm, detach_state(state)

    def scorer(self) -> Scorer:
        return TorchScorer(self.model, self.device, self.amp)

    def weights(self) -> dict[str, torch.Tensor]:
        return export_weights(self.model)

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        import_weights(self.model, weights)

    def state(self) -> dict[str, Any]:
        cuda_rng = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []
        return {"optimizer": self.optimizer.state_dict(), "rng_cpu": torch.get_rng_state(), "rng_cuda": cuda_rng}

    def load_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_cpu"])
        if self.device.type == "cuda" and state["rng_cuda"]:
            torch.cuda.set_rng_state_all(state["rng_cuda"])

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


def make_torch_optimizer(model: torch.nn.Module, train: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    params = list(model.parameters())
    if train.optimizer == "sgd":
        return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)
    # fused AdamW on CUDA: one kernel for all parameters instead of a loop of small ones
    fused = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(params, lr=train.lr, weight_decay=train.weight_decay, **fused)


class NumpyEngine:
    """Hand-written forward and backward (models/numpy_lm.py) and NumPy optimizers; CPU only."""

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig, seed: int):
        from .models.numpy_lm import NumpyRNNLM
        from .models.numpy_optim import SGD, AdamW

        self.device, self.clip = torch.device("cpu"), train_config.clip
        self.model = NumpyRNNLM(model_config, seed=seed)
        self.rng = np.random.default_rng(seed + 2)  # dropout masks
        if train_config.optimizer == "sgd":
            self.optimizer = SGD(momentum=train_config.momentum, weight_decay=train_config.weight_decay)
        else:
            self.optimizer = AdamW(weight_decay=train_config.weight_decay)

    def step(self, x: torch.Tensor, y: torch.Tensor, state: Any, lr: float,
             skip_nonfinite: bool = False) -> tuple[float, float, Any] | None:
        from .models.numpy_optim import clip_grad_norm

        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported by the trainer
            loss, grads, state = self.model.loss_and_grads(x.numpy(), y.numpy(), state, rng=self.rng)
            grad_norm = clip_grad_norm(grads, self.clip if self.clip is not None else math.inf)
            if skip_nonfinite and not (math.isfinite(loss) and math.isfinite(grad_norm)):
                return None
            self.optimizer.step(self.model.params, grads, lr)
        return loss, grad_norm, state

    def scorer(self) -> Scorer:
        return self.model

    def weights(self) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(np.ascontiguousarray(p)) for name, p in self.model.params.items()}

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        from .errors import CheckpointError
        try:
            self.model.load_state_dict({name: t.numpy() for name, t in weights.items()})
        except ValueError as error:
            raise CheckpointError(f"weights do not fit this model: {error}") from None

    def state(self) -> dict[str, Any]:
        # plain tensors and strings only: trainer_state.pt is read back with weights_only=True
        return {"optimizer": _arrays_to_tensors(self.optimizer.state_dict()),
                "rng_numpy": json.dumps(self.rng.bit_generator.state)}

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


def make_engine(model_config: ModelConfig, train_config: TrainConfig, device: torch.device, amp: bool,
                data_parallel: bool = False):
    if model_config.engine == "numpy":
        if data_parallel:
            from .errors import ConfigError
            raise ConfigError("the NumPy engine trains in one process; use --engine torch under torchrun")
        return NumpyEngine(model_config, train_config, train_config.seed)
    return TorchEngine(model_config, train_config, device, amp, data_parallel)
