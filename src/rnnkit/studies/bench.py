"""`rnnkit bench`: the speed of rnnkit's training step beside plain PyTorch, in one process and run.

One training step is what `rnnkit train` does per update with its defaults: forward over a window
of N x T tokens, mean cross-entropy, backward, clip the global gradient norm at 1.0, AdamW
(lr 3e-3, weight decay 0.01) update, and carry the hidden state, detached, into the next window
(sequential batching; the state starts from zero at each pass over the data). The data lies on the
device before timing starts. Implementations:

    rnnkit     a real `rnnkit.train.Trainer` on synthetic text: `trainer.train_step()` (engine step,
               schedule, device-side loss/grad-norm sums, non-finite tracker) plus the per-step
               divergence read that `RunLoop` does on the CPU, i.e. the code path of `rnnkit train`
    plain      what a competent user writes: nn.Embedding -> nn.RNN/GRU/LSTM (cuDNN on GPU) ->
               nn.Linear, F.cross_entropy, clip_grad_norm_, AdamW (fused on CUDA)
    cell-loop  the textbook way: nn.LSTMCell (GRUCell, RNNCell) called in a Python loop over time
    numpy      rnnkit's NumPy engine (hand-written BPTT), CPU only

Timing: every implementation is built and warmed up first, then timed in rounds that alternate
the order (A B C D, D C B A, ...) so that load from other processes falls on all alike. A repeat
is k steps between two device synchronisations (CUDA events on a GPU), k chosen so that a repeat
lasts about `seconds_per_repeat`; the figure is the median over repeats of time/k. Ratios to plain
come from the same run (`ratio_to_plain` of the medians, `ratio_paired` the median of per-round
ratios). Peak memory is the most an implementation holds from its construction through warm-up
(weights, gradients, optimizer state, data, carried state, a step's working memory):
torch.cuda.max_memory_allocated on CUDA, the resident-set rise (VmRSS/VmHWM, peak reset through
/proc/self/clear_refs, freed heap returned first) on the CPU, or None where that cannot be read.
Before a configuration is measured, two throwaway steps at its shapes fill per-shape caches, so
the implementation built first is not charged for them. The CPU run is wrapped in
`flush_denormals`, as `rnnkit train` is.
"""

from __future__ import annotations

import ctypes
import gc
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import (
    DEVICES,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    check_bool,
    check_choice,
    check_float,
    check_int,
)
from ..errors import ConfigError

IMPLS = ("rnnkit", "plain", "cell-loop", "numpy")
REFERENCE = "plain"
TRAIN_FRACTION = 0.9
WINDOWS = 3  # windows per pass over the synthetic data: the state is carried, then reset
FIRST_SYMBOL = 0x4E00  # synthetic characters: CJK ideographs (no whitespace, no surrogates)
MAX_STEPS_PER_REPEAT = 200
CPU_SETTLE_S = 0.25  # pause before a CPU repeat: idle OpenMP/BLAS threads stop spinning
MIB = 1 << 20


@dataclass(frozen=True)
class BenchSpec:
    """One benchmark configuration: model size and batch shape."""

    name: str
    model: str
    vocab: int
    layers: int
    hidden: int
    embed: int
    batch: int
    seq_len: int
    gru_form: str | None = None  # gru: cudnn (nn.GRU) or cho (reset gate before the product: a Python loop)

    @property
    def has_plain(self) -> bool:
        """Whether plain PyTorch has this model as one module (nn.RNN/GRU/LSTM); the Cho GRU and
        the scan models exist only in rnnkit (and its NumPy engine)."""
        return self.model in RECURRENT and self.gru_form != "cho"

    @property
    def tokens(self) -> int:
        """Target tokens per training step (N x T)."""
        return self.batch * self.seq_len


