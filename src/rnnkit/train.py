"""The training loop: batches -> forward -> loss -> backward -> clip -> step, with periodic
evaluation, keep-best checkpoints, metrics.jsonl and exact resume.

Read top to bottom: `train()` builds a `Trainer` (fresh or from a checkpoint) and runs it. The loop
does no host synchronisation per step: losses and gradient norms are summed on the device and read
only at logging steps, so a GPU is never kept waiting for Python.

The Trainer talks to its model only through the engine seam (engines.Engine) and evaluates only
through the scoring seam (evaluate.evaluate_split); the data comes from data.load_splits, the
overrides and the resume policy from config.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import threading
import time
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import distributed
from .checkpoint import Checkpoint, config_document, load_checkpoint, save_checkpoint
from .config import DEFAULT_STEPS, RunConfig, TrainConfig, resume_config, with_overrides
from .data import RandomBatches, SequentialBatches, load_splits
from .engines import Engine, load_pretrained, make_engine, read_pretrained
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    TrainingDiverged,
    TrainingStopped,
)
from .evaluate import EvalResult, eval_settings, evaluate_split
from .files import check_output_dir, clean_stale, fresh_run_dir, is_checkpoint, json_safe, prepare_run_dir, write_json
from .generate import SamplingConfig, generate_text, prompt_from_text
from .modelcard import run_provenance, write_run_card
from .reporting import Reporters, check_reporters, progress_bar
from .runtime import flush_denormals, require, resolve_device, stderr_logger
from .text.corpora import load_corpus
from .text.tokenizer import Tokenizer


@dataclass
class TrainResult:
    steps: int
    train_loss: float
    val_loss: float
    val_ppl: float
    val_bpc: float
    best_val_loss: float
    tokens_per_s: float
    seconds: float
    checkpoint: str  # the run directory (best/ and last/ inside)
    best_checkpoint: str
    device: str
    parameters: int
    sizes: dict[str, int]
    sample: str | None = None
    sample_prompt: str | None = None  # where the sample starts: the first words of a validation line

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON; a figure that does not exist (NaN, e.g. a baseline's train loss) is None."""
        return json_safe(dataclasses.asdict(self))


def learning_rate(config: TrainConfig, step: int, total_steps: int, scale: float = 1.0) -> float:
    """LR for update number `step` (0-based): linear warmup, then cosine decay to lr*min_lr_ratio,
    times `scale` (the Trainer's lr_scale, halved by each NaN rollback).

    lr_t = lr * (t+1)/W                                            for t < W
    lr_t = lr_min + (lr - lr_min)/2 * (1 + cos(pi * (t-W)/(S-W)))  for W <= t <= S (S = decay horizon)
    """
    return _scheduled(config, step, total_steps) * scale


def _scheduled(config: TrainConfig, step: int, total_steps: int) -> float:
    if config.schedule in ("constant", "plateau"):  # plateau: the Trainer divides it (plateau_scale)
        return config.lr
    warmup = config.warmup_steps
    if step < warmup:
        return config.lr * (step + 1) / warmup
    horizon = config.decay_steps or total_steps
    progress = min(1.0, (step - warmup) / max(1, horizon - warmup))
    low = config.lr * config.min_lr_ratio
    return low + 0.5 * (config.lr - low) * (1.0 + math.cos(math.pi * progress))


def config_warnings(config: RunConfig) -> list[str]:
    """Options that are valid but cannot do what whoever set them most likely meant, one line
    each (logged when a run starts; the run goes ahead as configured)."""
    model, train, default = config.model, config.train, TrainConfig()
    warnings = []
    if train.schedule == "cosine" and train.steps is not None and train.steps < train.warmup_steps:
        peak = learning_rate(train, train.steps - 1, train.steps)
        warnings.append(
            f"--steps {train.steps} is fewer than the {train.warmup_steps} warmup steps: the learning "
            f"rate peaks at {peak:.3g}, not the {train.lr:g} of --lr; lower --warmup-steps "
            f"(e.g. --warmup-steps {max(1, train.steps // 10)}) or use --schedule constant"
        )
    if train.schedule == "constant":
        shaped = [
            f"--{name.replace('_', '-')}"
            for name in ("warmup_steps", "min_lr_ratio", "decay_steps")
            if getattr(train, name) != getattr(default, name)
        ]
        if shaped:
            warnings.append(
                f"{', '.join(shaped)} shape(s) the cosine schedule; with --schedule constant the "
                "learning rate stays at --lr and they do nothing"
            )
    if train.optimizer == "adamw" and train.momentum != default.momentum:
        warnings.append("--momentum is an SGD option; AdamW ignores it (use --optimizer sgd or ntasgd)")
    if train.optimizer != "ntasgd" and train.nonmono != default.nonmono:
        warnings.append(
            "--nonmono only decides when NT-ASGD starts averaging; it does nothing without --optimizer ntasgd"
        )
    if model.layers == 1 and model.dropout_hidden > 0:
        warnings.append(
            "--dropout-hidden acts between recurrent layers, and a 1-layer model has none; "
            "use --dropout-output (or --layers 2)"
        )
    if train.eval_interval != default.eval_interval and train.eval_interval > (train.steps or math.inf):
        warnings.append(
            f"--eval-interval {train.eval_interval} is more than --steps {train.steps}: the model is "
            "evaluated (and best/ kept) only once, at the end"
        )
    return warnings


