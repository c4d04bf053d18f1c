"""Export a trained recurrent model as a graph other runtimes can run: ONNX, TorchScript or a
torch.export program (.pt2).

The graph is the model's inference path alone, with the recurrent state made explicit:

    (input_ids, h[, c])  ->  (logits, h_out[, c_out])

    window graph: input_ids (batch, seq) int64   -> logits (batch, seq, vocab)  one score row per input token
    step graph:   input_ids (batch,)     int64   -> logits (batch, vocab)       the next token's scores
    h, c:         (layers, batch, hidden) float32; zeros before the first token; c for the LSTM only

Feeding h_out/c_out back as the next call's h/c carries the text across windows (or steps), as
`rnnkit generate` and `evaluate` do. Beside the graph go the run's `tokenizer.json`, Hugging Face
`tokenizers` files where they exist (see hub.py), and GRAPH.FORMAT.json: what each input and
output means, the vocabulary (char and word models) and the parity measured at export.

RNNLM.forward cannot be traced as it is (it returns `loss=None`, and reads its config at run
time), so `RecurrentGraph` below is the few lines of it that inference needs.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import __version__
from .checkpoint import Checkpoint, load_checkpoint
from .errors import ConfigError, OutputExistsError
from .files import write_json
from .models.torch_lm import RNNLM
from .runtime import require

FORMATS = {"onnx": ".onnx", "torchscript": ".ts.pt", "pt2": ".pt2"}
GRAPHS = ("window", "step")
DEFAULT_OPSET = 17  # LSTM/GRU/RNN ops exist from opset 7; 17 runs in every onnxruntime since 1.11
MIN_OPSET, MAX_OPSET = 9, 20  # what torch's TorchScript-based ONNX exporter writes
PARITY_TOLERANCE = 1e-5


class RecurrentGraph(nn.Module):
    """An RNNLM's inference path with the state as plain tensors in and out (eval mode: no dropout).

    step=False: ids (N, T) -> logits (N, T, V);  step=True: ids (N,) -> logits (N, V).
    With an adaptive-softmax head the `logits` are log-probabilities (the same softmax)."""

    def __init__(self, model: RNNLM, step: bool):
        super().__init__()
        self.model, self.step = model.eval(), step
        self.lstm = model.config.model == "lstm"
        self.adaptive = model.config.adaptive_softmax

    def forward(
        self, input_ids: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        ids = input_ids.unsqueeze(1) if self.step else input_ids
        carried = (h, c) if self.lstm else h
        out, new_state = self.model.rnn(self.model.inputs(ids), carried)
        if self.adaptive:
            head: Any = self.model.head  # an AdaptiveLogSoftmaxWithLoss here
            logits = head.log_prob(out.reshape(-1, out.size(-1))).view(out.size(0), out.size(1), -1)
        else:
            logits = self.model.head(out)
        if self.step:
            logits = logits[:, 0]
        return (logits, *new_state) if self.lstm else (logits, new_state)


def state_names(lstm: bool) -> tuple[list[str], list[str]]:
    return (["h", "c"], ["h_out", "c_out"]) if lstm else (["h"], ["h_out"])


def export_model(
    source: str | Path,
    format: str = "onnx",
    out: str | Path | None = None,
    opset: int | None = None,
    graph: str = "window",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Export the run's (or checkpoint's) model; returns the description written beside it."""
    _check_options(format, graph, opset)
    checkpoint = load_checkpoint(source)
    model = _torch_model(checkpoint)
    out_dir = Path(out) if out is not None else checkpoint.path.parent / "export"
    target = out_dir / f"{graph}{FORMATS[format]}"
    description_path = out_dir / f"{graph}.{format}.json"
    for path in (target, description_path):
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path} exists; give --overwrite to replace it, or another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    wrapper = RecurrentGraph(model, step=graph == "step")
    writers = {"onnx": _write_onnx, "torchscript": _write_torchscript, "pt2": _write_pt2}
    opset = opset or DEFAULT_OPSET
    _write_via_temporary(target, lambda path: writers[format](wrapper, path, opset))
    tokenizer_files = _write_tokenizer_files(checkpoint, out_dir)
    description = describe(checkpoint, format, graph, target, opset if format == "onnx" else None, tokenizer_files)
    description["parity"] = parity_check(model, target, format, graph)
    write_json(description_path, description)
    description["directory"], description["description"] = str(out_dir), description_path.name
    return description


def _check_options(format: str, graph: str, opset: int | None) -> None:
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}; got {format!r}")
    if graph not in GRAPHS:
        raise ConfigError(
            f"--graph must be window (a whole window of tokens per call) or step (one token per call); got {graph!r}"
        )
    if format == "pt2" and graph == "window":
        raise ConfigError(
            "torch.export fixes the sequence length of PyTorch's recurrent layers, so a pt2 window "
            "graph would take one window length only: use --graph step with pt2 (one token per call, "
            "any batch), or --format onnx or torchscript for whole windows"
        )
    if opset is not None:
        if format != "onnx":
            raise ConfigError("--opset is for --format onnx only")
        if not MIN_OPSET <= opset <= MAX_OPSET:
            raise ConfigError(
                f"--opset must be between {MIN_OPSET} and {MAX_OPSET} (what torch's ONNX exporter writes); got {opset}"
            )