LONG_MODELS = ("mingru", "minlstm", "gru", "lstm")
# (config, the config it is compared with): the same implementation's speed, one over the other
CROSS = (
    ("char-2x512-gru-cho", "char-2x512-gru"),
    ("tiny-gru-cho", "tiny-gru"),
    ("small-1x128-gru-cho", "small-1x128-gru"),
    *(
        (f"{size}-{m}", f"{size}-{other}")
        for size in ("long-512", "tiny-long")
        for m in ("mingru", "minlstm")
        for other in ("gru", "lstm")
    ),
)
SPECS = tuple(
    [BenchSpec(f"char-2x512-{m}", m, 65, 2, 512, 64, 64, 128) for m in ("rnn", "gru", "lstm")]
    + [
        BenchSpec("word-2x650", "lstm", 10_000, 2, 650, 650, 20, 35),  # Zaremba et al.'s medium PTB model
        BenchSpec("big-3x1024", "lstm", 256, 3, 1024, 256, 256, 256),
    ]
    + [BenchSpec(f"tiny-{m}", m, 65, 2, 32, 16, 4, 16) for m in ("rnn", "gru", "lstm")]
    # what the Cho et al. (2014) GRU costs beside cuDNN's form (no fused kernel: a loop of two products a step)
    + [BenchSpec("char-2x512-gru-cho", "gru", 65, 2, 512, 64, 64, 128, gru_form="cho")]
    + [
        BenchSpec("small-1x128-gru" + suffix, "gru", 65, 1, 128, 32, 32, 64, gru_form=form)
        for suffix, form in (("", None), ("-cho", "cho"))
    ]
    # long windows, where minGRU/minLSTM's parallel scan (Feng et al. 2024) should pay: all four side by side
    + [BenchSpec(f"long-512-{m}", m, 65, 1, 256, 64, 8, 512) for m in LONG_MODELS]
    + [BenchSpec(f"tiny-long-{m}", m, 65, 1, 16, 8, 2, 64) for m in LONG_MODELS]
    + [BenchSpec("tiny-gru-cho", "gru", 65, 2, 32, 16, 4, 16, gru_form="cho")]
)
GROUPS = MappingProxyType(
    {
        "char-2x512": ("char-2x512-rnn", "char-2x512-gru", "char-2x512-lstm"),
        "tiny": ("tiny-rnn", "tiny-gru", "tiny-lstm"),
        "gru-forms": ("char-2x512-gru", "char-2x512-gru-cho"),
        "gru-forms-small": ("small-1x128-gru", "small-1x128-gru-cho"),  # the size of docs/concepts.md's runs
        "long-512": tuple(f"long-512-{m}" for m in LONG_MODELS),
        "tiny-long": tuple(f"tiny-long-{m}" for m in LONG_MODELS),
        "all": tuple(
            s.name
            for s in SPECS
            if not s.name.startswith(("tiny-", "long-", "small-")) and s.name != "char-2x512-gru-cho"
        ),
    }
)
DEFAULT_CUDA = GROUPS["all"]
DEFAULT_CPU = tuple(name for name in GROUPS["all"] if name != "big-3x1024")  # ~minutes per step on a CPU


def spec_named(name: str) -> BenchSpec:
    """The configuration called `name` (ConfigError naming the known ones otherwise)."""
    for spec in SPECS:
        if spec.name == name:
            return spec
    known = ", ".join([s.name for s in SPECS] + list(GROUPS))
    raise ConfigError(f"unknown bench config {name!r}; known: {known}")


def resolve_configs(names: Sequence[str]) -> tuple[BenchSpec, ...]:
    """Expand group names (char-2x512, tiny, all) and check every name, keeping order, no repeats."""
    expanded: list[str] = []
    for name in names:
        for member in GROUPS.get(name, (name,)):
            if member not in expanded:
                expanded.append(member)
    if not expanded:
        raise ConfigError("--configs names no configuration")
    return tuple(spec_named(name) for name in expanded)