def nonmonotone_trigger(history: list[float], nonmono: int) -> bool:
    """NT-ASGD's non-monotone trigger (Merity et al. 2017, Algorithm 1): with validation losses
    v_0..v_t (the newest last), start averaging when t > n and v_t > min(v_0 .. v_{t-n-1}), i.e.
    the newest loss is worse than the best one from before the last n = `nonmono` evaluations."""
    *previous, newest = history
    return len(previous) > nonmono and newest > min(previous[:-nonmono])


def fingerprint(ids: Any) -> int:
    """A checksum of the training tokens: resuming on different data must not pass silently.
    Read in slices, so a memory-mapped corpus is never loaded whole."""
    crc = 0
    for start in range(0, len(ids), 1 << 24):
        crc = zlib.crc32(np.ascontiguousarray(ids[start : start + (1 << 24)]).tobytes(), crc)
    return crc


def default_run_dir(config: RunConfig) -> Path:
    return fresh_run_dir(f"{Path(config.data.data).stem or 'data'}-{config.model.model}")


@dataclass
class FineTuneStart:
    """Where a fine-tuning run starts: the source's tokenizer (grown, if asked) and weights."""

    tokenizer: Any
    weights: dict[str, torch.Tensor]
    info: dict[str, Any]


class Trainer:
    """One training run's state: data, an engine (model + optimizer), batches, step, and the
    running sums of the current logging window. Everything here is saved in trainer_state.pt.

    `self.config` is the config given, with the vocabulary size (and a prepared directory's
    tokenizer kind) that loading the data found; the config given is left as it was.
    """

    def __init__(
        self,
        config: RunConfig,
        log: Callable[[str], None],
        checkpoint: Checkpoint | None = None,
        start: FineTuneStart | None = None,
    ):
        self.log = log
        self.world = distributed.world_from_env()
        self.device = distributed.start(self.world, resolve_device(config.train.device))
        self.amp = config.train.amp and self.device.type == "cuda"
        # window sums in float64, but Apple's MPS has no float64 (a window's sum of <= log_interval losses
        # loses nothing that matters in float32)
        self.sum_dtype = torch.float32 if self.device.type == "mps" else torch.float64
        if config.train.amp and not self.amp:
            log("note: --amp (bf16 autocast) works on CUDA only; training in fp32 on the CPU")
        torch.manual_seed(config.train.seed)
        self.generator = torch.Generator().manual_seed(config.train.seed + 1)
        given_tokenizer = start.tokenizer if start else checkpoint.tokenizer if checkpoint else None
        loaded = load_splits(config.data, given_tokenizer)
        log(loaded.summary())
        self.config = config = loaded.sized(config)
        self.tokenizer, self.splits = loaded.tokenizer, loaded.splits
        pretrained = None
        if config.model.embed_from is not None and checkpoint is None:  # a resumed run has them in its weights
            model_config, pretrained = read_pretrained(config.model, self.tokenizer, self.splits["train"].ids, log)
            self.config = config = dataclasses.replace(config, model=model_config)
        self.engine: Engine = make_engine(config.model, config.train, self.device, self.amp, self.world.active)
        if pretrained is not None:
            load_pretrained(self.engine, pretrained)
        if config.train.optimizer == "ntasgd" and not self.engine.supports_averaging:
            raise ConfigError(
                f"--optimizer ntasgd needs weight averaging, which the {config.model.engine} "
                "engine does not have; use --engine torch"
            )
        self.info: dict[str, Any] = {}  # recorded in each checkpoint's config.json (a fine-tune's source)
        if checkpoint is not None and "init_from" in checkpoint.info:  # a resumed fine-tune keeps it
            self.info["init_from"] = checkpoint.info["init_from"]
        if start is not None:  # fine-tuning: the source's weights, a fresh optimizer and schedule
            self.engine.load_weights(start.weights)
            self.info["init_from"] = start.info
        self.provenance = self._provenance(checkpoint) if self.world.is_main else {}
        self.rows = self.world.rows(config.data.batch_size)
        self.batches = self._make_batches()
        self.total_steps = self._total_steps()
        self.step, self.best_val_loss, self.elapsed, self.carry = 0, math.inf, 0.0, None
        self.lr_scale, self.skipped = 1.0, 0  # halved by each NaN rollback; updates skipped for NaN
        self.val_history: list[float] = []  # ntasgd: validation losses until averaging starts
        # training control (note_progress): the plateau schedule's factor on the rate, evaluations
        # since the last new best (for the plateau's patience and for early stopping)
        self.plateau_scale, self.plateau_wait, self.stale_evals = 1.0, 0, 0
        self.reset_window()
        if checkpoint is not None:
            self.restore(checkpoint)

    def _provenance(self, checkpoint: Checkpoint | None) -> dict[str, Any]:
        """Command line, versions, data and its SHA-256, for config.json and the model card."""
        sizes = {name: (len(split.ids), split.chars) for name, split in self.splits.items()}
        return run_provenance(
            self.config,
            sizes,
            self.device,
            self.engine.num_parameters(),
            checkpoint.info.get("provenance") if checkpoint else None,
        )

    def _make_batches(self) -> SequentialBatches | RandomBatches:
        data, ids = self.config.data, self.splits["train"].ids
        if data.batching == "sequential":
            return SequentialBatches(ids, data.batch_size, data.seq_len, self.device, rows=self.rows)
        return RandomBatches(ids, data.batch_size, data.seq_len, self.generator, self.device, rows=self.rows)

    def _total_steps(self) -> int:
        train = self.config.train
        if train.steps is not None:
            return train.steps
        if train.epochs is not None:
            return train.epochs * len(self.batches)
        return DEFAULT_STEPS

    def reset_window(self) -> None:
        """Sums over the steps since the last metrics line, kept on the device (no sync per step)."""
        zero = torch.zeros((), dtype=self.sum_dtype, device=self.device)
        self.loss_sum, self.norm_sum, self.norm_max, self.count = zero.clone(), zero.clone(), zero.clone(), 0
        self.bad_step = torch.full((), -1, dtype=torch.long, device=self.device)  # first non-finite step

    def lr(self) -> float:
        """The rate of the next update."""
        return self.lr_at(self.step)

    def lr_at(self, step: int) -> float:
        """The rate of update `step` (0-based): the schedule times the rollback scale."""
        return learning_rate(self.config.train, step, self.total_steps, self.lr_scale * self.plateau_scale)

    @property
    def reads_divergence_every_step(self) -> bool:
        """On the CPU reading the non-finite flag costs nothing, so divergence is caught at its
        step; on a GPU the device records the first bad step and the host reads it at logging steps."""
        return self.device.type == "cpu"

    def first_bad_step(self) -> int:
        """The first update of the window whose loss or gradient was NaN/inf (-1: none), agreed by
        every process. A host read: it waits for the device (see reads_divergence_every_step)."""
        bad_step = int(self.bad_step.item())
        if self.world.active:  # every process must take the same decision
            flag = torch.tensor([bad_step], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            bad_step = int(flag.item())
        return bad_step

    def train_step(self) -> None:
        """One update on the next batch; a non-finite loss/gradient is noted (or skipped), not hidden."""
        x, y, state = self.next_batch()
        out = self.engine.step(x, y, state, self.lr(), skip_nonfinite=self.config.train.on_nan == "skip")
        self.step += 1
        if out is None:  # on_nan=skip: no update was made
            self.skipped += 1
            self.carry = None  # the carried state may hold NaNs too
            self.log(f"step {self.step}: non-finite loss or gradient at learning rate {self.lr():.3g}; update skipped")
            return
        loss, grad_norm, self.carry = out
        finite = torch.isfinite(torch.as_tensor(loss)) & torch.isfinite(torch.as_tensor(grad_norm))
        self.bad_step = torch.where((self.bad_step < 0) & ~finite.to(self.device), self.step, self.bad_step)
        self.loss_sum += loss
        self.norm_sum += grad_norm
        self.norm_max = torch.maximum(
            self.norm_max, torch.as_tensor(grad_norm, dtype=self.sum_dtype, device=self.device)
        )
        self.count += 1

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """The batch for update `self.step` and the state to start it from.

        Sequential batching: window step mod W; the carried state is reset at each epoch start.
        Random batching: fresh windows and a zero state every step.
        """
        index = self.step % len(self.batches)
        x, y = self.batches.window(index)
        if isinstance(self.batches, RandomBatches) or index == 0:
            self.carry = None
        return x, y, self.carry

    def evaluate(self, split: str = "val") -> EvalResult:
        settings = eval_settings(self.config.data, self.config.train.eval_max_tokens)
        return evaluate_split(self.engine.scorer(), self.splits[split], settings, unk_id=self.tokenizer.unk_id)

    def note_validation(self, val_loss: float) -> None:
        """NT-ASGD: after each evaluation, switch to weight averaging once validation has stalled
        (an ntasgd run always has an engine that averages: __init__ refuses any other)."""
        if self.config.train.optimizer != "ntasgd" or not self.engine.supports_averaging or self.engine.averaging:
            return
        self.val_history.append(val_loss)
        if nonmonotone_trigger(self.val_history, self.config.train.nonmono):
            self.engine.start_averaging()
            self.log(
                f"step {self.step}: val loss {val_loss:.4f} is worse than the best from before the last "
                f"{self.config.train.nonmono} evaluations; averaging the weights from here on (NT-ASGD)"
            )

    def note_progress(self, val_loss: float, improved: bool) -> str | None:
        """Training control after each evaluation: the plateau schedule divides the rate by
        plateau_factor once validation has gone plateau_patience evaluations without a new best
        (never below the floor, TrainConfig.lr_floor); early stopping. Returns why training
        should stop now (None: go on)."""
        train = self.config.train
        self.stale_evals = 0 if improved else self.stale_evals + 1
        self.plateau_wait = 0 if improved else self.plateau_wait + 1
        if train.schedule == "plateau" and self.plateau_wait >= train.plateau_patience:
            self.plateau_wait = 0
            self._divide_rate(train)
        if train.target_loss is not None and val_loss <= train.target_loss:
            return f"val loss {val_loss:.4f} reached the target {train.target_loss:g}"
        if train.patience is not None and self.stale_evals >= train.patience:
            return (
                f"no new best val loss in {self.stale_evals} evaluations (--patience {train.patience}); "
                f"best/ keeps {self.best_val_loss:.4f}"
            )
        return None

    def _divide_rate(self, train: TrainConfig) -> None:
        before = train.lr * self.plateau_scale
        after = max(before / train.plateau_factor, train.lr_floor)
        if after < before:
            self.plateau_scale = after / train.lr
            self.log(
                f"step {self.step}: no new best val loss in {train.plateau_patience} evaluation(s); "
                f"learning rate {before:.3g} -> {after:.3g} (plateau schedule)"
            )

    def trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "best_val_loss": self.best_val_loss,
            "elapsed": self.elapsed,
            "engine": self.engine.state(),
            "scheduler": {
                "name": self.config.train.schedule,
                "total_steps": self.total_steps,
                "lr_scale": self.lr_scale,
            },
            "batch_generator": self.generator.get_state(),
            "carry": self._global_carry(),
            "window": {
                "loss_sum": distributed.mean(self.loss_sum, self.world).cpu(),
                "norm_sum": distributed.mean(self.norm_sum, self.world).cpu(),
                "norm_max": self.norm_max.cpu(),
                "count": self.count,
            },
            "skipped": self.skipped,
            "data_fingerprint": fingerprint(self.splits["train"].ids),
            "val_history": list(self.val_history),
            "control": {
                "plateau_scale": self.plateau_scale,
                "plateau_wait": self.plateau_wait,
                "stale_evals": self.stale_evals,
            },
        }

    def _global_carry(self) -> list[torch.Tensor] | None:
        """The carried state of all streams (every process's rows), so a resume may use another
        number of processes."""
        carry = self.engine.state_to_tensors(self.carry)
        if carry is None or not self.world.active:
            return carry
        return [distributed.gather_rows(t.to(self.device), self.world).cpu() for t in carry]

    def save(self, run_dir: Path, kind: str, val_loss: float | None) -> None:
        state = self.trainer_state()  # every process joins its collectives; one process writes
        if self.world.is_main:
            save_checkpoint(
                run_dir / kind,
                self.config,
                self.engine.weights(),
                self.tokenizer,
                state,
                run_dir / "metrics.jsonl",
                kind=kind,
                step=self.step,
                val_loss=val_loss,
                provenance=self.provenance,
                **self.info,
            )
            write_run_card(run_dir)  # the card follows every checkpoint
        distributed.barrier(self.world)

    def restore(self, checkpoint: Checkpoint) -> None:
        state = checkpoint.trainer_state()
        if state.get("data_fingerprint") != fingerprint(self.splits["train"].ids):
            raise DataError(
                "the training data differs from the data this checkpoint was trained on; "
                "resume needs the same text (and --data)"
            )
        try:
            self.engine.load_weights(checkpoint.weights)
            self.engine.load_state(state["engine"])
            self.step, self.best_val_loss = int(state["step"]), float(state["best_val_loss"])
            self.elapsed, self.skipped = float(state["elapsed"]), int(state["skipped"])
            self.lr_scale = float(state["scheduler"]["lr_scale"])
            self.val_history = [float(v) for v in state.get("val_history", [])]  # absent before NT-ASGD
            control = state.get("control", {})  # absent before the plateau schedule and early stopping
            self.plateau_scale = float(control.get("plateau_scale", 1.0))
            self.plateau_wait = int(control.get("plateau_wait", 0))
            self.stale_evals = int(control.get("stale_evals", 0))
            self.generator.set_state(state["batch_generator"])
            carry = state["carry"]
            if carry is not None:
                carry = [t[:, self.rows] for t in carry]  # this process's streams
            self.carry = self.engine.state_from_tensors(carry)
            self.reset_window()
            window = state["window"]
            self.loss_sum += window["loss_sum"].to(self.device)
            self.norm_sum += window["norm_sum"].to(self.device)
            self.norm_max = window["norm_max"].to(self.device)
            self.count = int(window["count"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
            raise CheckpointError(
                f"{checkpoint.path}/trainer_state.pt does not fit this run ({type(error).__name__}: {error})"
            ) from None


class RunLoop:
    """Drives a Trainer to its last step: metrics, evaluation, checkpoints, NaN guard, signals."""

    def __init__(self, trainer: Trainer, run_dir: Path, log: Callable[[str], None], reporters: Reporters | None = None):
        self.trainer, self.run_dir, self.log = trainer, run_dir, log
        # TensorBoard and the user's callback (metrics.jsonl is written here, always)
        self.reporters = reporters or Reporters("jsonl", run_dir, trainer.step, None)
        self.metrics_path = run_dir / "metrics.jsonl"
        self.last_train_loss = math.nan
        self.last_eval: EvalResult | None = None
        self.tokens_per_s = math.nan
        self.stop_signal: int | None = None
        self.out_of_time = False  # --max-seconds reached (the schedule keeps its horizon)
        self.stop_reason: str | None = None  # --patience or --target-loss said stop (Trainer.note_progress)
        self.check_every_step = trainer.reads_divergence_every_step

    def run(self) -> None:
        t, train = self.trainer, self.trainer.config.train
        bar = progress_bar(t.total_steps, t.step, train.quiet or not t.world.is_main)
        self.started = time.perf_counter() - t.elapsed
        self.window_start = time.perf_counter()
        self.session_elapsed, self.session_steps = t.elapsed, 0  # this session's start (a resume's too)
        with _graceful_signals(self):
            try:
                while t.step < t.total_steps and not self.out_of_time and self.stop_reason is None:
                    t.train_step()
                    self.session_steps += 1
                    bar.update(1)
                    self._after_step(bar)
            finally:
                bar.close()

    def run_tokens_per_s(self) -> float:
        """The run's speed: tokens trained in this session (every update made, a rolled-back one
        too) over this session's seconds, evaluations included, as `seconds` reports them. The
        per-window rate, which a short window or a fast last stretch can inflate, stays in
        metrics.jsonl."""
        data = self.trainer.config.data
        seconds = self.trainer.elapsed - self.session_elapsed
        return self.session_steps * data.batch_size * data.seq_len / max(seconds, 1e-9)

    def _after_step(self, bar: Any) -> None:
        t, train = self.trainer, self.trainer.config.train
        if train.max_seconds is not None and time.perf_counter() - self.started >= train.max_seconds:
            self.log(f"time budget of {train.max_seconds:g} s reached at step {t.step}")
            self.out_of_time = True  # this is the last step: evaluate and save now
        final = t.step == t.total_steps or self.out_of_time
        evaluate = t.step % train.eval_interval == 0 or final
        log_now = t.step % train.log_interval == 0 or evaluate
        if (self.check_every_step or log_now) and self._diverged():
            return
        record = self._log_step(bar, evaluate) if log_now else None
        save_last = (
            (train.save_interval is None and evaluate)
            or final
            or (train.save_interval is not None and t.step % train.save_interval == 0)
        )
        if evaluate:
            assert record is not None  # evaluating implies logging (log_now)
            improved = self._keep_best(record)
            t.note_validation(record["val_loss"])  # before saving: last/ then holds the switch
            self.stop_reason = t.note_progress(record["val_loss"], improved)
            if self.stop_reason is not None:
                self.log(f"step {t.step}: stopping early: {self.stop_reason}")
                save_last = True
            if self.reporters.wants_samples and t.world.is_main:  # NumPy's own RNG: training's is untouched
                sample, _ = _sample(t.config, t.engine.scorer(), t.tokenizer, None, t.splits["val"].ids)
                self.reporters.sample(sample or "", t.step)
        if save_last or self.stop_signal is not None:
            t.save(self.run_dir, "last", record.get("val_loss") if record else None)
        if self.stop_signal is not None:
            self._stop()

    def _log_step(self, bar: Any, evaluate: bool) -> dict[str, Any]:
        t = self.trainer
        seconds = time.perf_counter() - self.window_start  # .item() below waits for the device
        count = max(t.count, 1)
        loss_sum, norm_sum = distributed.mean(t.loss_sum, t.world), distributed.mean(t.norm_sum, t.world)
        self.last_train_loss = (loss_sum / count).item() if t.count else math.nan
        lr = t.lr_at(t.step - 1)  # the last update's
        record = {
            "step": t.step,
            "train_loss": self.last_train_loss,
            "train_ppl": math.exp(min(self.last_train_loss, 700)),
            "lr": lr,
            "grad_norm": (norm_sum / count).item() if t.count else math.nan,
            "grad_norm_max": t.norm_max.item() if t.count else math.nan,
        }  # spikes the mean hides
        self.tokens_per_s = t.count * t.config.data.batch_size * t.config.data.seq_len / max(seconds, 1e-9)  # global
        record["tokens_per_s"] = round(self.tokens_per_s, 1)
        if evaluate:
            self.last_eval = t.evaluate("val")
            record.update(
                val_loss=self.last_eval.loss,
                val_ppl=self.last_eval.ppl,
                val_bpc=self.last_eval.bpc,
                val_unk_rate=self.last_eval.unk_rate,
            )
        t.elapsed = time.perf_counter() - self.started
        record["elapsed_s"] = round(t.elapsed, 3)
        if t.world.is_main:
            with open(self.metrics_path, "a", encoding="utf-8") as handle:
                handle.write(_json_line(record))
            self.reporters.record(record)
        bar.set_postfix(loss=f"{self.last_train_loss:.3f}", refresh=False)
        t.reset_window()
        self.window_start = time.perf_counter()
        return record

    def _keep_best(self, record: dict[str, Any]) -> bool:
        """Save best/ on a new lowest validation loss; True when it was one."""
        t, val_loss = self.trainer, record["val_loss"]
        improved = val_loss < t.best_val_loss
        if improved:
            t.best_val_loss = val_loss
            t.save(self.run_dir, "best", val_loss)
        mark = " *" if improved else ""
        self.log(
            f"step {t.step}/{t.total_steps}: train loss {record['train_loss']:.4f}, val loss {val_loss:.4f} "
            f"(ppl {record['val_ppl']:.2f}, bpc {record['val_bpc']:.4f}){mark}, "
            f"{self.tokens_per_s:,.0f} tokens/s"
        )
        return improved

    def _diverged(self) -> bool:
        """Act on a non-finite loss/gradient per --on-nan; True when the step's results were discarded."""
        t = self.trainer
        bad_step = t.first_bad_step()
        if bad_step < 0:
            return False
        lr = t.lr_at(bad_step - 1)
        what = f"non-finite loss or gradient at step {bad_step} (learning rate {lr:.3g})"
        last = self.run_dir / "last"
        if t.config.train.on_nan == "rollback" and is_checkpoint(last) and t.lr_scale > 1e-3:
            checkpoint = load_checkpoint(last, prefer="last")
            t.restore(checkpoint)
            t.lr_scale *= 0.5
            if t.world.is_main:
                _truncate_metrics(self.metrics_path, checkpoint.path / "metrics.jsonl")
            self.window_start = time.perf_counter()
            self.log(f"{what}: rolled back to step {t.step} and halved the learning rate (x{t.lr_scale:g})")
            return True
        advice = "no checkpoint to roll back to yet; " if t.config.train.on_nan == "rollback" else ""
        raise TrainingDiverged(
            f"{what}; {advice}lower --lr, keep clipping on (--clip 1), or try --on-nan "
            f"rollback|skip; the last good checkpoint is {last}"
        )

    def _stop(self) -> None:
        t = self.trainer
        assert self.stop_signal is not None  # called once a signal arrived
        name = signal.Signals(self.stop_signal).name
        raise TrainingStopped(
            f"{name} at step {t.step}: saved {self.run_dir / 'last'}; continue with "
            f"rnnkit train --resume {self.run_dir} --steps {t.total_steps}",
            self.stop_signal,
        )


@contextmanager
def _graceful_signals(loop: RunLoop):
    """SIGINT/SIGTERM finish the current step, save, and stop; a second signal acts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}  # signal number -> the handler to put back

    def handler(number: int, frame: Any) -> None:
        loop.stop_signal = number
        signal.signal(number, previous[number])

    for number in (signal.SIGINT, signal.SIGTERM):
        previous[number] = signal.signal(number, handler)
    try:
        yield
    finally:
        for restored, old in previous.items():
            signal.signal(restored, old)


def _json_line(record: dict[str, Any]) -> str:
    return json.dumps(json_safe(record)) + "\n"


def train(
    config: RunConfig | None = None,
    resume: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    on_sample: Callable[[str], None] | None = None,
    preset: str | None = None,
    init_from: str | Path | None = None,
    grow_vocab: bool = False,
    callback: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train a model (or continue one with `resume=RUN_DIR`) and return its final figures.

    `overrides` are config fields of any section applied on top (`steps=500, hidden=128`); with
    `resume`, only what keeps the run the same run (steps, epochs, device, intervals, ...).
    `preset` (see rnnkit.presets) starts from a named configuration instead of `config`; the
    overrides still win. With `resume`, a preset must be the one the run started from.
    `init_from=RUN` fine-tunes: a new run from RUN's weights and tokenizer on `data=NEW` (see
    rnnkit.finetune; `grow_vocab` gives new characters or words new ids instead of refusing).
    `callback(record)` gets each metrics line (a dict, as in metrics.jsonl) as it is logged.
    """
    with flush_denormals():
        if init_from is not None:
            return _finetune(init_from, grow_vocab, config, resume, preset, log, on_sample, overrides, callback)
        if grow_vocab:
            raise ConfigError("grow_vocab (--grow-vocab) applies to fine-tuning: give init_from (--init-from) too")
        return _train(config, resume, log, on_sample, preset, overrides, callback=callback)


def _finetune(
    init_from: str | Path,
    grow_vocab: bool,
    config: RunConfig | None,
    resume: str | Path | None,
    preset: str | None,
    log: Callable[[str], None] | None,
    on_sample: Callable[[str], None] | None,
    overrides: dict[str, Any],
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """A new run from a trained model's weights and tokenizer (rnnkit.finetune)."""
    from .finetune import check_new_tokens, finetune_config, grown_tokenizer, grown_weights, source_info
    from .text.prepare import is_prepared

    if config is not None or resume is not None or preset is not None:
        raise ConfigError(
            "init_from (--init-from) starts a new run from a trained one: it takes no config, "
            "resume or preset, only options"
        )
    source = load_checkpoint(init_from)
    config = finetune_config(source.config, overrides)
    if is_prepared(config.data.data):
        raise ConfigError(
            "fine-tune on a text file, directory or bundled corpus (a prepared directory has its own tokenizer)"
        )
    corpus = load_corpus(config.data.data, config.data.fractions)
    added = check_new_tokens(source.tokenizer, [corpus.train, corpus.val, corpus.test], grow_vocab)
    tokenizer = grown_tokenizer(source.tokenizer, added) if added else source.tokenizer
    start = FineTuneStart(
        tokenizer, grown_weights(source.weights, source.config, len(added)), source_info(source, added)
    )
    return _train(config, None, log, on_sample, None, {}, start, callback)


def _starting_config(config: RunConfig | None, preset: str | None, overrides: dict[str, Any]) -> RunConfig:
    if preset is None:
        return with_overrides(config or RunConfig(), overrides)
    if config is not None:
        raise ConfigError("give a config or a preset, not both (put changes to the preset in the overrides)")
    from .presets import preset_config

    return with_overrides(preset_config(preset), overrides)


def _train(
    config: RunConfig | None,
    resume: str | Path | None,
    log: Callable[[str], None] | None,
    on_sample: Callable[[str], None] | None,
    preset: str | None,
    overrides: dict[str, Any],
    start: FineTuneStart | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    checkpoint = None
    if resume is not None:
        checkpoint = load_checkpoint(resume, prefer="last")
        config = resume_config(checkpoint.config, overrides if preset is None else {**overrides, "preset": preset})
        run_dir = checkpoint.path.parent
    else:
        config = _starting_config(config, preset, overrides)
        run_dir = Path(config.train.out) if config.train.out else default_run_dir(config)
    check_reporters(config.train.report_to)  # a missing tensorboard stops the run before it starts
    world = distributed.world_from_env()
    log = log or stderr_logger(config.train.quiet or not world.is_main)  # one process speaks
    for warning in config_warnings(config):
        log(f"warning: {warning}")
    if config.model.is_baseline:
        if checkpoint is not None:
            raise ConfigError(f"a {config.model.model} model is fitted in one pass; there is nothing to resume")
        return _fit_baseline_run(config, run_dir, log, on_sample, callback)
    if checkpoint is None and world.is_main:
        check_output_dir(run_dir, config.train.overwrite, "config.json")  # before the data is loaded
    try:
        trainer = Trainer(config, log, checkpoint, start)
        config = trainer.config  # with the vocabulary size the data gave
        if trainer.step >= trainer.total_steps:
            raise ConfigError(f"the checkpoint is at step {trainer.step} already; ask for more --steps to continue")
        if start is not None:  # the loss the source model has on the new text, before any update
            trainer.info["init_from"]["new_val_loss_before"] = trainer.evaluate().loss
            log(
                f"fine-tuning {start.info['path']}: val loss on the new text before training "
                f"{trainer.info['init_from']['new_val_loss_before']:.4f}"
                + (f"; {len(start.info['added_tokens'])} new token(s) added" if start.info["added_tokens"] else "")
            )
        if world.is_main:
            _open_run_dir(config, run_dir, checkpoint, trainer.provenance, trainer.info)
        distributed.barrier(world)
        log(
            f"model: {config.model.model}, {config.model.layers}x{config.model.hidden}, "
            f"{trainer.engine.num_parameters():,} parameters ({config.model.engine} engine) on {trainer.device}"
            f"{f' x {world.size} processes' if world.active else ''}; run directory {run_dir}"
        )
        reporters = Reporters(config.train.report_to, run_dir, trainer.step, callback, world.is_main)
        try:
            loop = RunLoop(trainer, run_dir, log, reporters)
            loop.run()
            return _finish(trainer, loop, run_dir, on_sample if world.is_main else None)
        finally:
            reporters.close()
    finally:
        distributed.stop(world)


def _open_run_dir(
    config: RunConfig,
    run_dir: Path,
    checkpoint: Checkpoint | None,
    provenance: dict[str, Any],
    info: dict[str, Any] | None = None,
) -> None:
    if checkpoint is None:
        prepare_run_dir(run_dir, config.train.overwrite)
    else:
        clean_stale(run_dir)
        _truncate_metrics(run_dir / "metrics.jsonl", checkpoint.path / "metrics.jsonl")
    write_json(run_dir / "config.json", config_document(config, kind="run", provenance=provenance, **(info or {})))


def _truncate_metrics(run_metrics: Path, checkpoint_metrics: Path) -> None:
    """On resume, the run's metrics go back to the checkpoint's step (later lines would repeat)."""
    if checkpoint_metrics.is_file():
        run_metrics.write_text(checkpoint_metrics.read_text(encoding="utf-8"), encoding="utf-8")
    elif run_metrics.exists():
        run_metrics.unlink()


SAMPLE_TEMPERATURE = 0.8  # below 1: fewer of the unlikely tokens a young model would otherwise mix in


def _sample(
    config: RunConfig, scorer: Any, tokenizer: Tokenizer, on_sample: Callable[[str], None] | None, val_ids: Any
) -> tuple[str | None, str | None]:
    """The short sample a run ends with (SAMPLE_TEMPERATURE, the run's seed), started from the
    first words of a validation line (see prompt_from_text); returns (sample, prompt)."""
    if config.train.sample_tokens == 0:
        return None, None
    prompt = prompt_from_text(tokenizer, val_ids)
    sampling = SamplingConfig(
        max_new_tokens=config.train.sample_tokens, temperature=SAMPLE_TEMPERATURE, seed=config.train.seed
    )
    return generate_text(scorer, tokenizer, prompt, sampling, on_sample), prompt


def _fit_baseline_run(
    config: RunConfig,
    run_dir: Path,
    log: Callable[[str], None],
    on_sample: Callable[[str], None] | None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """n-gram and HMM: fit once on the training split, evaluate, save best/ and last/ alike."""
    from .models.registry import baseline_weights, fit_baseline

    if config.model.model == "hmm":
        require("hmmlearn", "hmm", "the hmm model (--model hmm)")  # before any data is read or file written
    check_output_dir(run_dir, config.train.overwrite, "config.json")
    loaded = load_splits(config.data)
    log(loaded.summary())
    config, tokenizer, splits = loaded.sized(config), loaded.tokenizer, loaded.splits
    prepare_run_dir(run_dir, config.train.overwrite)
    started = time.perf_counter()
    model = fit_baseline(config.model, splits["train"].ids, config.train.seed)
    seconds = time.perf_counter() - started
    provenance = run_provenance(
        config, {name: (len(s.ids), s.chars) for name, s in splits.items()}, "cpu", int(model.num_parameters)
    )
    write_json(run_dir / "config.json", config_document(config, kind="run", provenance=provenance))
    result = evaluate_split(
        model, splits["val"], eval_settings(config.data, config.train.eval_max_tokens), unk_id=tokenizer.unk_id
    )
    tokens_per_s = len(splits["train"].ids) / max(seconds, 1e-9)
    record = {
        "step": 0,
        "train_loss": None,
        "lr": None,
        "grad_norm": None,
        "tokens_per_s": round(tokens_per_s, 1),
        "val_loss": result.loss,
        "val_ppl": result.ppl,
        "val_bpc": result.bpc,
        "elapsed_s": round(seconds, 3),
    }
    (run_dir / "metrics.jsonl").write_text(_json_line(record), encoding="utf-8")
    reporters = Reporters(config.train.report_to, run_dir, 0, callback)
    for kind in ("best", "last"):
        save_checkpoint(
            run_dir / kind,
            config,
            baseline_weights(model),
            tokenizer,
            None,
            run_dir / "metrics.jsonl",
            kind=kind,
            step=0,
            val_loss=result.loss,
            provenance=provenance,
        )
    log(
        f"{config.model.model}: fitted in {seconds:.2f} s, {model.num_parameters:,} stored entries; "
        f"val loss {result.loss:.4f} (ppl {result.ppl:.2f}, bpc {result.bpc:.4f})"
    )
    sample, prompt = _sample(config, model, tokenizer, on_sample, splits["val"].ids)
    final = TrainResult(
        steps=0,
        train_loss=math.nan,
        val_loss=result.loss,
        val_ppl=result.ppl,
        val_bpc=result.bpc,
        best_val_loss=result.loss,
        tokens_per_s=tokens_per_s,
        seconds=seconds,
        checkpoint=str(run_dir),
        best_checkpoint=str(run_dir / "best"),
        device="cpu",
        parameters=int(model.num_parameters),
        sizes={name: len(s.ids) for name, s in splits.items()},
        sample=sample,
        sample_prompt=prompt,
    )
    reporters.record(record)
    if final.sample:
        reporters.sample(final.sample, 0)
    reporters.close()
    write_run_card(run_dir, final.to_dict())
    return final


def _finish(trainer: Trainer, loop: RunLoop, run_dir: Path, on_sample: Callable[[str], None] | None) -> TrainResult:
    result = loop.last_eval or trainer.evaluate("val")
    sample, prompt = (
        _sample(trainer.config, trainer.engine.scorer(), trainer.tokenizer, on_sample, trainer.splits["val"].ids)
        if trainer.world.is_main
        else (None, None)
    )
    final = TrainResult(
        steps=trainer.step,
        train_loss=loop.last_train_loss,
        val_loss=result.loss,
        val_ppl=result.ppl,
        val_bpc=result.bpc,
        best_val_loss=trainer.best_val_loss,
        tokens_per_s=loop.run_tokens_per_s(),
        seconds=trainer.elapsed,
        checkpoint=str(run_dir),
        best_checkpoint=str(run_dir / "best"),
        device=str(trainer.device),
        parameters=trainer.engine.num_parameters(),
        sizes={name: len(s.ids) for name, s in trainer.splits.items()},
        sample=sample,
        sample_prompt=prompt,
    )
    if trainer.world.is_main:
        write_run_card(run_dir, final.to_dict())  # with the sample and the final figures
        if sample:
            loop.reporters.sample(sample, trainer.step)
    return final
