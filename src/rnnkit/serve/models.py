"""What `rnnkit serve` loads and the limits it keeps: each run once, under a short name."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..config import check_int
from ..errors import ConfigError

DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServeOptions:
    """The server's address and its limits (each an option of `rnnkit serve`; safe defaults)."""

    host: str = DEFAULT_HOST
    port: int = 8000
    workers: int = 1  # server processes, each loading every model (batching happens within one)
    max_prompt_chars: int = 20_000
    max_new_tokens: int = 2_000
    max_return_sequences: int = 8
    max_beams: int = 16
    max_concurrent: int = 64  # generations in flight per model; one more is answered 503
    max_batch: int = 64  # requests decoded together in one forward pass (1: no batching)
    max_score_chars: int = 100_000  # of a text to score or inspect
    max_inspect_tokens: int = 5_000  # tokens of a text the unit view reads

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError(f"--host must be a host name or address, got {self.host!r}")
        check_int("--port", self.port, 1, 65535)
        check_int("--workers", self.workers, 1, 64)
        for name in (
            "max_prompt_chars",
            "max_new_tokens",
            "max_return_sequences",
            "max_beams",
            "max_concurrent",
            "max_batch",
            "max_score_chars",
            "max_inspect_tokens",
        ):
            check_int("--" + name.replace("_", "-"), getattr(self, name), 1, 100_000_000)

    @property
    def max_body_bytes(self) -> int:
        """Request bodies above this are refused unread (413): 4 bytes per character of the
        longest text allowed (UTF-8's worst case; JSON escapes aside), plus room for the rest."""
        return 4 * max(self.max_prompt_chars, self.max_score_chars) + 65_536

    def limits(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k.startswith("max_")}

    @property
    def public(self) -> bool:
        """Bound to every interface (or a non-loopback address): reachable from other machines."""
        return self.host not in ("127.0.0.1", "localhost", "::1")


@dataclass
class ServedModel:
    """A loaded model under its name, with what /v1/models says about it."""

    name: str
    path: Path
    lm: Any  # api.LanguageModel
    _inspectable: Any = field(default=None, repr=False)

    @cached_property
    def info(self) -> dict[str, Any]:
        """What /v1/models says about this model (computed once, when it is loaded)."""
        config = self.lm.config
        model = config.model
        neural = not model.is_baseline
        signals = _signals(model.model) if neural else []  # none for a kind inspect cannot recompute
        return {
            "name": self.name,
            "path": str(self.path),
            "kind": model.model,
            "engine": model.engine if neural else "baseline",
            "layers": model.layers if neural else None,
            "hidden": model.hidden if neural else None,
            "embed": model.embed if neural else None,
            "order": model.order if model.model == "ngram" else None,
            "vocab_size": model.vocab_size,
            "tokenizer": getattr(self.lm.tokenizer, "kind", "bpe"),
            "parameters": _parameters(self.lm),
            "data": config.data.data,
            "results": training_results(self.path),
            "inspectable": bool(signals) and model.gru_form != "cho",
            "signals": signals,
        }

    def unit_view(self, text: str, layer: int, signal: str, unit: int | None, options: ServeOptions) -> dict[str, Any]:
        """The text's tokens coloured by one unit: its value after each token, and the units of
        this layer and signal whose values vary most over the text (to choose from)."""
        from ..studies.inspect import load_inspectable, unit_values

        if self._inspectable is None:
            self._inspectable = load_inspectable(self.path)[1]  # the torch model, on the CPU (once)
        model = self._inspectable
        pieces, values = unit_values(model, self.lm.tokenizer, text, layer, signal, options.max_inspect_tokens)
        hidden = values.shape[1]
        spread = values.std(axis=0)
        varied = np.argsort(-spread, kind="stable")[:12]
        if unit is None:
            unit = int(varied[0])
        if not 0 <= unit < hidden:
            raise ConfigError(f"unit {unit} is out of range: this layer has units 0..{hidden - 1}")
        return {
            "model": self.name,
            "layer": layer,
            "signal": signal,
            "unit": unit,
            "hidden": hidden,
            "layers": model.config.layers,
            "tokens": len(pieces),
            "pieces": pieces,
            "values": [round(float(v), 4) for v in values[:, unit]],
            "varied_units": [
                {
                    "unit": int(u),
                    "std": round(float(spread[u]), 4),
                    "min": round(float(values[:, u].min()), 4),
                    "max": round(float(values[:, u].max()), 4),
                }
                for u in varied
            ],
        }


def _parameters(lm: Any) -> int | None:
    counter = getattr(lm.model, "num_parameters", None)
    return int(counter()) if callable(counter) else None


def _signals(kind: str) -> list[str]:
    from ..studies.signals import SIGNALS

    return list(SIGNALS.get(kind, ()))


def training_results(path: Path) -> dict[str, Any]:
    """The best validation figures of the run behind a checkpoint (its metrics.jsonl), if any."""
    from ..files import is_figure
    from ..modelcard import read_metrics

    evaluated = [r for r in read_metrics(path / "metrics.jsonl") if is_figure(r.get("val_loss"))]
    if not evaluated:
        return {}
    best = min(evaluated, key=lambda r: r["val_loss"])
    return {k: best[k] for k in ("step", "val_loss", "val_ppl", "val_bpc") if k in best}


def model_name(run: str, path: Path) -> str:
    """A short name for a served run: its directory's name ("runs/lstm/best" is "lstm"), or for a
    Hub id ("owner/name", downloaded into a cache directory named by a hash) the repo's name."""
    if not Path(run).expanduser().exists():
        return run.rstrip("/").rpartition("/")[2] or run
    return path.parent.name if path.name in ("best", "last") else path.name


def load_models(runs: list[str], device: str = "auto", engine: str | None = None) -> dict[str, Any]:
    """{name: ServedModel} for each run or checkpoint directory (or Hub id), loaded once. A name
    is the run directory's name ("runs/lstm/best" is "lstm"); repeats get "-2", "-3"."""
    from ..api import LanguageModel

    if not runs:
        raise ConfigError("serve needs at least one run or checkpoint directory")
    models: dict[str, ServedModel] = {}
    for run in runs:
        lm = LanguageModel.from_pretrained(run, device=device, engine=engine)
        path = Path(lm.path) if lm.path is not None else Path(run)
        base = model_name(run, path)
        name, n = base, 2
        while name in models:
            name, n = f"{base}-{n}", n + 1
        models[name] = ServedModel(name, path, lm)
        models[name].info  # noqa: B018 (computed now: the first request should not wait for it)
    return models