def split_names(text: str | None) -> tuple[str, ...] | None:
    """'a, b,c' -> ('a', 'b', 'c'); None stays None (the default)."""
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class BenchOptions:
    """What to measure and how long; checked on construction (ConfigError)."""

    device: str = "auto"
    configs: tuple[str, ...] | None = None  # None: tiny with quick, else all (big-3x1024 only on CUDA)
    impls: tuple[str, ...] = IMPLS
    amp: bool = False  # also measure bf16 autocast (CUDA only, as `rnnkit train --amp`)
    quick: bool = False
    repeats: int | None = None  # None: 3 with quick, else 5
    warmup: int | None = None  # None: 1 with quick, else 3
    seconds_per_repeat: float | None = None  # None: 0 with quick (one step), else 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("device", self.device, DEVICES)
        if self.configs is not None:
            resolve_configs(self.configs)
        unknown = [name for name in self.impls if name not in IMPLS]
        if unknown or not self.impls:
            raise ConfigError(
                f"unknown bench implementation(s) {', '.join(unknown) or '(none)'}; known: {', '.join(IMPLS)}"
            )
        check_int("repeats", self.repeats, 1, allow_none=True)
        check_int("warmup", self.warmup, 0, allow_none=True)
        check_float("seconds_per_repeat", self.seconds_per_repeat, 0.0, 600.0, allow_none=True)
        check_bool("amp", self.amp)
        check_bool("quick", self.quick)
        check_int("seed", self.seed, 0, (1 << 63) - 1)

    def specs(self, device: torch.device) -> tuple[BenchSpec, ...]:
        default = GROUPS["tiny"] if self.quick else (DEFAULT_CUDA if device.type == "cuda" else DEFAULT_CPU)
        return resolve_configs(self.configs or default)

    @property
    def n_repeats(self) -> int:
        return self.repeats if self.repeats is not None else (3 if self.quick else 5)

    @property
    def n_warmup(self) -> int:
        return self.warmup if self.warmup is not None else (1 if self.quick else 3)

    @property
    def target_seconds(self) -> float:
        if self.seconds_per_repeat is not None:
            return self.seconds_per_repeat
        return 0.0 if self.quick else 0.5


# ---------------------------------------------------------------- synthetic data


def synthetic_ids(spec: BenchSpec, seed: int) -> np.ndarray:
    """Token ids for the whole synthetic text: every symbol occurs in the training part, which holds
    WINDOWS windows of N x T; the rest (validation, for the Trainer) is drawn from the same symbols."""
    train = max(spec.tokens * WINDOWS, 2 * spec.vocab) + 1
    total = math.ceil(train / TRAIN_FRACTION) + 2
    ids = np.random.default_rng(seed).integers(0, spec.vocab, total)
    ids[: spec.vocab] = np.arange(spec.vocab)
    return ids


def train_ids(ids: np.ndarray) -> np.ndarray:
    """The training part of `ids`, cut where the Trainer's contiguous split cuts the text."""
    return ids[: round(len(ids) * TRAIN_FRACTION)]


class Windows:
    """The TBPTT layout, as rnnkit's SequentialBatches: N parallel streams laid out on the device
    once, walked in windows of T tokens (each a view, no copy per step)."""

    def __init__(self, ids: np.ndarray, spec: BenchSpec, device: torch.device):
        tokens = torch.as_tensor(ids, dtype=torch.long)
        length = (len(tokens) - 1) // spec.batch
        used = spec.batch * length
        self.x = tokens[:used].view(spec.batch, length).to(device)
        self.y = tokens[1 : used + 1].view(spec.batch, length).to(device)
        self.seq_len, self.count, self.index = spec.seq_len, length // spec.seq_len, 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Inputs and targets of the next window, and whether it starts a new pass over the data."""
        start, fresh = self.index * self.seq_len, self.index == 0
        self.index = (self.index + 1) % self.count
        return self.x[:, start : start + self.seq_len], self.y[:, start : start + self.seq_len], fresh


# ---------------------------------------------------------------- implementations


class Stepper(Protocol):
    """One implementation under test: `step()` does one full training update on the next window."""

    def step(self) -> None: ...


class RnnkitStepper:
    """The rnnkit path: a real Trainer built from a RunConfig, stepped as RunLoop steps it."""

    def __init__(self, spec: BenchSpec, ids: np.ndarray, device: torch.device, amp: bool, seed: int):
        from ..train import Trainer

        with tempfile.TemporaryDirectory(prefix="rnnkit-bench-") as folder:
            path = Path(folder) / "synthetic.txt"
            path.write_text("".join(map(chr, FIRST_SYMBOL + ids)), encoding="utf-8")
            self.trainer = Trainer(_run_config(spec, path, device, amp, seed), log=lambda _message: None)
        if len(self.trainer.tokenizer) != spec.vocab:  # the synthetic text must give exactly V symbols
            raise RuntimeError(f"synthetic vocabulary {len(self.trainer.tokenizer)} != {spec.vocab}")

    def step(self) -> None:
        self.trainer.train_step()
        if self.trainer.reads_divergence_every_step:  # as RunLoop does after every CPU step
            self.trainer.first_bad_step()


