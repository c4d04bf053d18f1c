"""Provenance and the model card: what someone who receives a run directory needs to know.

`run_provenance` is recorded in config.json (the run's and every checkpoint's): the exact command
line, the date, the versions of rnnkit, torch, Python and NumPy, the device, and the data (name or
path, sizes, and a SHA-256 of the training text). `write_run_card` renders RUN/README.md from
config.json and metrics.jsonl; training calls it at every checkpoint save and once more at the
end (then with the sample and final figures). `write_checkpoint_card` does the same for a
single checkpoint directory (save_pretrained). The card starts with the YAML block the Hugging
Face Hub reads (library, tags), so an uploaded directory shows it as the model's page.

Older runs, whose config.json has no provenance, still get a card; the missing facts read
"not recorded".
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any

from . import __version__
from .checkpoint import read_config_document
from .config import RunConfig
from .files import is_figure

NOT_RECORDED = "not recorded"
HASH_BLOCK = 1 << 24


def command_line() -> str:
    """This process's command line as a shell would take it; the rnnkit CLI shows as `rnnkit ...`,
    anything else (a script or notebook calling rnnkit.train) as the Python command that ran."""
    argv = list(sys.argv)
    main = sys.modules.get("__main__")
    main_name = getattr(getattr(main, "__spec__", None), "name", "")
    if main_name == "rnnkit.__main__" or Path(argv[0] if argv else "").name == "rnnkit":
        return shlex.join(["rnnkit", *argv[1:]])
    return shlex.join(["python", *argv]) + "  (through the Python API)"


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def versions(device: Any) -> dict[str, str]:
    import numpy
    import torch

    found = {
        "rnnkit": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "device": str(device),
    }
    if str(device).startswith("cuda") and torch.cuda.is_available():
        found["device_name"] = torch.cuda.get_device_name(torch.device(str(device)))
    return found


def data_fingerprint(data: str, split: tuple[float, float, float]) -> dict[str, str]:
    """SHA-256 of the training text: the train split as UTF-8 (what the model learned from), or
    for a prepared directory the bytes of its train.bin (the text is not kept there)."""
    from .text.corpora import load_corpus
    from .text.prepare import is_prepared

    digest = hashlib.sha256()
    if is_prepared(data):
        path = Path(data) / "train.bin"
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(HASH_BLOCK), b""):
                digest.update(block)
        return {"sha256": digest.hexdigest(), "of": f"the token ids in {path} (prepared data)"}
    digest.update(load_corpus(data, split).train.encode("utf-8"))
    return {"sha256": digest.hexdigest(), "of": "the training split's text, UTF-8"}


def describe_source(data: str) -> str:
    """A bundled corpus by name; a file or directory by its absolute path."""
    from .text.corpora import BUNDLED

    path = Path(data).expanduser()
    if path.exists():
        return str(path.resolve())
    return f"bundled corpus {data!r}" if data in BUNDLED or data == "toy" else data


def run_provenance(
    config: RunConfig,
    sizes: dict[str, tuple[int, int]],
    device: Any,
    parameters: int,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance block of config.json. `sizes`: split -> (tokens, characters). On resume,
    `previous` (the checkpoint's block) keeps the original command and date; this command is
    added to `resumed`."""
    now, command = utc_now(), command_line()
    if previous:
        return {
            **previous,
            "resumed": [*previous.get("resumed", []), {"command": command, "date": now}],
            "versions": versions(device),
        }
    data = config.data
    return {
        "command": command,
        "created": now,
        "versions": versions(device),
        "parameters": parameters,
        "data": {
            "name": Path(data.data).name or data.data,
            "source": describe_source(data.data),
            "tokens": {split: tokens for split, (tokens, _) in sizes.items()},
            "chars": {split: chars for split, (_, chars) in sizes.items()},
            **data_fingerprint(data.data, data.fractions),
        },
    }


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a metrics.jsonl; a torn last line (a killed write) is skipped."""
    records = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def write_run_card(run_dir: Path, final: dict[str, Any] | None = None) -> Path:
    """RUN/README.md from RUN/config.json and RUN/metrics.jsonl (and the final result, if done)."""
    config, info = read_config_document(run_dir)
    card = render_card(config, info, read_metrics(run_dir / "metrics.jsonl"), final, run_dir, is_run=True)
    _write_text(run_dir / "README.md", card)
    return run_dir / "README.md"


def write_checkpoint_card(directory: Path) -> Path:
    config, info = read_config_document(directory)
    card = render_card(config, info, read_metrics(directory / "metrics.jsonl"), None, directory, is_run=False)
    _write_text(directory / "README.md", card)
    return directory / "README.md"


def _write_text(path: Path, text: str) -> None:
    """Beside `path`, then renamed over it (the temporary name is one clean_stale removes)."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def render_card(
    config: RunConfig,
    info: dict[str, Any],
    records: list[dict[str, Any]],
    final: dict[str, Any] | None,
    where: Path,
    is_run: bool,
) -> str:
    provenance = info.get("provenance") or {}
    title = f"{where.name if is_run else where.resolve().name}: {_what(config)}"
    sections = [
        _front_matter(config),
        f"# {title}\n",
        f"Trained with rnnkit {info.get('rnnkit_version', NOT_RECORDED)} (recurrent language models in "
        f"PyTorch and NumPy). "
        f"This card was written {utc_now()} "
        + (
            "at the end of training."
            if final
            else "at a checkpoint save (training may still be running)."
            if is_run
            else "when the model was saved."
        ),
        _model_section(config, provenance, final),
        _data_section(config, provenance),
        _training_section(config, provenance),
        _results_section(records, final, is_run),
        _sample_section(config, final),
        _next_commands(config, where, is_run),
    ]
    return "\n\n".join(section.strip("\n") for section in sections if section) + "\n"


