"""rnnkit: train, evaluate, compare, inspect and sample recurrent language models."""

__version__ = "0.1.0"

from .api import LanguageModel, evaluate, load  # noqa: E402
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from .errors import (CheckpointError, ConfigError, DataError, OutputExistsError,  # noqa: E402
                     PromptError, RnnkitError)
from .evaluate import EvalResult  # noqa: E402
from .generate import SamplingConfig  # noqa: E402
from .train import TrainResult, train  # noqa: E402

__all__ = ["__version__", "train", "load", "evaluate", "LanguageModel", "RunConfig", "ModelConfig",
           "DataConfig", "TrainConfig", "SamplingConfig", "EvalResult", "TrainResult", "RnnkitError",
           "ConfigError", "DataError", "CheckpointError", "PromptError", "OutputExistsError"]
