"""The Python API: load a checkpoint, generate text, evaluate it; `train` lives in train.py.

    import rnnkit
    result = rnnkit.train(rnnkit.RunConfig(), steps=200)
    lm = rnnkit.load(result.checkpoint)
    print(lm.generate("The Time ", max_new_tokens=100, temperature=0.8, seed=0))
    print(lm.evaluate(split="test").bpc)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .checkpoint import load_checkpoint
from .config import RunConfig
from .data import TokenSplit
from .errors import ConfigError, DataError, PromptError
from .evaluate import EvalResult, evaluate_split
from .generate import SamplingConfig, generate_text
from .models.base import Scorer
from .models.registry import scorer_from_weights
from .runtime import flush_denormals, resolve_device
from .text.corpora import load_corpus
from .text.tokenizer import Tokenizer

SPLITS = ("train", "val", "test")


class LanguageModel:
    """A trained or fitted model with its tokenizer and configuration: generate and evaluate.

    `scorer` is the model behind the scoring seam (models/base.py); `model` is the object under
    it (an RNNLM, a KneserNeyLM, an HMMLM).
    """

    def __init__(self, scorer: Scorer, model: Any, tokenizer: Tokenizer, config: RunConfig,
                 path: Path | None = None):
        self.scorer, self.model, self.tokenizer, self.config, self.path = scorer, model, tokenizer, config, path

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", engine: str | None = None) -> "LanguageModel":
        """Load on `device`; `engine` ("torch" or "numpy") runs a neural checkpoint in either engine,
        whichever trained it (both use the same parameter names and layouts)."""
        checkpoint = load_checkpoint(path)
        model_config = checkpoint.config.model
        if engine is not None and not model_config.is_baseline:
            model_config = dataclasses.replace(model_config, engine=engine)
        if model_config.engine == "numpy":
            device = "cpu"
        scorer, model = scorer_from_weights(model_config, checkpoint.weights, resolve_device(device))
        return cls(scorer, model, checkpoint.tokenizer, checkpoint.config, checkpoint.path)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str = "auto", engine: str | None = None,
                        revision: str | None = None, cache_dir: str | Path | None = None) -> "LanguageModel":
        """Load a local run or checkpoint directory, or a Hugging Face Hub repo id ("owner/name",
        downloaded through huggingface_hub into its cache) when no such directory exists."""
        from .hub import resolve_pretrained
        return cls.from_checkpoint(resolve_pretrained(name_or_path, revision, cache_dir), device, engine)

    def save_pretrained(self, directory: str | Path, overwrite: bool = True) -> Path:
        """Write this model as a checkpoint directory with a model card (README.md) and a Hugging
        Face `tokenizers` file (hf_tokenizer.json); `from_pretrained` and `rnnkit.load` read it."""
        from .hub import save_pretrained
        return save_pretrained(self, directory, overwrite)

    def push_to_hub(self, repo_id: str, token: str | None = None, private: bool = False,
                    commit_message: str = "Upload rnnkit model") -> str:
        """save_pretrained into a temporary directory and upload it to the Hub model repo `repo_id`
        (needs a token and the network); returns the repo URL."""
        from .hub import push_to_hub
        return push_to_hub(self, repo_id, token, private, commit_message)

    def generate(self, prompt: str = "", max_new_tokens: int = 200, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, do_sample: bool = True,
                 seed: int | None = None, stream: Callable[[str], None] | None = None,
                 beam: int | None = None) -> str:
        """Prompt plus continuation. `do_sample=False` is greedy decoding; `beam=K` is beam search
        with K continuations kept (deterministic); `stream` gets each piece."""
        sampling = SamplingConfig(max_new_tokens, temperature, top_k, top_p, not do_sample, seed, beam)
        with flush_denormals():
            return generate_text(self.scorer, self.tokenizer, prompt, sampling, stream)

    def evaluate(self, data: str | None = None, split: str = "val",
                 split_fractions: tuple[float, float, float] | None = None,
                 max_tokens: int | None = None) -> EvalResult:
        """Loss, perplexity, bits per token and per character on a split of the training data
        (the default) or of other text, tokenized with this model's own vocabulary."""
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        tokens = self._split_tokens(data or self.config.data.data, split, split_fractions)
        if len(tokens.ids) < 2:
            raise DataError(f"the {split} split has fewer than 2 tokens; give --split with a {split} "
                            "fraction, or other --data")
        with flush_denormals():
            return evaluate_split(self.scorer, tokens,
                                  seq_len=max(self.config.data.seq_len, 256),
                                  max_streams=self.config.data.batch_size, max_tokens=max_tokens,
                                  unk_id=self.tokenizer.unk_id)

    def _split_tokens(self, source: str, split: str,
                      fractions: tuple[float, float, float] | None) -> TokenSplit:
        """A split of a text (tokenized with this model's vocabulary) or of a prepared directory."""
        from .text.prepare import is_prepared, load_prepared

        if is_prepared(source):
            tokenizer, arrays, meta = load_prepared(source)
            if tokenizer.to_dict() != self.tokenizer.to_dict():
                raise DataError(f"{source} was prepared with another tokenizer than this model's")
            return TokenSplit(arrays[split], int(meta["chars"][split]))
        corpus = load_corpus(source, fractions or self.config.data.split)
        text = getattr(corpus, split)
        try:
            return TokenSplit(self.tokenizer.encode(text), len(text))
        except PromptError as error:
            raise DataError(f"cannot evaluate this text with this model: {error}") from None


def load(path: str | Path, device: str = "auto", engine: str | None = None) -> LanguageModel:
    """Load a checkpoint directory (or a run directory: its best checkpoint) on any device; a
    Hugging Face Hub repo id ("owner/name") where no such directory exists (see from_pretrained)."""
    return LanguageModel.from_pretrained(path, device, engine)


def evaluate(model: str | Path | LanguageModel, data: str | None = None, split: str = "val",
             **options) -> EvalResult:
    """Evaluate a checkpoint path or a loaded model; see LanguageModel.evaluate."""
    lm = model if isinstance(model, LanguageModel) else load(model, options.pop("device", "auto"),
                                                             options.pop("engine", None))
    return lm.evaluate(data, split, **options)