def _what(config: RunConfig) -> str:
    m, d = config.model, config.data
    names = {
        "rnn": "tanh RNN",
        "rnn_relu": "ReLU RNN",
        "gru": "GRU",
        "lstm": "LSTM",
        "ngram": f"order-{m.order} Kneser-Ney n-gram",
        "hmm": f"{m.states}-state HMM",
    }
    unit = {"char": "character-level", "word": "word-level", "bpe": "BPE subword"}.get(d.tokenizer, d.tokenizer)
    return f"a {unit} {names.get(m.model, m.model)} language model"


def _front_matter(config: RunConfig) -> str:
    tags = ["rnnkit", "text-generation", "recurrent-neural-network", config.model.model, config.data.tokenizer]
    return (
        "---\nlibrary_name: rnnkit\npipeline_tag: text-generation\ntags:\n"
        + "".join(f"- {tag}\n" for tag in tags)
        + "---\n"
    )


def _table(rows: list[tuple[str, Any]]) -> str:
    return "| | |\n|---|---|\n" + "".join(f"| {name} | {value} |\n" for name, value in rows)


def _model_section(config: RunConfig, provenance: dict[str, Any], final: dict[str, Any] | None) -> str:
    m = config.model
    parameters = (final or {}).get("parameters") or provenance.get("parameters")
    rows: list[tuple[str, Any]] = [("kind", m.model)]
    if m.is_baseline:
        rows += [("order" if m.model == "ngram" else "states", m.order if m.model == "ngram" else m.states)]
    else:
        rows += [
            ("engine", m.engine),
            ("layers x hidden", f"{m.layers} x {m.hidden}"),
            ("embedding", f"{m.embed}" + (" (one-hot inputs)" if m.embed == 0 else "")),
            ("tied input/output weights", "yes" if m.tie else "no"),
            ("dropout", m.dropout),
            ("output layer", "adaptive softmax" if m.adaptive_softmax else "full softmax"),
        ]
    rows += [
        (
            "parameters" if not m.is_baseline else "stored entries",
            f"{parameters:,}" if isinstance(parameters, int) else NOT_RECORDED,
        ),
        ("tokenizer", f"{config.data.tokenizer}" + (" (lowercased)" if config.data.lowercase else "")),
        ("vocabulary", f"{m.vocab_size:,} tokens"),
    ]
    return "## Model\n\n" + _table(rows)


def _data_section(config: RunConfig, provenance: dict[str, Any]) -> str:
    data = provenance.get("data") or {}
    rows: list[tuple[str, Any]] = [
        ("data", f"`{config.data.data}`"),
        ("source", data.get("source", NOT_RECORDED)),
        ("fractions (train, val, test)", ", ".join(f"{f:g}" for f in config.data.fractions)),
    ]
    for split in ("train", "val", "test"):
        tokens, chars = (data.get("tokens") or {}).get(split), (data.get("chars") or {}).get(split)
        if tokens is not None:
            rows.append((f"{split} split", f"{tokens:,} tokens, {chars:,} characters"))
    rows.append(("SHA-256", f"`{data['sha256']}` ({data['of']})" if "sha256" in data else NOT_RECORDED))
    return "## Data\n\n" + _table(rows)