def _run_config(spec: BenchSpec, path: Path, device: torch.device, amp: bool, seed: int) -> RunConfig:
    """`rnnkit train` defaults, with the spec's sizes, char tokenizer on the synthetic file, and no
    dropout (the plain PyTorch model it is compared with has none)."""
    return RunConfig(
        ModelConfig(
            model=spec.model,
            layers=spec.layers,
            hidden=spec.hidden,
            embed=spec.embed,
            dropout=0.0,
            gru_form=spec.gru_form,
        ),
        DataConfig(
            data=str(path),
            tokenizer="char",
            batch_size=spec.batch,
            seq_len=spec.seq_len,
            fractions=(TRAIN_FRACTION, round(1 - TRAIN_FRACTION, 6), 0.0),
        ),
        TrainConfig(steps=10**9, device=device.type, amp=amp, seed=seed, quiet=True, sample_tokens=0),
    )


RECURRENT = MappingProxyType({"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM})
CELLS = MappingProxyType({"rnn": nn.RNNCell, "gru": nn.GRUCell, "lstm": nn.LSTMCell})


class PlainLM(nn.Module):
    """Embedding -> stacked nn.RNN/GRU/LSTM (batch first; cuDNN on a GPU) -> Linear."""

    def __init__(self, spec: BenchSpec):
        super().__init__()
        self.embed = nn.Embedding(spec.vocab, spec.embed)
        self.rnn = RECURRENT[spec.model](spec.embed, spec.hidden, num_layers=spec.layers, batch_first=True)
        self.head = nn.Linear(spec.hidden, spec.vocab)

    def forward(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        out, state = self.rnn(self.embed(x), state)
        return self.head(out), state


class CellLoopLM(nn.Module):
    """Embedding -> one nn.*Cell per layer, called in a Python loop over time steps -> Linear."""

    def __init__(self, spec: BenchSpec):
        super().__init__()
        self.embed = nn.Embedding(spec.vocab, spec.embed)
        sizes = [spec.embed] + [spec.hidden] * (spec.layers - 1)
        self.cells = nn.ModuleList(CELLS[spec.model](size, spec.hidden) for size in sizes)
        self.head = nn.Linear(spec.hidden, spec.vocab)

    def forward(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        inputs, states = self.embed(x), []
        for layer, cell in enumerate(self.cells):
            s = None if state is None else state[layer]
            outputs = []
            for t in range(inputs.size(1)):
                s = cell(inputs[:, t], s)
                outputs.append(s[0] if isinstance(s, tuple) else s)
            inputs = torch.stack(outputs, dim=1)
            states.append(s)
        return self.head(inputs), states


def detached(state: Any) -> Any:
    """The state with the graph cut (truncated BPTT), for tensors, tuples and lists of them."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detached(s) for s in state)
    return state


class TorchStepper:
    """The hand-written PyTorch training step shared by `plain` and `cell-loop`."""

    def __init__(self, model: nn.Module, spec: BenchSpec, ids: np.ndarray, device: torch.device, amp: bool):
        defaults = TrainConfig()
        self.model, self.device, self.amp, self.clip = model.to(device), device, amp, defaults.clip
        fused: dict[str, Any] = {"fused": True} if device.type == "cuda" else {}  # else torch's own default
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=defaults.lr, weight_decay=defaults.weight_decay, **fused
        )
        self.windows, self.state = Windows(ids, spec, device), None

    def step(self) -> None:
        x, y, fresh = self.windows.next()
        if fresh:
            self.state = None  # a new pass over the data starts from a zero state
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.amp):
            logits, state = self.model(x, self.state)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        self.state = detached(state)


class NumpyStepper:
    """rnnkit's NumPy engine stepped on the same windows (from CPU tensors, as the Trainer gives it)."""

    def __init__(self, spec: BenchSpec, ids: np.ndarray, seed: int):
        from ..engines import NumpyEngine

        model = ModelConfig(
            model=spec.model,
            layers=spec.layers,
            hidden=spec.hidden,
            embed=spec.embed,
            dropout=0.0,
            engine="numpy",
            vocab_size=spec.vocab,
            gru_form=spec.gru_form,
        )
        self.lr = TrainConfig().lr
        self.engine = NumpyEngine(model, TrainConfig(seed=seed), seed)
        self.windows, self.state = Windows(ids, spec, torch.device("cpu")), None

    def step(self) -> None:
        x, y, fresh = self.windows.next()
        out = self.engine.step(x, y, None if fresh else self.state, self.lr)
        self.state = None if out is None else out[2]


def build_stepper(impl: str, spec: BenchSpec, ids: np.ndarray, device: torch.device, amp: bool, seed: int) -> Stepper:
    """A fresh, seeded implementation of one training step."""
    torch.manual_seed(seed)
    if impl == "rnnkit":
        return RnnkitStepper(spec, ids, device, amp, seed)
    if impl == "plain":
        return TorchStepper(PlainLM(spec), spec, train_ids(ids), device, amp)
    if impl == "cell-loop":
        return TorchStepper(CellLoopLM(spec), spec, train_ids(ids), device, amp)
    return NumpyStepper(spec, train_ids(ids), seed)


# ---------------------------------------------------------------- timing and memory


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(stepper: Stepper, steps: int, device: torch.device) -> float:
    """Seconds per step over `steps` back-to-back steps, all device work included."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        for _ in range(steps):
            stepper.step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0 / steps
    began = time.perf_counter()
    for _ in range(steps):
        stepper.step()
    return (time.perf_counter() - began) / steps


class MemoryProbe(Protocol):
    """Bytes in use now and at the peak since the last reset; None where they cannot be read."""

    def settle(self) -> None: ...

    def current(self) -> int | None: ...

    def reset_peak(self) -> None: ...

    def peak(self) -> int | None: ...


class CudaMemory:
    """The caching allocator's live bytes (torch.cuda.memory_allocated / max_memory_allocated)."""

    def __init__(self, device: torch.device):
        self.device = device

    def settle(self) -> None:
        gc.collect()

    def current(self) -> int | None:
        torch.cuda.synchronize(self.device)
        return torch.cuda.memory_allocated(self.device)

    def reset_peak(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> int | None:
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device)


class RssMemory:
    """The process's resident set from /proc/self/status (Linux); the peak is reset via clear_refs.

    A resident-set rise counts fresh pages only: memory that the C allocator kept from freed
    objects is reused without one. So before each measurement the heap's free memory goes back to
    the OS (glibc malloc_trim); otherwise whichever implementation is built first is charged for
    pages the later ones reuse (seen: 575 vs 356 MiB for the same model, swapped by build order).
    """

    def settle(self) -> None:
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc: figures may then depend on build order
            pass

    def current(self) -> int | None:
        return _proc_status_bytes("VmRSS")

    def reset_peak(self) -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass

    def peak(self) -> int | None:
        return _proc_status_bytes("VmHWM")


def _proc_status_bytes(key: str) -> int | None:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0]) * 1024
    return None


def memory_probe(device: torch.device) -> MemoryProbe:
    return CudaMemory(device) if device.type == "cuda" else RssMemory()


def _delta(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else max(0, after - before)


@dataclass
class Trial:
    """One implementation's measurements within one configuration."""

    impl: str
    stepper: Stepper
    steps: int  # per repeat
    peak: int | None  # bytes: the most it held from construction through warm-up
    seconds: list[float] = field(default_factory=list)  # per step, one entry per repeat


def prepare(
    impl: str,
    spec: BenchSpec,
    ids: np.ndarray,
    device: torch.device,
    amp: bool,
    options: BenchOptions,
    memory: MemoryProbe,
) -> Trial:
    """Build and warm up one implementation, then pick the steps per repeat from one timed step.

    Its peak memory is measured here, from construction through at least two steps (the first
    creates the optimizer state, the second runs with all of it): weights, gradients, optimizer
    state, data, carried state and the step's working memory."""
    memory.settle()
    memory.reset_peak()
    before = memory.current()
    stepper = build_stepper(impl, spec, ids, device, amp, options.seed)
    for _ in range(max(1, options.n_warmup)):  # one step at least, for the memory figure
        stepper.step()
    one = time_steps(stepper, 1, device)
    steps = min(MAX_STEPS_PER_REPEAT, max(1, math.ceil(options.target_seconds / max(one, 1e-9))))
    return Trial(impl, stepper, steps, _delta(memory.peak(), before))


def measure(trial: Trial, device: torch.device, settle_s: float) -> None:
    """One timed repeat of `trial.steps` steps, after a pause of `settle_s` seconds."""
    time.sleep(settle_s)
    trial.seconds.append(time_steps(trial.stepper, trial.steps, device))


def run_rounds(trials: list[Trial], repeats: int, device: torch.device, settle_s: float) -> None:
    """Time every trial `repeats` times, alternating the order round by round (ABBA...)."""
    for round_number in range(repeats):
        for trial in trials if round_number % 2 == 0 else trials[::-1]:
            measure(trial, device, settle_s)


def settle_seconds(options: BenchOptions, device: torch.device) -> float:
    """The pause before each CPU repeat: the previous implementation's OpenMP (torch) or BLAS
    (NumPy) worker threads spin for a while after their last task and would steal the cores
    from the one being timed. None on a GPU, none in a --quick smoke run."""
    return CPU_SETTLE_S if device.type == "cpu" and not options.quick else 0.0


# ---------------------------------------------------------------- the benchmark


def impls_for(options: BenchOptions, device: torch.device, amp: bool, spec: BenchSpec | None = None) -> tuple[str, ...]:
    """The implementations that apply: numpy only on the CPU and in fp32; plain and cell-loop only
    for the models PyTorch has (not the Cho GRU, minGRU or minLSTM)."""
    torch_only = ("plain", "cell-loop")
    return tuple(
        name
        for name in options.impls
        if (name != "numpy" or (device.type == "cpu" and not amp))
        and (spec is None or spec.has_plain or name not in torch_only)
    )


def bench_config(
    spec: BenchSpec, device: torch.device, amp: bool, options: BenchOptions, environment: dict[str, Any]
) -> list[dict[str, Any]]:
    """Measure every applicable implementation on one configuration and precision; rows as dicts."""
    memory, ids = memory_probe(device), synthetic_ids(spec, options.seed)
    prime(spec, ids, device, amp, options.seed)
    trials = [prepare(impl, spec, ids, device, amp, options, memory) for impl in impls_for(options, device, amp, spec)]
    run_rounds(trials, options.n_repeats, device, settle_seconds(options, device))
    rows = [result_row(spec, trial, amp, environment) for trial in trials]
    add_ratios(rows)
    del trials
    release(device)
    return rows


def prime(spec: BenchSpec, ids: np.ndarray, device: torch.device, amp: bool, seed: int) -> None:
    """Two throwaway plain steps at this configuration's shapes, so that per-shape caches (oneDNN
    primitives and scratch on the CPU, cuDNN plans and workspaces on a GPU) are not charged to
    whichever implementation is built first."""
    stepper = build_stepper("plain" if spec.has_plain else "rnnkit", spec, ids, device, amp, seed)
    for _ in range(2):
        stepper.step()
    synchronize(device)
    del stepper
    release(device)


def release(device: torch.device) -> None:
    """Free what the last configuration held, so the next one starts from the same footing."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def result_row(spec: BenchSpec, trial: Trial, amp: bool, environment: dict[str, Any]) -> dict[str, Any]:
    median, peak = statistics.median(trial.seconds), trial.peak
    return {
        "config": spec.name,
        "impl": trial.impl,
        "model": spec.model,
        "precision": "bf16" if amp else "fp32",
        "vocab": spec.vocab,
        "layers": spec.layers,
        "hidden": spec.hidden,
        "embed": spec.embed,
        "batch": spec.batch,
        "seq_len": spec.seq_len,
        "tokens_per_s": round(spec.tokens / median, 1),
        "ms_per_step": round(median * 1e3, 3),
        "ms_per_step_min": round(min(trial.seconds) * 1e3, 3),
        "ms_per_step_max": round(max(trial.seconds) * 1e3, 3),
        "steps_per_repeat": trial.steps,
        "repeats": len(trial.seconds),
        "peak_mem_mib": None if peak is None else round(peak / MIB, 1),
        "ratio_to_plain": None,
        "ratio_paired": None,
        "round_seconds": [round(s, 6) for s in trial.seconds],
        **environment,
    }


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Speed relative to plain in the same run (None without a plain row): `ratio_to_plain` is the
    ratio of the medians; `ratio_paired` the median over rounds of plain's time over this one's in
    the same round, which cancels load that drifts slowly across a run."""
    reference = next((row for row in rows if row["impl"] == REFERENCE), None)
    if reference is None:
        return
    for row in rows:
        row["ratio_to_plain"] = round(row["tokens_per_s"] / reference["tokens_per_s"], 4)
        pairs = zip(reference["round_seconds"], row["round_seconds"], strict=True)
        row["ratio_paired"] = round(statistics.median(plain / mine for plain, mine in pairs), 4)


def environment_of(device: torch.device) -> dict[str, Any]:
    """Where and when: device, its name, torch version, threads, UTC date."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{_cpu_model()}, {os.cpu_count()} cores"
    return {
        "device": device.type,
        "device_name": name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_bench(options: BenchOptions, log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark; one row per (config, precision, implementation), with ratios to plain."""
    from ..runtime import flush_denormals, resolve_device

    log = log or (lambda _message: None)
    device = resolve_device(options.device)
    precisions = (False, True) if options.amp and device.type == "cuda" else (False,)
    if options.amp and device.type != "cuda":
        log("bench: --amp (bf16 autocast) is CUDA-only in rnnkit; measuring fp32 only")
    environment, rows = environment_of(device), []
    with flush_denormals():  # as `rnnkit train` runs, for every implementation alike
        warm_runtime(device, options.seed)
        for spec in options.specs(device):
            for amp in precisions:
                rows += bench_config(spec, device, amp, options, environment)
                log(format_table(rows[-len(impls_for(options, device, amp, spec)) :], header=False))
    return rows


def warm_runtime(device: torch.device, seed: int) -> None:
    """A few throwaway steps, so that one-time costs (thread pools, BLAS/cuDNN handles and
    workspaces, lazy imports) are not charged to whichever implementation happens to be built first."""
    spec = spec_named("tiny-lstm")
    for impl in ("plain", "rnnkit"):
        stepper = build_stepper(impl, spec, synthetic_ids(spec, seed), device, False, seed)
        for _ in range(2):
            stepper.step()
    synchronize(device)
    release(device)


def format_table(rows: Sequence[dict[str, Any]], header: bool = True) -> str:
    """A fixed-width table: config, impl, precision, tokens/s, ms/step (spread), peak MiB, ratio."""
    lines = []
    if header and rows:
        first = rows[0]
        lines.append(
            f"# {first['device']} ({first['device_name']}), {first['threads']} threads, "
            f"torch {first['torch']}, {first['date']}; median of {first['repeats']} repeats"
        )
        lines.append(
            f"{'config':<17} {'impl':<10} {'prec':<5} {'tokens/s':>11} {'ms/step':>10} "
            f"{'spread':>7} {'peak MiB':>9} {'vs plain':>8} {'paired':>7}"
        )
    for row in rows:
        spread = (row["ms_per_step_max"] - row["ms_per_step_min"]) / row["ms_per_step"] * 100
        peak = "-" if row["peak_mem_mib"] is None else f"{row['peak_mem_mib']:,.1f}"
        ratio = "-" if row["ratio_to_plain"] is None else f"{row['ratio_to_plain']:.3f}"
        paired = "-" if row["ratio_paired"] is None else f"{row['ratio_paired']:.3f}"
        lines.append(
            f"{row['config']:<17} {row['impl']:<10} {row['precision']:<5} {row['tokens_per_s']:>11,.0f} "
            f"{row['ms_per_step']:>10.2f} {spread:>6.1f}% {peak:>9} {ratio:>8} {paired:>7}"
        )
    if header:
        lines += [
            f"{row['config']} / {row['against']} ({row['impl']}, {row['precision']}): "
            f"{row['speed_ratio']:.3f}x the tokens/s"
            for row in cross_ratios(rows)
        ]
    return "\n".join(lines)


def cross_ratios(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Speed of one configuration over another measured in the same run (CROSS: the Cho GRU over
    cuDNN's form, minGRU/minLSTM over GRU/LSTM at T = 512), implementation by implementation."""
    speed = {(row["config"], row["impl"], row["precision"]): row["tokens_per_s"] for row in rows}
    out = []
    for config, against in CROSS:
        for (name, impl, precision), tokens_per_s in speed.items():
            other = speed.get((against, impl, precision))
            if name == config and other:
                out.append(
                    {
                        "config": config,
                        "against": against,
                        "impl": impl,
                        "precision": precision,
                        "speed_ratio": round(tokens_per_s / other, 4),
                    }
                )
    return out
