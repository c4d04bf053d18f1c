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
SCAN_MODELS = ("mingru", "minlstm")  # Feng et al. 2024: gates from the input only, trained by a parallel scan
FEEDFORWARD_MODELS = ("mlp",)  # Bengio et al. 2003: no hidden state, the previous K tokens (--context)
NEURAL_MODELS = MODELS + SCAN_MODELS + FEEDFORWARD_MODELS  # trained by the Trainer
GRU_FORMS = ("cudnn", "cho")  # reset gate after the recurrent product (PyTorch, cuDNN) or before it (Cho 2014)
BASELINES = ("ngram", "hmm")  # fitted in one pass (counting, Baum-Welch), no training loop
ENGINES = ("torch", "numpy")
TOKENIZERS = ("char", "word", "bpe")
BATCHINGS = ("sequential", "random")
OPTIMIZERS = ("adamw", "sgd", "ntasgd")  # ntasgd: SGD, then weight averaging once validation stalls
SCHEDULES = ("constant", "cosine", "plateau")  # plateau: constant, divided when validation stalls
DEVICES = ("auto", "cpu", "cuda", "mps")
REPORT_TO = ("jsonl", "tensorboard")  # metrics.jsonl is always written; tensorboard adds RUN/tensorboard/
ON_NAN = ("stop", "skip", "rollback")


# The validators every options dataclass uses (the three config sections here, and the options
# of the studies): each raises ConfigError naming the option, what is allowed and what it got.


