"""Where training metrics go besides metrics.jsonl: TensorBoard event files, a user callback,
and a progress bar that shows in Jupyter.

metrics.jsonl is always written (resume, rollback, `plot` and the model card read it);
`--report-to tensorboard` adds RUN/tensorboard/ through torch.utils.tensorboard.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .files import is_figure
from .runtime import require

# metrics.jsonl field -> TensorBoard tag (grouped by what is comparable on one chart)
SCALARS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "train_ppl": "perplexity/train",
    "val_ppl": "perplexity/val",
    "val_bpc": "bpc/val",
    "lr": "learning_rate",
    "grad_norm": "grad_norm/mean",
    "grad_norm_max": "grad_norm/max",
    "tokens_per_s": "tokens_per_s",
}


def parse_report_to(text: str) -> tuple[str, ...]:
    """TrainConfig.report_to (validated there) as names."""
    return tuple(part.strip() for part in text.split(","))


def check_reporters(report_to: str) -> None:
    """Refuse, before any work, a destination whose package is missing (one line naming the extra)."""
    if "tensorboard" in parse_report_to(report_to):
        require("tensorboard", "tensorboard", "--report-to tensorboard")


class TensorBoardReporter:
    """Scalars at every logged step and text samples, in RUN/tensorboard (`tensorboard --logdir RUN`)."""

    def __init__(self, run_dir: Path, first_step: int):
        require("tensorboard", "tensorboard", "--report-to tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        # on resume, events after the checkpoint's step are dropped (they would be repeated)
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=first_step or None)

    def __call__(self, record: dict[str, Any]) -> None:
        step = int(record["step"])
        values = dict(record)
        if is_figure(values.get("train_loss")):
            values["train_ppl"] = math.exp(min(values["train_loss"], 700.0))
        for field, tag in SCALARS.items():
            if is_figure(values.get(field)):
                self.writer.add_scalar(tag, float(values[field]), step)
        self.writer.flush()

    def text(self, tag: str, text: str, step: int) -> None:
        # TensorBoard renders text as Markdown: indent by four spaces to keep it verbatim
        self.writer.add_text(tag, "\n".join("    " + line for line in text.splitlines()), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class Reporters:
    """Every destination of a logged record but metrics.jsonl: TensorBoard, the user's callback."""

    def __init__(
        self,
        report_to: str,
        run_dir: Path,
        first_step: int,
        callback: Callable[[dict[str, Any]], None] | None,
        is_main: bool = True,
    ):
        self.callback = callback
        wants_tensorboard = is_main and "tensorboard" in parse_report_to(report_to)
        self.tensorboard = TensorBoardReporter(run_dir, first_step) if wants_tensorboard else None

    def record(self, record: dict[str, Any]) -> None:
        if self.tensorboard is not None:
            self.tensorboard(record)
        if self.callback is not None:
            self.callback(dict(record))  # a copy: the callback may keep or change it

    def sample(self, text: str, step: int) -> None:
        if self.tensorboard is not None:
            self.tensorboard.text("sample", text, step)

    @property
    def wants_samples(self) -> bool:
        return self.tensorboard is not None

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def in_notebook() -> bool:
    """Running under an IPython kernel (Jupyter, VS Code, Colab), where stderr is no terminal but
    a progress bar still shows."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython() if hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def progress_bar(total: int, initial: int, quiet: bool) -> Any:
    """tqdm on a terminal; tqdm.auto's notebook bar under an IPython kernel; nothing otherwise
    (a log file or a pipe gets the log lines only)."""
    if not quiet and in_notebook():
        from tqdm.auto import tqdm as auto_tqdm

        return auto_tqdm(total=total, initial=initial, unit="step", leave=False)
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        disable=quiet or not sys.stderr.isatty(),
        file=sys.stderr,
        unit="step",
        dynamic_ncols=True,
        leave=False,
    )
