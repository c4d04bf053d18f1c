"""Typed, validated configuration: what the CLI builds and the API takes, saved as `config.json`.

Every dataclass checks itself in `__post_init__` and raises `ConfigError` with a message that
names the option and says what is allowed, so bad hyperparameters fail before any work starts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

MODELS = ("rnn", "rnn_relu", "gru", "lstm")
BASELINES = ("ngram", "hmm")  # fitted in one pass (counting, Baum-Welch), no training loop
ENGINES = ("torch", "numpy")
TOKENIZERS = ("char", "word", "bpe")
BATCHINGS = ("sequential", "random")
OPTIMIZERS = ("adamw", "sgd", "ntasgd")  # ntasgd: SGD, then weight averaging once validation stalls
SCHEDULES = ("constant", "cosine")
DEVICES = ("auto", "cpu", "cuda")
ON_NAN = ("stop", "skip", "rollback")


def _int(name: str, value: Any, low: int = 1, high: int | None = None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigError(f"{name} must be {bound}, got {value}")


def _float(name: str, value: Any, low: float, high: float, low_open: bool = False,
           high_open: bool = False, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        left, right = ("(" if low_open else "["), (")" if high_open else "]")
        raise ConfigError(f"{name} must be in {left}{low}, {high}{right}, got {value}")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")


LOCKED_DROPOUTS = ("dropout_input", "dropout_hidden", "dropout_output")
# The default `rnnkit train` (a 2x512 char LSTM on The Time Machine's 161,000 training characters)
# overfits without dropout; see the README's opening paragraph for what it reaches.
DEFAULT_DROPOUT = 0.25
MODEL_REGULARIZERS = LOCKED_DROPOUTS + ("embed_dropout", "weight_drop")  # torch engine, training only


@dataclass
class ModelConfig:
    """Architecture of a recurrent LM: embedding (or one-hot) -> L recurrent layers -> linear head."""

    model: str = "lstm"
    layers: int = 2
    hidden: int = 512
    embed: int = 64  # D = 0 feeds one-hot vectors of size V to the first layer
    # standard dropout (a fresh mask per time step) on embeddings, between layers, on outputs;
    # None = DEFAULT_DROPOUT, or 0 when a locked dropout is set (the two kinds exclude each other)
    dropout: float | None = None
    # AWD-LSTM regularisers (Merity et al. 2017), torch engine, training only; 0 = off
    embed_dropout: float = 0.0  # drop whole word types (embedding rows), rescaled by 1/(1-p)
    dropout_input: float = 0.0  # locked dropout (one mask per sequence) on the first layer's inputs
    dropout_hidden: float = 0.0  # locked dropout between recurrent layers
    dropout_output: float = 0.0  # locked dropout on the last layer's outputs
    weight_drop: float = 0.0  # DropConnect on the hidden-to-hidden weights, a fresh mask per forward pass
    tie: bool = False
    engine: str = "torch"
    vocab_size: int = 0  # set from the tokenizer when the model is built; 0 = not yet known
    adaptive_softmax: bool = False  # Grave et al. (2017): frequent words get a full softmax, rare ones a small one
    cutoffs: tuple[int, ...] | None = None  # adaptive softmax cluster bounds; None = V/5 and V/2
    order: int = 5  # ngram: longest n-gram (contexts of order-1 tokens)
    states: int = 32  # hmm: hidden states K
    hmm_iter: int = 20  # hmm: Baum-Welch iterations at most
    hmm_max_tokens: int = 200_000  # hmm: training tokens used at most (cost grows with K^2 T)

    @property
    def is_baseline(self) -> bool:
        return self.model in BASELINES

    @property
    def regularized(self) -> bool:
        """True when an AWD-LSTM regulariser is on (training then leaves the plain fast path)."""
        return any(getattr(self, name) > 0 for name in MODEL_REGULARIZERS)

    def __post_init__(self) -> None:
        _choice("model", self.model, MODELS + BASELINES)
        _int("order", self.order, 1, 32)
        _int("states", self.states, 1, 1 << 14)
        _int("hmm_iter", self.hmm_iter, 1, 100_000)
        _int("hmm_max_tokens", self.hmm_max_tokens, 2)
        _choice("engine", self.engine, ENGINES)
        _int("layers", self.layers, 1, 64)
        _int("hidden", self.hidden, 1, 1 << 16)
        _int("embed", self.embed, 0, 1 << 16)
        for name in MODEL_REGULARIZERS:
            _float(name, getattr(self, name), 0.0, 1.0, high_open=True)
        if self.dropout is None:
            self.dropout = 0.0 if any(getattr(self, name) > 0 for name in LOCKED_DROPOUTS) else DEFAULT_DROPOUT
        _float("dropout", self.dropout, 0.0, 1.0, high_open=True)
        if self.dropout > 0 and any(getattr(self, name) > 0 for name in LOCKED_DROPOUTS):
            raise ConfigError("dropout (a fresh mask per time step) and the locked dropouts (dropout_input, "
                              "dropout_hidden, dropout_output: one mask per sequence) act on the same "
                              "activations; set one kind, e.g. --dropout 0 with the locked ones")
        _bool("tie", self.tie)
        _bool("adaptive_softmax", self.adaptive_softmax)
        if self.cutoffs is not None:
            if not isinstance(self.cutoffs, (list, tuple)) or not self.cutoffs or any(
                    isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.cutoffs) \
                    or list(self.cutoffs) != sorted(set(self.cutoffs)):
                raise ConfigError(f"cutoffs must be increasing positive integers, got {self.cutoffs!r}")
            self.cutoffs = tuple(self.cutoffs)
        if self.adaptive_softmax and self.tie:
            raise ConfigError("adaptive_softmax and tie cannot be combined: the adaptive head has no single "
                              "output matrix to share with the embedding")
        _int("vocab_size", self.vocab_size, 0, 1 << 31)
        if self.tie and self.embed == 0:
            raise ConfigError("tie needs an embedding (embed > 0): a one-hot input has no weights to share")
        if self.tie and self.embed != self.hidden:
            raise ConfigError(
                f"tie shares the embedding with the output layer, so embed must equal hidden "
                f"(got embed={self.embed}, hidden={self.hidden})")


@dataclass
class DataConfig:
    """Where the text comes from, how it is tokenized and split, and how it is batched."""

    data: str = "timemachine"
    tokenizer: str = "char"
    lowercase: bool = False
    min_freq: int = 1
    max_size: int | None = None
    bpe_vocab: int = 1000  # bpe: subword vocabulary size (256 byte tokens + merges)
    split: tuple[float, float, float] = (0.9, 0.05, 0.05)
    batch_size: int = 32
    seq_len: int = 128
    batching: str = "sequential"

    def __post_init__(self) -> None:
        if not isinstance(self.data, str) or not self.data:
            raise ConfigError(f"data must be a corpus name or a path, got {self.data!r}")
        _choice("tokenizer", self.tokenizer, TOKENIZERS)
        _bool("lowercase", self.lowercase)
        _int("min_freq", self.min_freq, 1)
        _int("max_size", self.max_size, 2, allow_none=True)
        _int("bpe_vocab", self.bpe_vocab, 257, 1 << 20)
        self.split = _check_split(self.split)
        _int("batch_size", self.batch_size, 1, 1 << 20)
        _int("seq_len", self.seq_len, 1, 1 << 20)
        _choice("batching", self.batching, BATCHINGS)


def _check_split(split: Any) -> tuple[float, float, float]:
    if not isinstance(split, (list, tuple)) or len(split) != 3:
        raise ConfigError(f"split must be three fractions train,val,test, got {split!r}")
    for name, part in zip(("train", "val", "test"), split):
        _float(f"split ({name} fraction)", part, 0.0, 1.0)
    if split[0] <= 0:
        raise ConfigError("split: the train fraction must be positive")
    if abs(sum(split) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must add up to 1, got {','.join(map(str, split))}")
    return tuple(float(part) for part in split)  # type: ignore[return-value]


@dataclass
class TrainConfig:
    """The optimisation loop: optimizer, schedule, clipping, length, evaluation and output."""

    optimizer: str = "adamw"
    lr: float = 5e-3
    weight_decay: float = 0.01
    momentum: float = 0.9  # SGD only
    schedule: str = "cosine"
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    decay_steps: int | None = None  # cosine horizon; None = the run's total steps
    clip: float | None = 1.0  # max global gradient norm; None = no clipping
    steps: int | None = None
    epochs: int | None = None
    max_seconds: float | None = None  # stop (evaluate, save) once training has run this long
    eval_interval: int = 200
    log_interval: int = 50
    save_interval: int | None = None  # None = save at each evaluation
    eval_max_tokens: int | None = None  # cap on validation tokens per evaluation
    on_nan: str = "stop"  # a non-finite loss/gradient: stop, skip the update, or roll back and halve the LR
    device: str = "auto"
    amp: bool = False
    seed: int = 1337
    out: str | None = None
    overwrite: bool = False
    quiet: bool = False
    sample_tokens: int = 200  # tokens sampled at the end of a run; 0 = none
    # activation regularisation (Merity et al. 2017, sec. 4.6), torch engine, training loss only; 0 = off
    ar_alpha: float = 0.0  # AR: alpha * mean(dropped last-layer output ^ 2)
    tar_beta: float = 0.0  # TAR: beta * mean((h_t - h_{t-1}) ^ 2) of the raw last-layer output
    nonmono: int = 5  # ntasgd: average once validation is worse than the best before the last `nonmono` evaluations
    preset: str | None = None  # the preset this run started from (a record; see presets.py)
    preset_version: int | None = None

    def __post_init__(self) -> None:
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _float("lr", self.lr, 0.0, 1e3, low_open=True)
        _float("weight_decay", self.weight_decay, 0.0, 1e3)
        _float("momentum", self.momentum, 0.0, 1.0, high_open=True)
        _choice("schedule", self.schedule, SCHEDULES)
        _int("warmup_steps", self.warmup_steps, 0)
        _float("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        _int("decay_steps", self.decay_steps, 1, allow_none=True)
        _float("clip", self.clip, 0.0, 1e12, low_open=True, allow_none=True)
        _int("steps", self.steps, 1, 1 << 62, allow_none=True)
        _int("epochs", self.epochs, 1, 10**9, allow_none=True)
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("give steps or epochs, not both")
        _float("max_seconds", self.max_seconds, 0.0, 1e9, low_open=True, allow_none=True)
        _int("eval_interval", self.eval_interval, 1)
        _int("log_interval", self.log_interval, 1)
        _int("save_interval", self.save_interval, 1, allow_none=True)
        _int("eval_max_tokens", self.eval_max_tokens, 1, allow_none=True)
        _choice("on_nan", self.on_nan, ON_NAN)
        _choice("device", self.device, DEVICES)
        _bool("amp", self.amp)
        _int("seed", self.seed, 0, (1 << 63) - 1)
        if self.out is not None and (not isinstance(self.out, str) or not self.out):
            raise ConfigError(f"out must be a directory path, got {self.out!r}")
        _bool("overwrite", self.overwrite)
        _bool("quiet", self.quiet)
        _int("sample_tokens", self.sample_tokens, 0, 10_000_000)  # checked now, not after training
        _float("ar_alpha", self.ar_alpha, 0.0, 1e6)
        _float("tar_beta", self.tar_beta, 0.0, 1e6)
        _int("nonmono", self.nonmono, 1, 1_000_000)
        if self.preset is not None and (not isinstance(self.preset, str) or not self.preset):
            raise ConfigError(f"preset must be a preset name, got {self.preset!r}")
        _int("preset_version", self.preset_version, 1, allow_none=True)


@dataclass
class RunConfig:
    """Everything a run needs; this is what `config.json` holds beside the weights."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        for name, kind in (("model", ModelConfig), ("data", DataConfig), ("train", TrainConfig)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f"{name} must be a {kind.__name__}")
        if self.model.engine == "numpy" and not self.model.is_baseline:
            # say so rather than silently ignoring an option the NumPy engine does not have
            if self.train.amp:
                raise ConfigError("--amp (bf16 autocast) is a torch-engine option; the NumPy engine runs in float32")
            if self.train.device == "cuda":
                raise ConfigError("the NumPy engine runs on the CPU; use --engine torch for --device cuda")
            if self.model.adaptive_softmax:
                raise ConfigError("--adaptive-softmax is a torch-engine option; the NumPy engine has a full softmax")
            _refuse_awd_options_for_numpy(self.model, self.train)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> RunConfig:
        if not isinstance(raw, dict):
            raise ConfigError("a run configuration must be a JSON object")
        unknown = set(raw) - {"model", "data", "train"}
        if unknown:
            raise ConfigError(f"unknown configuration section(s): {', '.join(sorted(unknown))}")
        return cls(model=section_from_dict(ModelConfig, raw.get("model", {})),
                   data=section_from_dict(DataConfig, raw.get("data", {})),
                   train=section_from_dict(TrainConfig, raw.get("train", {})))