def _training_section(config: RunConfig, provenance: dict[str, Any]) -> str:
    t, d = config.train, config.data
    found = provenance.get("versions") or {}
    rows: list[tuple[str, Any]] = [
        ("optimizer", f"{t.optimizer}, lr {t.lr:g}, {t.schedule} schedule, clip {t.clip}"),
        ("batches", f"{d.batch_size} x {d.seq_len} tokens ({d.batching})"),
        ("seed", t.seed),
        ("started", provenance.get("created", NOT_RECORDED)),
    ]
    rows += [(name, found.get(name, NOT_RECORDED)) for name in ("rnnkit", "torch", "python", "numpy", "device")]
    if "device_name" in found:
        rows.append(("GPU", found["device_name"]))
    command = provenance.get("command", NOT_RECORDED)
    resumed = "".join(f"\n{entry['command']}   # resumed {entry['date']}" for entry in provenance.get("resumed", []))
    return f"## Training\n\nCommand line:\n\n```bash\n{command}{resumed}\n```\n\n" + _table(rows)


def _results_section(records: list[dict[str, Any]], final: dict[str, Any] | None, is_run: bool) -> str:
    evaluated = [r for r in records if is_figure(r.get("val_loss"))]
    if not evaluated:
        return "## Results\n\nNo evaluation yet.\n"
    best = min(evaluated, key=lambda r: r["val_loss"])
    last = records[-1]
    speeds = [r["tokens_per_s"] for r in records if is_figure(r.get("tokens_per_s"))]
    tokens_per_s = (final or {}).get("tokens_per_s") or (speeds[-1] if speeds else None)
    seconds = (final or {}).get("seconds") or last.get("elapsed_s")
    rows = [
        ("best validation loss", f"{best['val_loss']:.4f} nats/token (step {best.get('step')})"),
        ("perplexity", _number(best.get("val_ppl"), ".2f")),
        ("bits per character", _number(best.get("val_bpc"), ".4f")),
        ("steps", last.get("step")),
        ("training time", f"{seconds:.1f} s" if is_figure(seconds) else NOT_RECORDED),
        ("tokens/s", f"{tokens_per_s:,.0f}" if is_figure(tokens_per_s) else NOT_RECORDED),
    ]
    where = (
        "`best/` is the checkpoint with the best validation loss"
        if is_run
        else "figures of the run this model comes from"
    )
    return f"## Results\n\nOn the validation split ({where}):\n\n" + _table(rows)


def _sample_section(config: RunConfig, final: dict[str, Any] | None) -> str:
    sample = (final or {}).get("sample")
    if not sample:
        return ""
    fence = "````" if "```" in sample else "```"
    return (
        f"## Sample\n\n{config.train.sample_tokens} tokens, temperature 0.8, seed {config.train.seed}:\n\n"
        f"{fence}text\n{sample}\n{fence}\n"
    )


def _next_commands(config: RunConfig, where: Path, is_run: bool) -> str:
    path = shlex.quote(str(where))
    lines = [
        f"rnnkit generate {path} --prompt 'The ' --temperature 0.8 --max-new-tokens 200",
        f"rnnkit evaluate {path} --split test",
        f"rnnkit score {path} --text 'Some text to score.'",
    ]
    if is_run:
        lines.append(f"rnnkit plot {path} --metric val_loss")
        if not config.model.is_baseline:
            steps = (config.train.steps or 1000) * 2
            lines.append(f"rnnkit train --resume {path} --steps {steps}")
    if not config.model.is_baseline:
        lines.append(f"rnnkit export {path} --format onnx --graph step")
    return (
        "## Next commands\n\n```bash\n"
        + "\n".join(lines)
        + "\n```\n\n"
        + "In Python: `lm = rnnkit.load("
        + repr(str(where))
        + ")`, then `lm.generate(...)`, `lm.evaluate()`.\n"
    )


def _number(value: Any, spec: str) -> str:
    return format(value, spec) if is_figure(value) else NOT_RECORDED
