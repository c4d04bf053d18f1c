"""From a ModelConfig (and saved weights) to a model behind the scoring seam, for every kind.

Neural models (torch engine) are trained by the Trainer; baselines are fitted in one pass here.
Everything that loads a checkpoint (`rnnkit.load`, evaluate, generate, compare) comes through
`scorer_from_weights`, so adding a model kind means adding it here and nowhere else.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..config import SCAN_MODELS, ModelConfig
from .base import Scorer, TorchModel


def fit_baseline(config: ModelConfig, train_ids: np.ndarray, seed: int) -> Any:
    """Fit an n-gram (counting) or HMM (Baum-Welch) model on the training token ids."""
    if config.model == "ngram":
        from .ngram import KneserNeyLM
        return KneserNeyLM(config.order, config.vocab_size).fit(train_ids)
    from .hmm import HMMLM
    return HMMLM(config.states, config.vocab_size, n_iter=config.hmm_iter,
                 max_train_tokens=config.hmm_max_tokens, seed=seed).fit(train_ids)


def baseline_weights(model: Any) -> dict[str, torch.Tensor]:
    """A fitted baseline's arrays as tensors, ready for safetensors."""
    return {name: torch.from_numpy(np.ascontiguousarray(array)) for name, array in model.state_dict().items()}


def scorer_from_weights(config: ModelConfig, weights: dict[str, torch.Tensor],
                        device: torch.device | str = "cpu") -> tuple[Scorer, Any]:
    """(scorer, underlying model) for saved weights of any model kind."""
    if config.model == "ngram":
        from .ngram import KneserNeyLM
        ngram = KneserNeyLM.from_state_dict({k: v.numpy() for k, v in weights.items()})
        _check_vocab(config, ngram.vocab_size)
        return ngram, ngram
    if config.model == "hmm":
        from .hmm import HMMLM
        hmm = HMMLM.from_state_dict({k: v.numpy() for k, v in weights.items()})
        _check_vocab(config, hmm.vocab_size)
        return hmm, hmm
    if config.engine == "numpy":
        from .numpy_lm import NumpyRNNLM
        net = NumpyRNNLM(config)
        try:
            net.load_state_dict({name: t.numpy() for name, t in weights.items()})
        except ValueError as error:
            from ..errors import CheckpointError
            raise CheckpointError(f"weights do not fit this model: {error}") from None
        return net, net
    from .torch_lm import TorchScorer, import_weights
    model = build_torch_model(config)
    import_weights(model, weights)
    model = model.to(device).eval()
    return TorchScorer(model, device), model


def build_torch_model(config: ModelConfig) -> TorchModel:
    """The torch module of a neural model kind: an RNN (RNNLM, nn.RNN/GRU/LSTM or the Cho GRU),
    minGRU/minLSTM (MinRNNLM) or the feed-forward mlp (MLPLM); all keep the model contract."""
    if config.model == "mlp":
        from .mlp import MLPLM
        return MLPLM(config)
    if config.model in SCAN_MODELS:
        from .minrnn import MinRNNLM
        return MinRNNLM(config)
    from .torch_lm import RNNLM
    return RNNLM(config)


def _check_vocab(config: ModelConfig, vocab_size: int) -> None:
    from ..errors import CheckpointError
    if vocab_size != config.vocab_size:
        raise CheckpointError(f"the saved model has {vocab_size} token ids but its config says "
                              f"{config.vocab_size}")