def check_int(name: str, value: Any, low: int = 1, high: int | None = None, allow_none: bool = False) -> None:
    """An integer (not a bool) in [low, high] (high None: no upper bound); None if `allow_none`."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigError(f"{name} must be {bound}, got {value}")


def check_float(
    name: str,
    value: Any,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
) -> None:
    """A finite number (int or float, not a bool) in the interval from low to high, each end open
    or closed; high inf: no upper bound. None if `allow_none`."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if not (too_low or too_high):
        return
    if math.isinf(high):
        bound = "a positive number" if low == 0 and low_open else f"{'>' if low_open else '>='} {low}"
        raise ConfigError(f"{name} must be {bound}, got {value}")
    left, right = ("(" if low_open else "["), (")" if high_open else "]")
    raise ConfigError(f"{name} must be in {left}{low}, {high}{right}, got {value}")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def check_bool(name: str, value: Any) -> None:
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
    layers: int = 1
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
    context: int | None = None  # mlp: the previous K tokens it reads (required for mlp, refused otherwise)
    gru_form: str | None = None  # gru: cudnn or cho (None on a GRU becomes cudnn, so checkpoints say which)
    embed_from: str | None = None  # word vectors (GloVe/word2vec) the embedding starts from; its size follows them
    freeze_embed: bool = False  # keep the embedding fixed during training (with embed_from)

    @property
    def is_baseline(self) -> bool:
        return self.model in BASELINES

    @property
    def regularized(self) -> bool:
        """True when an AWD-LSTM regulariser is on (training then leaves the plain fast path)."""
        return any(getattr(self, name) > 0 for name in MODEL_REGULARIZERS)

    def __post_init__(self) -> None:
        check_choice("model", self.model, NEURAL_MODELS + BASELINES)
        self._check_model_kind()
        check_int("order", self.order, 1, 32)
        check_int("states", self.states, 1, 1 << 14)
        check_int("hmm_iter", self.hmm_iter, 1, 100_000)
        check_int("hmm_max_tokens", self.hmm_max_tokens, 2)
        check_choice("engine", self.engine, ENGINES)
        check_int("layers", self.layers, 1, 64)
        check_int("hidden", self.hidden, 1, 1 << 16)
        check_int("embed", self.embed, 0, 1 << 16)
        for name in MODEL_REGULARIZERS:
            check_float(name, getattr(self, name), 0.0, 1.0, high_open=True)
        if self.dropout is None:
            self.dropout = 0.0 if any(getattr(self, name) > 0 for name in LOCKED_DROPOUTS) else DEFAULT_DROPOUT
        check_float("dropout", self.dropout, 0.0, 1.0, high_open=True)
        if self.dropout > 0 and any(getattr(self, name) > 0 for name in LOCKED_DROPOUTS):
            raise ConfigError(
                "dropout (a fresh mask per time step) and the locked dropouts (dropout_input, "
                "dropout_hidden, dropout_output: one mask per sequence) act on the same "
                "activations; set one kind, e.g. --dropout 0 with the locked ones"
            )
        check_bool("tie", self.tie)
        check_bool("adaptive_softmax", self.adaptive_softmax)
        if self.cutoffs is not None:
            if (
                not isinstance(self.cutoffs, (list, tuple))
                or not self.cutoffs
                or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.cutoffs)
                or list(self.cutoffs) != sorted(set(self.cutoffs))
            ):
                raise ConfigError(f"cutoffs must be increasing positive integers, got {self.cutoffs!r}")
            self.cutoffs = tuple(self.cutoffs)
        if self.adaptive_softmax and self.tie:
            raise ConfigError(
                "adaptive_softmax and tie cannot be combined: the adaptive head has no single "
                "output matrix to share with the embedding"
            )
        check_int("vocab_size", self.vocab_size, 0, 1 << 31)
        if self.tie and self.embed == 0:
            raise ConfigError("tie needs an embedding (embed > 0): a one-hot input has no weights to share")
        if self.tie and self.embed != self.hidden:
            raise ConfigError(
                f"tie shares the embedding with the output layer, so embed must equal hidden "
                f"(got embed={self.embed}, hidden={self.hidden})"
            )

    def _check_model_kind(self) -> None:
        """The options that belong to one kind of model (mlp, GRU form, scan models)."""
        check_int("context", self.context, 1, 1 << 12, allow_none=True)
        if self.model == "mlp" and self.context is None:
            raise ConfigError("the mlp model needs --context K, the number of previous tokens it reads (K >= 1)")
        if self.model != "mlp" and self.context is not None:
            raise ConfigError(f"--context is the mlp model's window; a {self.model} model has no fixed context")
        if self.gru_form is not None:
            check_choice("gru_form", self.gru_form, GRU_FORMS)
            if self.model != "gru":
                raise ConfigError(f"--gru-form chooses between the two GRU forms; a {self.model} model is not a GRU")
        elif self.model == "gru":
            self.gru_form = "cudnn"  # recorded, so a checkpoint says which form it was trained in
        if self.embed_from is not None and (not isinstance(self.embed_from, str) or not self.embed_from):
            raise ConfigError(f"embed_from must be a path to a vectors file, got {self.embed_from!r}")
        check_bool("freeze_embed", self.freeze_embed)
        if self.freeze_embed and self.embed_from is None:
            raise ConfigError("--freeze-embed keeps pretrained vectors fixed: give --embed-from PATH too")
        if self.freeze_embed and self.tie:
            raise ConfigError("--freeze-embed with --tie would freeze the output layer too; use one of them")
        if self.model in SCAN_MODELS + FEEDFORWARD_MODELS:
            self._refuse_rnn_only_options()

    def _refuse_rnn_only_options(self) -> None:
        names = [name for name in MODEL_REGULARIZERS if getattr(self, name) > 0]
        names += ["adaptive_softmax"] if self.adaptive_softmax else []
        if names:
            flags = ", ".join("--" + name.replace("_", "-") for name in names)
            raise ConfigError(
                f"{flags}: option(s) of the rnn, gru and lstm models; a {self.model} model takes "
                "the standard --dropout and a full softmax"
            )
        if self.model == "mlp":
            if self.embed == 0:
                raise ConfigError("the mlp model learns an embedding of its context tokens: give --embed > 0")
            if self.tie:
                raise ConfigError(
                    "the mlp model's embedding has one row more than its output (the 'before the "
                    "text' token), so --tie cannot share them"
                )
            if self.engine == "numpy":
                raise ConfigError("the mlp model runs in the torch engine only; use --engine torch")


