"""`rnnkit generate RUN -i`: a prompt loop that keeps the model loaded.

Each line read is a prompt; its continuation is streamed, then a newline. Lines starting with
':' change the settings for the prompts that follow. The loop reads lines until end of input,
so it works the same in a terminal and in a pipe (`printf 'ROMEO:\n:seed 3\nJULIET:\n' | rnnkit
generate RUN -i`); in a terminal a "> " prompt is shown on stderr, never mixed into the text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TextIO

from .errors import ConfigError, RnnkitError

# command -> (SamplingConfig field, how to read the value, help)
SETTINGS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "temperature": ("temperature", float, "softmax temperature, e.g. :temperature 0.7"),
    "top-p": ("top_p", lambda v: None if v == "none" else float(v), "nucleus sampling, e.g. :top-p 0.9 (none: off)"),
    "top-k": ("top_k", lambda v: None if v == "none" else int(v), "sample from the K likeliest, e.g. :top-k 40"),
    "seed": ("seed", lambda v: None if v == "none" else int(v), "same seed, same text for a prompt (none: random)"),
    "max-new-tokens": ("max_new_tokens", int, "tokens per continuation, e.g. :max-new-tokens 100"),
    "greedy": ("do_sample", lambda v: {"on": False, "off": None}[v], "always the likeliest token: :greedy on|off"),
}
HELP = "\n".join(
    [f":{name} VALUE  {help_text}" for name, (_, _, help_text) in SETTINGS.items()]
    + [":show  the current settings", ":help  this list", ":quit  leave (end of input does too)"]
)


def prompt_loop(lm: Any, sampling: Any, lines: TextIO, write: Callable[[str], None], say: Callable[[str], None]) -> int:
    """Read prompts and commands from `lines` until :quit or end of input; `write` gets the
    generated text, `say` the loop's own messages (help, settings, errors)."""
    tty = lines.isatty()
    while True:
        if tty:
            say_inline(say, "> ")
        line = lines.readline()
        if not line:
            return 0
        line = line.rstrip("\n")
        if line.startswith(":"):
            if line.strip() in (":quit", ":q", ":exit"):
                return 0
            sampling = command(line, sampling, say)
            continue
        try:
            texts = lm.generate(
                line, stream=write if sampling.num_return_sequences == 1 else None, **dataclasses.asdict(sampling)
            )
        except RnnkitError as error:
            say(f"error: {error}")
            continue
        if sampling.num_return_sequences > 1:
            write("\n----\n".join(texts))
        write("\n")


def say_inline(say: Callable[[str], None], text: str) -> None:
    import sys

    print(text, end="", file=sys.stderr, flush=True)


def command(line: str, sampling: Any, say: Callable[[str], None]) -> Any:
    """Apply one ':name value' line to the settings; a bad one is reported and changes nothing."""
    name, _, value = line[1:].strip().partition(" ")
    value = value.strip()
    if name == "help":
        say(HELP)
        return sampling
    if name == "show":
        say(" ".join(f"{key}={val!r}" for key, val in dataclasses.asdict(sampling).items()))
        return sampling
    if name not in SETTINGS:
        say(f"unknown command :{name} (:help lists them)")
        return sampling
    field, read, help_text = SETTINGS[name]
    try:
        updated = dataclasses.replace(sampling, **{field: read(value)})
    except ConfigError as error:  # before ValueError: it is one
        say(f"error: {error}")
        return sampling
    except (ValueError, KeyError):
        say(f"bad value {value!r} for :{name} ({help_text})")
        return sampling
    say(f"{name} = {value}")
    return updated
