"""The Python API: load a checkpoint, generate text, evaluate it; `train` lives in train.py.

import rnnkit
result = rnnkit.train(rnnkit.RunConfig(), steps=200)
lm = rnnkit.load(result.checkpoint)
print(lm.generate("The Time ", max_new_tokens=100, temperature=0.8, seed=0))
print(lm.evaluate(split="test").bpc)
print(lm.score("It is raining", top_k=3).tokens)       # per-token log-probabilities
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from .checkpoint import load_checkpoint, read_config_document
from .config import ModelConfig, RunConfig
from .errors import ConfigError, DataError, PromptError
from .evaluate import EvalResult, eval_settings, evaluate_split
from .files import resolve_checkpoint
from .generate import RENAMED_GENERATE, SamplingConfig, generate_texts
from .models.base import Scorer
from .models.registry import numpy_supports, scorer_from_weights
from .runtime import flush_denormals, resolve_device, runs_on_cpu
from .score import TextScore, score_texts
from .text.corpora import load_corpus
from .text.tokenizer import Tokenizer

if TYPE_CHECKING:  # data imports torch: loaded where a split is read, not for generate and score
    from .data import TokenSplit

ENGINES = ("auto", "torch", "numpy")  # what `engine` may say besides None (the one that trained it)


class LanguageModel:
    """A trained or fitted model with its tokenizer and configuration: generate and evaluate.

    `scorer` is the model behind the scoring seam (models/base.py); `model` is the object under
    it (an RNNLM, a KneserNeyLM, an HMMLM).
    """

    def __init__(self, scorer: Scorer, model: Any, tokenizer: Tokenizer, config: RunConfig, path: Path | None = None):
        self.scorer, self.model, self.tokenizer, self.config, self.path = scorer, model, tokenizer, config, path

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", engine: str | None = None) -> LanguageModel:
        """Load on `device`; `engine` ("torch" or "numpy") runs a neural checkpoint in either engine,
        whichever trained it (both use the same parameter names and layouts); None (the default)
        in the one that trained it; "auto" in NumPy when it runs on the CPU and the NumPy model
        has what it needs, else in torch (see choose_engine). The NumPy engine and the baselines
        load without importing torch."""
        directory = resolve_checkpoint(path)
        model_config = read_config_document(directory)[0].model
        chosen = choose_engine(model_config, device, engine)
        if not model_config.is_baseline:
            model_config = dataclasses.replace(model_config, engine=chosen)
        numpy_arrays = model_config.is_baseline or chosen == "numpy"
        checkpoint = load_checkpoint(directory, arrays="numpy" if numpy_arrays else "torch")
        # NumPy runs on the CPU; a baseline ignores the device (`cuda` is still refused without a GPU)
        on_cpu = chosen == "numpy" or (model_config.is_baseline and device != "cuda")
        where = "cpu" if on_cpu else resolve_device(device)
        scorer, model = scorer_from_weights(model_config, checkpoint.weights, where)
        return cls(scorer, model, checkpoint.tokenizer, checkpoint.config, checkpoint.path)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        device: str = "auto",
        engine: str | None = None,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
    ) -> LanguageModel:
        """Load a local run or checkpoint directory, or a Hugging Face Hub repo id ("owner/name",
        downloaded through huggingface_hub into its cache) when no such directory exists."""
        from .hub import resolve_pretrained

        return cls.from_checkpoint(resolve_pretrained(name_or_path, revision, cache_dir), device, engine)

    def save_pretrained(self, directory: str | Path, overwrite: bool = True) -> Path:
        """Write this model as a checkpoint directory with a model card (README.md) and a Hugging
        Face `tokenizers` file (hf_tokenizer.json); `from_pretrained` and `rnnkit.load` read it."""
        from .hub import save_pretrained

        return save_pretrained(self, directory, overwrite)

    def push_to_hub(
        self, repo_id: str, token: str | None = None, private: bool = False, commit_message: str = "Upload rnnkit model"
    ) -> str:
        """save_pretrained into a temporary directory and upload it to the Hub model repo `repo_id`
        (needs a token and the network); returns the repo URL."""
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, token, private, commit_message)

    def generate(
        self,
        prompt: str | list[str] = "",
        max_new_tokens: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        do_sample: bool | None = None,
        seed: int | None = None,
        stream: Callable[[str], None] | None = None,
        num_beams: int = 1,
        num_return_sequences: int = 1,
        stop: str | list[str] | tuple[str, ...] = (),
        **renamed: Any,
    ) -> str | list[str] | list[list[str]]:
        """Prompt plus continuation, in Hugging Face's names: `do_sample=False` is greedy decoding,
        `num_beams=K` beam search (deterministic), `num_return_sequences=N` N samples drawn side by
        side (or the N best beams), `stop` a string or list of strings that end a continuation (cut
        before it). `stream` gets each piece of the (first) continuation as it is made.

        One prompt and one sequence give a string; N sequences a list of N strings; a list of
        prompts a list with one such result per prompt. Prompt tokens the vocabulary lacks are
        read as <unk> with a warning (UnknownTokenWarning) naming them.
        """
        refuse_renamed(renamed, RENAMED_GENERATE)
        sampling = SamplingConfig(
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            do_sample,
            seed,
            num_beams,
            num_return_sequences,
            (stop,) if isinstance(stop, str) else tuple(stop),
        )
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ConfigError("prompt must be a string or a non-empty list of strings")
        results: list[Any] = []
        with flush_denormals():
            for text in prompts:
                warn_unknown(self.tokenizer, text)
                texts = generate_texts(self.scorer, self.tokenizer, text, sampling, stream)
                results.append(texts[0] if num_return_sequences == 1 else texts)
        return results[0] if isinstance(prompt, str) else results

    @overload
    def score(
        self, text: str, top_k: int | None = None, batch_size: int | None = None, max_tokens: int | None = None
    ) -> TextScore: ...

    @overload
    def score(
        self, text: list[str], top_k: int | None = None, batch_size: int | None = None, max_tokens: int | None = None
    ) -> list[TextScore]: ...

    def score(
        self,
        text: str | list[str],
        top_k: int | None = None,
        batch_size: int | None = None,
        max_tokens: int | None = None,
    ) -> TextScore | list[TextScore]:
        """Per-token log-probability (nats), surprisal (bits), character span and, with `top_k`, the
        likeliest alternatives, plus totals (nats, bits per char, perplexity), of a text or of each
        of a list of texts (batched: `batch_size` rows per forward pass, default the training batch
        size). The model reads a newline first, as before a prompt; see rnnkit.score."""
        texts = [text] if isinstance(text, str) else text
        if not isinstance(texts, (list, tuple)) or not texts or not all(isinstance(t, str) for t in texts):
            raise ConfigError("score takes a string or a non-empty list of strings")
        with flush_denormals():
            settings = eval_settings(self.config.data, max_tokens)  # the rows evaluate would use
            results = score_texts(
                self.scorer,
                self.tokenizer,
                list(texts),
                top_k,
                seq_len=settings.seq_len,
                max_streams=settings.max_streams,
                batch_rows=batch_size,
                max_tokens=settings.max_tokens,
            )
        return results[0] if isinstance(text, str) else results

    def evaluate(
        self,
        data: str | None = None,
        split: str | None = None,
        fractions: tuple[float, float, float] | None = None,
        max_tokens: int | None = None,
        **renamed: Any,
    ) -> EvalResult:
        """Loss, perplexity, bits per token and per character, with this model's own vocabulary.

        With no `data`: the `split` ("val" by default) of the text it was trained on. With `data`
        (a file, directory or bundled corpus name): all of that text, every token scored after a
        newline exactly as `score` scores it, unless `split` names one of its splits (cut by
        `fractions`, default as trained). A prepared directory is always read by split (default val).
        """
        refuse_renamed(renamed, {"split_fractions": "fractions"})
        from .data import SPLITS

        if split is not None and split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if data is not None and split is None and not _is_prepared(data):
            if fractions is not None:
                raise ConfigError(
                    "fractions cut a text into splits: give split too, or leave both out to evaluate the whole text"
                )
            return self._evaluate_text(whole_text(data), max_tokens)
        split = split or "val"
        tokens = self._split_tokens(data or self.config.data.data, split, fractions)
        if len(tokens.ids) < 2:
            raise DataError(
                f"the {split} split has fewer than 2 tokens; give fractions (--fractions) with a "
                f"larger {split} share, or other data"
            )
        with flush_denormals():
            return evaluate_split(
                self.scorer, tokens, eval_settings(self.config.data, max_tokens), unk_id=self.tokenizer.unk_id
            )

    def _evaluate_text(self, text: str, max_tokens: int | None) -> EvalResult:
        """A whole text as `score` reads it, in evaluate's units."""
        scored = self.score(text, max_tokens=max_tokens)
        totals = scored.totals()
        return EvalResult(
            loss=totals["loss"],
            ppl=totals["perplexity"],
            bits_per_token=totals["bits_per_token"],
            bpc=totals["bits_per_char"],
            tokens=int(totals["tokens"]),
            chars=float(len(scored.text)),
            unk_rate=totals["unk_rate"],
        )

    def _split_tokens(self, source: str, split: str, fractions: tuple[float, float, float] | None) -> TokenSplit:
        """A split of a text (tokenized with this model's vocabulary) or of a prepared directory
        (which must have been prepared with this model's tokenizer)."""
        from .data import load_splits

        data = dataclasses.replace(self.config.data, data=source)
        try:
            loaded = load_splits(data, self.tokenizer, names=(split,), fractions=fractions, require_val=False)
        except PromptError as error:
            raise DataError(f"cannot evaluate this text with this model: {error}") from None
        return loaded.splits[split]