@dataclass
class DataConfig:
    """Where the text comes from, how it is tokenized and split, and how it is batched."""

    data: str = "timemachine"
    tokenizer: str = "char"
    lowercase: bool = False
    min_freq: int = 1
    max_size: int | None = None
    bpe_vocab: int = 1000  # bpe: subword vocabulary size (256 byte tokens + merges)
    fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)  # train, val, test shares of the text
    batch_size: int = 32
    seq_len: int = 64
    batching: str = "sequential"
    normalize: str | None = None  # letters: ASCII letters only, lowercased, other runs -> one space (d2l)

    def __post_init__(self) -> None:
        if self.normalize is not None:
            check_choice("normalize", self.normalize, ("letters",))
        if not isinstance(self.data, str) or not self.data:
            raise ConfigError(f"data must be a corpus name or a path, got {self.data!r}")
        check_choice("tokenizer", self.tokenizer, TOKENIZERS)
        check_bool("lowercase", self.lowercase)
        check_int("min_freq", self.min_freq, 1)
        check_int("max_size", self.max_size, 2, allow_none=True)
        check_int("bpe_vocab", self.bpe_vocab, 257, 1 << 20)
        self.fractions = _check_split(self.fractions)
        check_int("batch_size", self.batch_size, 1, 1 << 20)
        check_int("seq_len", self.seq_len, 1, 1 << 20)
        check_choice("batching", self.batching, BATCHINGS)


