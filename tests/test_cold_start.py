"""Generation and scoring on the CPU start without torch (issue 16, item 5): checkpoints load as
NumPy arrays, `--engine auto` picks the NumPy model when the device is the CPU and the model
allows it, and the NumPy path gives the torch path's greedy and beam outputs."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import rnnkit
from rnnkit import runtime
from rnnkit.api import choose_engine
from rnnkit.checkpoint import load_checkpoint
from rnnkit.config import ModelConfig
from rnnkit.errors import ConfigError
from rnnkit.models.numpy_lm import NumpyRNNLM
from rnnkit.models.torch_lm import RNNLM

NO_GPU = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}  # `auto` must mean the CPU on any test machine


@pytest.fixture(scope="module")
def word_run(tmp_path_factory):
    from conftest import tiny_config

    return rnnkit.train(tiny_config(tmp_path_factory.mktemp("cold") / "run", steps=20)).checkpoint


def run_in_fresh_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=NO_GPU)


NO_TORCH_CLI = """
import sys
from rnnkit.cli import main
for run in sys.argv[1:]:
    assert main(["generate", run, "--max-new-tokens", "12", "--seed", "3"]) == 0
    assert main(["generate", run, "--max-new-tokens", "6", "--beam", "3", "--prompt", "you"]) == 0
    assert main(["score", run, "--text", "you say hello", "--json"]) == 0
print("torch imported:", "torch" in sys.modules)
"""


def test_cli_generate_and_score_on_the_cpu_never_import_torch(word_run, tmp_path):
    from conftest import tiny_config

    config = tiny_config(tmp_path / "ngram")
    config.model = dataclasses.replace(config.model, model="ngram", order=3)
    ngram_run = rnnkit.train(config).checkpoint  # a baseline is NumPy throughout
    done = run_in_fresh_python(NO_TORCH_CLI, str(word_run), str(ngram_run))
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("torch imported: False")
    assert done.stdout.count('"token_scores"') == 2


@pytest.mark.slow  # two fresh processes, one importing torch (about 6 s on 2 busy cores); the parity
# of the two engines is checked in-process below
def test_cli_engine_torch_still_imports_torch_and_prints_the_same_greedy_text(word_run):
    code = (
        "import sys\nfrom rnnkit.cli import main\n"
        "main(['generate', sys.argv[1], '--greedy', '--max-new-tokens', '15', '--engine', sys.argv[2], '--json'])\n"
        "print(json.dumps('torch' in sys.modules))"
    ).replace("import sys", "import sys, json")
    outputs = {}
    for engine in ("auto", "torch"):
        done = run_in_fresh_python(code, str(word_run), engine)
        assert done.returncode == 0, done.stderr
        first, imported = done.stdout.splitlines()
        outputs[engine] = (json.loads(first)["text"], json.loads(imported))
    assert outputs["auto"][1] is False and outputs["torch"][1] is True
    assert outputs["auto"][0] == outputs["torch"][0]


def test_numpy_checkpoint_arrays_equal_the_torch_tensors(word_run):
    as_tensors = load_checkpoint(word_run)
    as_arrays = load_checkpoint(word_run, arrays="numpy")
    assert set(as_arrays.weights) == set(as_tensors.weights)
    for name, array in as_arrays.weights.items():
        assert isinstance(array, np.ndarray)
        np.testing.assert_array_equal(array, as_tensors.weights[name].numpy())
    with pytest.raises(ConfigError, match="arrays"):
        load_checkpoint(word_run, arrays="jax")


def test_engine_choice():
    plain = ModelConfig(model="lstm", vocab_size=200)
    adaptive = ModelConfig(model="lstm", vocab_size=200, adaptive_softmax=True)
    assert choose_engine(plain, "cpu", "auto") == "numpy"
    assert choose_engine(plain, "cuda", "auto") == "torch"  # a GPU is asked for: torch runs there
    assert choose_engine(adaptive, "cpu", "auto") == "torch"  # NumPy has no adaptive softmax head
    assert choose_engine(plain, "cpu", None) == "torch"  # the API's default: the engine that trained it
    assert choose_engine(dataclasses.replace(plain, engine="numpy"), "auto", None) == "numpy"
    assert choose_engine(ModelConfig(model="ngram", vocab_size=9), "cpu", "auto") == "torch"  # untouched
    with pytest.raises(ConfigError, match="adaptive softmax"):
        choose_engine(adaptive, "cpu", "numpy")
    with pytest.raises(ConfigError, match="CPU"):
        choose_engine(plain, "cuda", "numpy")
    with pytest.raises(ConfigError, match="engine must be"):
        choose_engine(plain, "cpu", "jax")


def test_auto_device_asks_torch_only_when_a_gpu_may_be_there(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(runtime, "GPU_DEVICE_FILES", (str(tmp_path / "nvidiactl"),))
    assert not runtime.gpu_may_be_present()
    (tmp_path / "nvidiactl").touch()
    assert runtime.gpu_may_be_present()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not runtime.gpu_may_be_present()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert runtime.gpu_may_be_present()
    asked = []
    monkeypatch.setattr(runtime, "resolve_device", lambda name: asked.append(name) or _Device("cuda"))
    monkeypatch.setattr(runtime, "torch_loaded", lambda: False)  # as in a fresh process
    assert not runtime.runs_on_cpu("auto") and asked == ["auto"]  # a driver is there: torch decides
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert runtime.runs_on_cpu("auto") and asked == ["auto"]  # nothing to ask: no torch import
    assert runtime.runs_on_cpu("cpu") and not runtime.runs_on_cpu("cuda")


@dataclasses.dataclass
class _Device:
    type: str


def _trained(tmp_path, model: str, tie: bool, embed: int):
    from conftest import tiny_config

    config = tiny_config(tmp_path / f"{model}-{tie}-{embed}", model=model, tokenizer="char", steps=25)
    config.model = dataclasses.replace(config.model, layers=2, hidden=24, embed=24 if tie else embed, tie=tie)
    return rnnkit.train(config).checkpoint


@pytest.mark.parametrize(
    "model, tie, embed",
    [("rnn", False, 16), ("gru", True, 24), ("lstm", False, 0), ("lstm", True, 24), ("rnn_relu", False, 16)],
)
def test_numpy_and_torch_paths_give_the_same_greedy_beam_and_scores(tmp_path, model, tie, embed):
    run = _trained(tmp_path, model, tie, embed)
    torch_lm, numpy_lm = rnnkit.load(run, device="cpu", engine="torch"), rnnkit.load(run, engine="auto")
    assert isinstance(torch_lm.model, RNNLM) and isinstance(numpy_lm.model, NumpyRNNLM)
    for prompt in ("", "you say"):
        options = {"max_new_tokens": 30}
        assert numpy_lm.generate(prompt, do_sample=False, **options) == torch_lm.generate(
            prompt, do_sample=False, **options
        )
        assert numpy_lm.generate(prompt, num_beams=4, num_return_sequences=2, **options) == torch_lm.generate(
            prompt, num_beams=4, num_return_sequences=2, **options
        )
        assert numpy_lm.generate(prompt, seed=5, temperature=0.8, **options) == torch_lm.generate(
            prompt, seed=5, temperature=0.8, **options
        )
    text = "you say hello. you say goodbye. " * 3
    np.testing.assert_allclose(numpy_lm.score(text).logprobs, torch_lm.score(text).logprobs, rtol=1e-5, atol=1e-6)