def _torch_model(checkpoint: Checkpoint) -> RNNLM:
    """The checkpoint's network as a torch RNNLM on the CPU; a NumPy-engine checkpoint has the same
    weights under the same names, so it exports too. Baselines have no graph to export."""
    config = checkpoint.config.model
    if config.is_baseline:
        raise ConfigError(
            f"a {config.model} model is a table of counts or probabilities, not a network: "
            "there is no graph to export; rnn, rnn_relu, gru and lstm runs (either engine) export"
        )
    import dataclasses

    from .models.torch_lm import import_weights

    model = RNNLM(dataclasses.replace(config, engine="torch"))
    import_weights(model, checkpoint.weights)
    model.eval()
    return model


def example_inputs(model: RNNLM, graph: str, batch: int = 2, seq: int = 3, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Token ids and a random state of the graph's shapes (random, not zeros: a state that is
    ignored by mistake would then show in the parity check)."""
    generator = torch.Generator().manual_seed(seed)
    c = model.config
    shape = (batch,) if graph == "step" else (batch, seq)
    ids = torch.randint(0, c.vocab_size, shape, generator=generator)
    states = [
        torch.randn(c.layers, batch, c.hidden, generator=generator) * 0.5 for _ in range(2 if c.model == "lstm" else 1)
    ]
    return (ids, *states)


def _write_via_temporary(target: Path, write: Any) -> None:
    """Write next to `target` and rename it into place: a failed export leaves no half file."""
    temporary = target.with_name(f".tmp-{target.name}")  # keeps the suffix torch.export.save checks
    try:
        write(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def _quietly() -> Iterator[None]:
    """The exporters warn about their own deprecations and tracing details that do not apply
    here (no data-dependent control flow in RecurrentGraph); the parity check is the real test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _write_onnx(wrapper: RecurrentGraph, path: Path, opset: int) -> None:
    """torch's TorchScript-based exporter: it writes the ONNX LSTM/GRU/RNN operators with dynamic
    batch and sequence axes in about a second and needs only the `onnx` package (the newer
    torch.export-based one takes ~10x longer here and fixed the output's sequence length)."""
    require("onnx", "export", "rnnkit export --format onnx")
    inputs = example_inputs(wrapper.model, "step" if wrapper.step else "window")
    state_in, state_out = state_names(wrapper.lstm)
    token_axes = {0: "batch"} if wrapper.step else {0: "batch", 1: "seq"}
    axes = {"input_ids": token_axes, "logits": token_axes, **{name: {1: "batch"} for name in state_in + state_out}}
    with _quietly(), torch.no_grad():
        torch.onnx.export(
            wrapper,
            inputs,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["input_ids", *state_in],
            output_names=["logits", *state_out],
            dynamic_axes=axes,
        )


def _write_torchscript(wrapper: RecurrentGraph, path: Path, opset: int) -> None:
    inputs = example_inputs(wrapper.model, "step" if wrapper.step else "window")
    with _quietly(), torch.no_grad():
        traced = torch.jit.trace(wrapper, inputs, check_trace=False)
        torch.jit.save(traced, str(path))


def _write_pt2(wrapper: RecurrentGraph, path: Path, opset: int) -> None:
    """The step graph only (see _check_options): dynamic batch."""
    inputs = example_inputs(wrapper.model, "step")
    dynamic = torch.export.Dim.DYNAMIC
    shapes = ({0: dynamic}, *({1: dynamic} for _ in inputs[1:]))
    with _quietly(), torch.no_grad():
        program = torch.export.export(wrapper, inputs, dynamic_shapes=shapes)
        torch.export.save(program, str(path))


def load_exported(path: Path, format: str) -> Any:
    """A callable (input_ids, *state) -> list of NumPy arrays, for any exported format."""
    if format == "onnx":
        require("onnxruntime", "export", "running an ONNX export")
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return lambda *arrays: session.run(None, dict(zip(names, (np.asarray(a) for a in arrays), strict=True)))
    with _quietly():  # torch 2.13 deprecates torch.jit.load (the format stays what the user asked for)
        module = torch.jit.load(str(path)) if format == "torchscript" else torch.export.load(str(path)).module()

    def run(*arrays: Any) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in module(*(torch.as_tensor(a) for a in arrays))]

    return run


