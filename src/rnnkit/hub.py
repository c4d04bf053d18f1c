"""Hugging Face-style sharing: save_pretrained, from_pretrained (a directory or a Hub repo id),
push_to_hub, and tokenizer files that Hugging Face `tokenizers` can load.

A saved directory is an ordinary rnnkit checkpoint (config.json, model.safetensors,
tokenizer.json), so everything that reads checkpoints reads it; beside those go README.md (the
model card) and, for char, word and BPE models, `hf_tokenizer.json`: the same tokenization in
the `tokenizers` library's own format (`tokenizers.Tokenizer.from_file`). rnnkit's tokenizer.json
keeps its name and format, so older rnnkit versions still load a saved model.

The Hub is reached through `huggingface_hub`'s file helpers (`snapshot_download`, `HfApi`), which
come with `tokenizers`; nothing here touches the network unless a repo id is given.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checkpoint import save_checkpoint
from .errors import CheckpointError, ConfigError, OutputExistsError
from .files import is_checkpoint

if TYPE_CHECKING:  # torch is imported where weights are written: loading a model must not wait for it
    import torch

    from .text.tokenizer import Tokenizer

# `lm` below is an api.LanguageModel (scorer, model, tokenizer, config, path); it is not imported
# here: api imports this module, and the two must not import each other
LanguageModel = Any

HF_TOKENIZER = "hf_tokenizer.json"
# the files a saved model needs from the Hub (metrics and trainer state stay behind)
HUB_FILES = ["config.json", "model.safetensors", "tokenizer.json", HF_TOKENIZER, "README.md"]
# owner/name as the Hub spells repo ids (letters, digits, -, _, .); also a plain name
REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")
# wordscan.WORD_PATTERN, split in two for Oniguruma (the `tokenizers` regex engine): drop spaces
# other than newlines, then isolate the pattern's tokens inside what is left
SPACES_BUT_NEWLINE = r"[^\S\n]+"


class HubError(CheckpointError):
    """The Hugging Face Hub refused or could not be reached (no token, no network, no such repo)."""


def hf_tokenizer(tokenizer: Tokenizer) -> Any:
    """The tokenizer as a `tokenizers.Tokenizer` that encodes the same ids, or None.

    BPE models are one already. Char and word vocabularies become a WordLevel model (token ->
    id) behind a pre-tokenizer that splits as rnnkit does: one piece per code point (char), or
    WORD_PATTERN's tokens (word). Known difference: with --lowercase, the few characters whose
    Unicode lowercase adds a combining mark (the Turkish 'İ') may split differently."""
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers.models import WordLevel

    from .text.wordscan import WORD_PATTERN

    if tokenizer.kind == "bpe":
        return HFTokenizer.from_str(tokenizer.hf.to_str())  # type: ignore[attr-defined]
    vocab = tokenizer.vocab
    hf = HFTokenizer(WordLevel(vocab=dict(vocab.stoi), unk_token=vocab.itos[0] if vocab.has_unk else None))
    if tokenizer.kind == "char":
        hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        hf.decoder = decoders.Fuse()  # characters join with nothing between them
    else:
        hf.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(SPACES_BUT_NEWLINE), behavior="removed"),
                pre_tokenizers.Split(Regex(WORD_PATTERN.pattern), behavior="isolated"),
            ]
        )
    if tokenizer.lowercase:
        hf.normalizer = normalizers.Lowercase()
    return hf


def write_hf_tokenizer(tokenizer: Tokenizer, path: Path) -> bool:
    hf = hf_tokenizer(tokenizer)
    if hf is None:
        return False
    hf.save(str(path))
    return True


def model_weights(lm: LanguageModel) -> dict[str, torch.Tensor]:
    """The loaded model's named weights as a checkpoint stores them (any kind, either engine)."""
    import numpy as np
    import torch

    from .models.torch_lm import TorchScorer, export_weights

    if isinstance(lm.scorer, TorchScorer):  # any torch kind: a tied head is stored once, as a checkpoint does
        return {name: t.detach().cpu() for name, t in export_weights(lm.scorer.model).items()}
    return {name: torch.from_numpy(np.ascontiguousarray(array)) for name, array in lm.model.state_dict().items()}