def choose_engine(config: ModelConfig, device: str, engine: str | None) -> str:
    """The engine a neural checkpoint runs in (a baseline's own is returned unchanged).

    None: the one that trained it. "torch" or "numpy": that one ("numpy" refuses a model it cannot
    run, and `device` cuda). "auto": NumPy when the model runs on the CPU and NumPy can run it
    (registry.numpy_supports: not an adaptive softmax head), else torch. Whether `device` "auto"
    means the CPU is decided without importing torch where possible (runtime.runs_on_cpu: torch is
    asked only when it is loaded already or a GPU driver is present), so generating or scoring on
    a machine without a GPU starts without torch.
    """
    if engine is not None and engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)} or None, got {engine!r}")
    if config.is_baseline:
        return config.engine
    if engine == "numpy" and not numpy_supports(config):
        raise ConfigError("the NumPy engine has no adaptive softmax head: run this model with engine torch")
    if engine == "numpy" and device == "cuda":
        raise ConfigError("the NumPy engine runs on the CPU: give device cpu or auto, or engine torch")
    if engine == "auto":
        return "numpy" if numpy_supports(config) and runs_on_cpu(device) else "torch"
    return engine or config.engine


class UnknownTokenWarning(UserWarning):
    """A prompt holds tokens the vocabulary lacks: the model reads them as <unk>."""