def parity_check(model: RNNLM, path: Path, format: str, graph: str) -> dict[str, Any] | None:
    """Run the exported file and the torch model on the same text, 3 calls with the state carried
    (window graph: windows of 4 and 1 tokens too, batch 3 — shapes the export never saw), and
    return the largest absolute differences. None for ONNX when onnxruntime is missing."""
    if format == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return None
    run = load_exported(path, format)
    wrapper = RecurrentGraph(model, step=graph == "step")
    lengths = (1, 1, 1) if graph == "step" else (5, 4, 1)
    ids = example_inputs(model, "window", batch=3, seq=sum(lengths), seed=1)[0]
    state = [s.numpy() for s in example_inputs(model, graph, batch=3, seed=2)[1:]]
    worst = {"logits": 0.0, "state": 0.0}
    start = 0
    for length in lengths:
        window = ids[:, start] if graph == "step" else ids[:, start : start + length]
        start += length
        got = run(window.numpy(), *state)
        with torch.no_grad():
            expected = [t.numpy() for t in wrapper(window, *(torch.from_numpy(s) for s in state))]
        worst["logits"] = max(worst["logits"], float(np.abs(got[0] - expected[0]).max()))
        state_error = max(float(np.abs(g - e).max()) for g, e in zip(got[1:], expected[1:], strict=True))
        worst["state"] = max(worst["state"], state_error)
        state = got[1:]  # carry the exported graph's own state, as a user would
    return {
        "max_abs_diff_logits": worst["logits"],
        "max_abs_diff_state": worst["state"],
        "calls": len(lengths),
        "batch": 3,
        "within_1e-5": max(worst.values()) <= PARITY_TOLERANCE,
    }


def _write_tokenizer_files(checkpoint: Checkpoint, out_dir: Path) -> dict[str, str]:
    """The run's own tokenizer.json, and a Hugging Face `tokenizers` file where one exists."""
    files = {"rnnkit": "tokenizer.json"}
    (out_dir / "tokenizer.json").write_text(checkpoint.tokenizer.to_json(), encoding="utf-8")
    from .hub import write_hf_tokenizer

    if write_hf_tokenizer(checkpoint.tokenizer, out_dir / "hf_tokenizer.json"):
        files["huggingface"] = "hf_tokenizer.json"
    return files


def describe(
    checkpoint: Checkpoint, format: str, graph: str, target: Path, opset: int | None, tokenizer_files: dict[str, str]
) -> dict[str, Any]:
    """What a user of the exported file needs to know, without rnnkit."""
    c, tokenizer = checkpoint.config.model, checkpoint.tokenizer
    token_shape = ["batch"] if graph == "step" else ["batch", "seq"]
    state_in, state_out = state_names(c.model == "lstm")
    state_shape = [c.layers, "batch", c.hidden]
    meanings = {"h": "hidden state of each layer", "c": "LSTM cell state of each layer"}
    inputs: list[dict[str, Any]] = [
        {
            "name": "input_ids",
            "dtype": "int64",
            "shape": token_shape,
            "meaning": "token ids (see vocab / the tokenizer files)"
            + (", one per sequence: the token just read" if graph == "step" else ", a window per sequence"),
        }
    ]
    inputs += [
        {
            "name": name,
            "dtype": "float32",
            "shape": state_shape,
            "meaning": f"{meanings[name]} before this call: zeros at the start of a text, "
            f"else the previous call's {name}_out",
        }
        for name in state_in
    ]
    score = "log-probabilities (adaptive softmax)" if c.adaptive_softmax else "unnormalised scores (softmax them)"
    outputs: list[dict[str, Any]] = [
        {
            "name": "logits",
            "dtype": "float32",
            "shape": token_shape + ["vocab"],
            "meaning": f"{score} of the next token after each input token"
            + (" (the one just read)" if graph == "step" else ""),
        }
    ]
    outputs += [
        {
            "name": name,
            "dtype": "float32",
            "shape": state_shape,
            "meaning": f"{meanings[name[0]]} after this call: pass it as {name[0]} to the next call",
        }
        for name in state_out
    ]
    document: dict[str, Any] = {
        "format": format,
        "file": target.name,
        "graph": graph,
        "graph_meaning": (
            "step: one token per sequence per call"
            if graph == "step"
            else "window: a whole window of tokens per sequence per call (any length)"
        ),
        "opset": opset,
        "model": c.model,
        "layers": c.layers,
        "hidden": c.hidden,
        "embed": c.embed,
        "tie": c.tie,
        "vocab_size": c.vocab_size,
        "inputs": inputs,
        "outputs": outputs,
        "dynamic_axes": ["batch"] if graph == "step" else ["batch", "seq"],
        "tokenizer": {"kind": tokenizer.kind, "files": tokenizer_files, "start_id": int(tokenizer.start_id())},
        "source": str(checkpoint.path),
        "step": checkpoint.info.get("step"),
        "val_loss": checkpoint.info.get("val_loss"),
        "rnnkit_version": __version__,
        "torch_version": torch.__version__,
        "size_bytes": target.stat().st_size,
    }
    if tokenizer.kind in ("char", "word"):
        # decoding by table: char tokens join with "", word tokens with spaces (rnnkit's own
        # spacing rules are in tokenizer.json); BPE needs hf_tokenizer.json (byte-level merges)
        document["tokenizer"]["vocab"] = list(tokenizer.vocab.itos)
    return document


def describe_json(document: dict[str, Any]) -> str:
    """The export summary the CLI prints: everything but the (long) vocabulary."""
    shown = {**document, "tokenizer": {k: v for k, v in document["tokenizer"].items() if k != "vocab"}}
    return json.dumps(shown)