def save_pretrained(lm: LanguageModel, directory: str | Path, overwrite: bool = True) -> Path:
    """Write `lm` as a checkpoint directory plus model card and Hugging Face tokenizer file.

    Like Hugging Face's save_pretrained, an existing saved model there is replaced; a directory
    holding anything else is refused, so no user file is ever deleted."""
    target = Path(directory).expanduser()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        if not target.is_dir() or not is_checkpoint(target):
            raise OutputExistsError(
                f"{target} exists and is not an rnnkit checkpoint; save to a new or empty directory"
            )
        if not overwrite:
            raise OutputExistsError(f"{target} holds a saved model already; pass overwrite=True to replace it")
    info = _saved_info(lm.path)
    metrics = lm.path / "metrics.jsonl" if lm.path is not None else None
    save_checkpoint(target, lm.config, model_weights(lm), lm.tokenizer, None, metrics, **{"kind": "pretrained", **info})
    write_hf_tokenizer(lm.tokenizer, target / HF_TOKENIZER)
    from .modelcard import write_checkpoint_card

    write_checkpoint_card(target)
    return target


def _saved_info(path: Path | None) -> dict[str, Any]:
    """What the loaded checkpoint's config.json said besides the config (step, val_loss,
    provenance), so the saved copy keeps it."""
    if path is None or not (path / "config.json").is_file():
        return {}
    from .checkpoint import read_config_document

    _, info = read_config_document(path)
    return {k: v for k, v in info.items() if k not in ("format", "format_version", "rnnkit_version", "kind")}


def looks_like_repo_id(name: str) -> bool:
    return bool(REPO_ID.match(name)) and not name.startswith((".", "~"))


def resolve_pretrained(
    name_or_path: str | Path, revision: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """A local directory as it is; otherwise a Hub repo id, downloaded (or taken from the cache)."""
    path = Path(name_or_path).expanduser()
    if path.exists() or not looks_like_repo_id(str(name_or_path)):
        return path  # load_checkpoint says what is wrong with it, if anything
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(str(name_or_path), revision=revision, cache_dir=cache_dir, allow_patterns=HUB_FILES)
        )
    except Exception as error:  # the library raises many kinds (HTTP, offline, not found, ...)
        raise HubError(
            f"no such checkpoint: {name_or_path} is not a local directory, and as a Hugging Face Hub "
            f"repo id it failed ({type(error).__name__}: {_first_line(error)})"
        ) from None


def push_to_hub(
    lm: LanguageModel,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload rnnkit model",
) -> str:
    """Save `lm` (save_pretrained) and upload it to the model repo `repo_id`; returns its URL.
    Needs a token (argument, HF_TOKEN, or `hf auth login`) and the network."""
    from huggingface_hub import HfApi, get_token

    if not looks_like_repo_id(repo_id) or "/" not in repo_id:
        raise ConfigError(f"a Hub repo id looks like owner/name; got {repo_id!r}")
    token = token or get_token()
    if not token:
        raise HubError("push_to_hub needs a Hugging Face token: pass token=..., set HF_TOKEN, or run `hf auth login`")
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="rnnkit-push-") as folder:
        save_pretrained(lm, Path(folder) / "model")
        try:
            url = api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
            api.upload_folder(
                repo_id=repo_id,
                folder_path=str(Path(folder) / "model"),
                repo_type="model",
                commit_message=commit_message,
            )
        except Exception as error:
            raise HubError(f"could not upload to {repo_id} ({type(error).__name__}: {_first_line(error)})") from None
    return str(url)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no message"