def unknown_tokens_note(tokenizer: Tokenizer, prompt: str) -> str | None:
    """A line naming the prompt's tokens that the model will read as <unk>; None when there are none."""
    from .text.tokenizer import name_tokens

    missing = tokenizer.unknown(prompt) if prompt and tokenizer.unk_id is not None else []
    if not missing:
        return None
    return f"the prompt has {len(missing)} token(s) the vocabulary lacks, read as <unk>: {name_tokens(missing)}"


def warn_unknown(tokenizer: Tokenizer, prompt: str) -> None:
    """One warning (UnknownTokenWarning) naming the prompt's tokens that the model will read as <unk>."""
    note = unknown_tokens_note(tokenizer, prompt)
    if note is not None:
        import warnings

        warnings.warn(note, UnknownTokenWarning, stacklevel=3)


def _is_prepared(source: str) -> bool:
    from .text.prepare import is_prepared

    return is_prepared(source)


def whole_text(source: str) -> str:
    """All of a file, of a directory's .txt files (or its train/valid/test files, in that
    order), or of a bundled corpus."""
    corpus = load_corpus(source, (1.0, 0.0, 0.0))
    return corpus.train + corpus.val + corpus.test


def refuse_renamed(given: dict[str, Any], renamed: dict[str, str]) -> None:
    """Old keyword spellings: refused with the new name (one name per concept), never guessed."""
    for old in given:
        if old in renamed:
            raise ConfigError(f"{old!r} is now called {renamed[old]!r}")
        raise ConfigError(f"unknown option {old!r}")


def load(path: str | Path, device: str = "auto", engine: str | None = None) -> LanguageModel:
    """Load a checkpoint directory (or a run directory: its best checkpoint) on any device; a
    Hugging Face Hub repo id ("owner/name") where no such directory exists (see from_pretrained)."""
    return LanguageModel.from_pretrained(path, device, engine)


def evaluate(
    model: str | Path | LanguageModel, data: str | None = None, split: str | None = None, **options
) -> EvalResult:
    """Evaluate a checkpoint path or a loaded model; see LanguageModel.evaluate."""
    lm = (
        model
        if isinstance(model, LanguageModel)
        else load(model, options.pop("device", "auto"), options.pop("engine", None))
    )
    return lm.evaluate(data, split, **options)