def _refuse_awd_options_for_numpy(model: ModelConfig, train: TrainConfig) -> None:
    """The NumPy engine has standard dropout only; name every AWD-LSTM option that is on."""
    names = [name for name in MODEL_REGULARIZERS if getattr(model, name) > 0]
    names += [name for name in ("ar_alpha", "tar_beta") if getattr(train, name) > 0]
    if train.optimizer == "ntasgd":
        names.append("optimizer ntasgd")
    if names:
        flags = ", ".join("--" + name.replace("_", "-") for name in names)
        raise ConfigError(f"{flags}: torch-engine option(s); the NumPy engine has standard --dropout only "
                          "(use --engine torch, or leave them at 0)")


def section_from_dict(kind: type, raw: Any) -> Any:
    """Build one config dataclass from a dict, refusing unknown keys (typos must not pass silently)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"the {kind.__name__} section must be a JSON object")
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = set(raw) - names
    if unknown:
        raise ConfigError(f"unknown {kind.__name__} option(s): {', '.join(sorted(unknown))}")
    values = dict(raw)
    if kind is DataConfig and isinstance(values.get("split"), list):
        values["split"] = tuple(values["split"])
    try:
        return kind(**values)
    except TypeError as error:  # defensive: a field dataclasses could not accept
        raise ConfigError(str(error)) from None