def _check_split(split: Any) -> tuple[float, float, float]:
    if not isinstance(split, (list, tuple)) or len(split) != 3:
        raise ConfigError(f"fractions must be three shares train,val,test, got {split!r}")
    for name, part in zip(("train", "val", "test"), split, strict=True):
        check_float(f"fractions ({name} share)", part, 0.0, 1.0)
    if split[0] <= 0:
        raise ConfigError("fractions: the train share must be positive")
    if abs(sum(split) - 1.0) > 1e-6:
        raise ConfigError(f"fractions must add up to 1, got {','.join(map(str, split))}")
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
    report_to: str = "jsonl"  # comma-separated REPORT_TO: where metrics go besides metrics.jsonl
    # activation regularisation (Merity et al. 2017, sec. 4.6), torch engine, training loss only; 0 = off
    ar_alpha: float = 0.0  # AR: alpha * mean(dropped last-layer output ^ 2)
    tar_beta: float = 0.0  # TAR: beta * mean((h_t - h_{t-1}) ^ 2) of the raw last-layer output
    nonmono: int = 5  # ntasgd: average once validation is worse than the best before the last `nonmono` evaluations
    preset: str | None = None  # the preset this run started from (a record; see presets.py)
    preset_version: int | None = None
    # training control (train.py: Trainer.note_progress): the plateau schedule and early stopping
    plateau_factor: float = 4.0  # plateau: divide the learning rate by this when validation stalls
    plateau_patience: int = 1  # plateau: ... after this many evaluations without a new best
    plateau_min_lr: float | None = None  # plateau: the rate never goes below this; None = lr * min_lr_ratio
    patience: int | None = None  # stop after this many evaluations without a new best (best/ keeps the best)
    target_loss: float | None = None  # stop once the validation loss is at or below this (nats/token)

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_float("lr", self.lr, 0.0, 1e3, low_open=True)
        check_float("weight_decay", self.weight_decay, 0.0, 1e3)
        check_float("momentum", self.momentum, 0.0, 1.0, high_open=True)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_int("warmup_steps", self.warmup_steps, 0)
        check_float("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        check_int("decay_steps", self.decay_steps, 1, allow_none=True)
        check_float("clip", self.clip, 0.0, 1e12, low_open=True, allow_none=True)
        check_int("steps", self.steps, 1, 1 << 62, allow_none=True)
        check_int("epochs", self.epochs, 1, 10**9, allow_none=True)
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("give steps or epochs, not both")
        check_float("max_seconds", self.max_seconds, 0.0, 1e9, low_open=True, allow_none=True)
        check_int("eval_interval", self.eval_interval, 1)
        check_int("log_interval", self.log_interval, 1)
        check_int("save_interval", self.save_interval, 1, allow_none=True)
        check_int("eval_max_tokens", self.eval_max_tokens, 1, allow_none=True)
        check_choice("on_nan", self.on_nan, ON_NAN)
        check_choice("device", self.device, DEVICES)
        check_bool("amp", self.amp)
        check_int("seed", self.seed, 0, (1 << 63) - 1)
        if self.out is not None and (not isinstance(self.out, str) or not self.out):
            raise ConfigError(f"out must be a directory path, got {self.out!r}")
        check_bool("overwrite", self.overwrite)
        check_bool("quiet", self.quiet)
        check_int("sample_tokens", self.sample_tokens, 0, 10_000_000)  # checked now, not after training
        _check_report_to(self.report_to)
        check_float("ar_alpha", self.ar_alpha, 0.0, 1e6)
        check_float("tar_beta", self.tar_beta, 0.0, 1e6)
        check_int("nonmono", self.nonmono, 1, 1_000_000)
        if self.preset is not None and (not isinstance(self.preset, str) or not self.preset):
            raise ConfigError(f"preset must be a preset name, got {self.preset!r}")
        check_int("preset_version", self.preset_version, 1, allow_none=True)
        check_float("plateau_factor", self.plateau_factor, 1.0, 1e6, low_open=True)
        check_int("plateau_patience", self.plateau_patience, 1, 1_000_000)
        check_float("plateau_min_lr", self.plateau_min_lr, 0.0, 1e3, allow_none=True)
        check_int("patience", self.patience, 1, 1_000_000, allow_none=True)
        check_float("target_loss", self.target_loss, 0.0, 1e6, allow_none=True)

    @property
    def lr_floor(self) -> float:
        """The lowest rate the plateau schedule may reach."""
        return self.plateau_min_lr if self.plateau_min_lr is not None else self.lr * self.min_lr_ratio


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
        if self.model.model not in MODELS and (self.train.ar_alpha > 0 or self.train.tar_beta > 0):
            raise ConfigError(
                f"--ar-alpha and --tar-beta act on an RNN's hidden states; a {self.model.model} model takes neither"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> RunConfig:
        if not isinstance(raw, dict):
            raise ConfigError("a run configuration must be a JSON object")
        unknown = set(raw) - {"model", "data", "train"}
        if unknown:
            raise ConfigError(f"unknown configuration section(s): {', '.join(sorted(unknown))}")
        return cls(
            model=section_from_dict(ModelConfig, raw.get("model", {})),
            data=section_from_dict(DataConfig, raw.get("data", {})),
            train=section_from_dict(TrainConfig, raw.get("train", {})),
        )


def _check_report_to(report_to: Any) -> None:
    if not isinstance(report_to, str) or any(name.strip() not in REPORT_TO for name in report_to.split(",")):
        raise ConfigError(
            f"report_to takes a comma-separated list of {', '.join(REPORT_TO)} (metrics.jsonl is "
            f"always written); got {report_to!r}"
        )


def _refuse_awd_options_for_numpy(model: ModelConfig, train: TrainConfig) -> None:
    """The NumPy engine has standard dropout only; name every AWD-LSTM option that is on."""
    names = [name for name in MODEL_REGULARIZERS if getattr(model, name) > 0]
    names += [name for name in ("ar_alpha", "tar_beta") if getattr(train, name) > 0]
    if train.optimizer == "ntasgd":
        names.append("optimizer ntasgd")
    if names:
        flags = ", ".join("--" + name.replace("_", "-") for name in names)
        raise ConfigError(
            f"{flags}: torch-engine option(s); the NumPy engine has standard --dropout only "
            "(use --engine torch, or leave them at 0)"
        )


def section_from_dict(kind: type, raw: Any) -> Any:
    """Build one config dataclass from a dict, refusing unknown keys (typos must not pass silently)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"the {kind.__name__} section must be a JSON object")
    names = {f.name for f in dataclasses.fields(kind)}
    if kind is DataConfig and "split" in raw:
        raise ConfigError(
            "the data option 'split' is now called 'fractions' (train,val,test shares; "
            "'split' names one split, as in evaluate)"
        )
    unknown = set(raw) - names
    if unknown:
        raise ConfigError(f"unknown {kind.__name__} option(s): {', '.join(sorted(unknown))}")
    values = dict(raw)
    if kind is DataConfig and isinstance(values.get("fractions"), list):
        values["fractions"] = tuple(values["fractions"])
    try:
        return kind(**values)
    except TypeError as error:  # defensive: a field dataclasses could not accept
        raise ConfigError(str(error)) from None


# ---------------------------------------------------------------- overrides and the resume policy

DEFAULT_STEPS = 1000  # a run's length when neither steps nor epochs is given (the default run: README)
# what a resumed run may change: how long it runs, how often it reports, where, and how it treats
# a NaN; everything else would make it a different run than the one its checkpoint continues
RESUME_OPTIONS = frozenset(
    {
        "steps",
        "epochs",
        "max_seconds",
        "eval_interval",
        "log_interval",
        "save_interval",
        "eval_max_tokens",
        "device",
        "quiet",
        "sample_tokens",
        "amp",
        "on_nan",
        "report_to",
    }
)
RESUME_OPTIONS |= {"patience", "target_loss"}  # when to stop early, like how long to run


def with_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """A copy of `config` with fields of any section replaced by name (validated again); giving
    steps clears epochs and the other way round (one length, the one asked for)."""
    sections = {
        "model": dataclasses.asdict(config.model),
        "data": dataclasses.asdict(config.data),
        "train": dataclasses.asdict(config.train),
    }
    for name, value in overrides.items():
        section = next((s for s, fields in sections.items() if name in fields), None)
        if section is None:
            raise ConfigError(f"unknown option {name!r}")
        sections[section][name] = value
    if "model" in overrides and "gru_form" not in overrides:
        sections["model"]["gru_form"] = None  # another model kind: the GRU form recorded for a GRU goes
    if "model" in overrides and "context" not in overrides and overrides["model"] != "mlp":
        sections["model"]["context"] = None
    if "steps" in overrides and "epochs" not in overrides:
        sections["train"]["epochs"] = None
    if "epochs" in overrides and "steps" not in overrides:
        sections["train"]["steps"] = None
    return RunConfig.from_dict(sections)


def resume_config(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """The checkpoint's config with the options a resume may change (RESUME_OPTIONS); repeating
    an option with the value the run already has is fine (so the original command line plus
    --resume works), changing any other is a ConfigError."""
    current = {
        **dataclasses.asdict(config.model),
        **dataclasses.asdict(config.data),
        **dataclasses.asdict(config.train),
    }
    refused = sorted(
        name for name, value in overrides.items() if name not in RESUME_OPTIONS and _differs(current.get(name), value)
    )
    if refused:
        raise ConfigError(
            f"cannot change {', '.join(refused)} when resuming (the run would no longer "
            f"continue the same training); allowed: {', '.join(sorted(RESUME_OPTIONS))}"
        )
    train = dataclasses.asdict(config.train)
    if "steps" in overrides or "epochs" in overrides:
        train["steps"], train["epochs"] = None, None
    train.update({name: value for name, value in overrides.items() if name in RESUME_OPTIONS})
    return RunConfig(config.model, config.data, TrainConfig(**train))


def _differs(saved: Any, given: Any) -> bool:
    """A list from JSON and a tuple from the command line are the same value."""
    if isinstance(saved, (list, tuple)) and isinstance(given, (list, tuple)):
        return tuple(saved) != tuple(given)
    return saved != given
