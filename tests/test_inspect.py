"""rnnkit inspect: the recomputed gates, the stream layout, the text features, the running
correlations and saturation counts, the command end to end, its refusals, and the report in a
real browser."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BROWSER_ARGS, browser_or_skip

from rnnkit.checkpoint import save_checkpoint
from rnnkit.cli import main
from rnnkit.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from rnnkit.models.registry import baseline_weights, fit_baseline
from rnnkit.models.torch_lm import RNNLM, TorchScorer, export_weights
from rnnkit.studies.features import char_features, sentence_position, token_features, token_text
from rnnkit.studies.inspect import (
    Correlator,
    InspectOptions,
    Saturation,
    StreamLayout,
    feature_table,
    inspect,
    is_finding,
)
from rnnkit.studies.recurrence import layer_weights, run_layer, zero_state
from rnnkit.text.tokenizer import build_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

TEXT = ('First Citizen:\nBefore we proceed (any further), hear me "speak".\n\nAll:\nSpeak, speak [2 times].\n') * 12


def make_run(
    directory: Path,
    model: str = "lstm",
    layers: int = 2,
    hidden: int = 12,
    text: str = TEXT,
    tokenizer: str = "char",
    seed: int = 3,
) -> Path:
    """A checkpoint of an untrained (seeded) model: what inspect reads, in milliseconds."""
    tok = build_tokenizer(tokenizer, text)
    sizes = {"states": 2} if model == "hmm" else {}
    config = RunConfig(
        model=ModelConfig(model=model, layers=layers, hidden=hidden, embed=8, vocab_size=len(tok), **sizes),
        data=DataConfig(data="toy", tokenizer=tokenizer),
        train=TrainConfig(seed=seed, device="cpu"),
    )
    if model == "hmm":  # a uniform 2-state HMM (loadable; Baum-Welch would import scikit-learn)
        V = len(tok)
        weights = {
            "startprob": torch.full((2,), 0.5, dtype=torch.float64),
            "transmat": torch.full((2, 2), 0.5, dtype=torch.float64),
            "emissionprob": torch.full((2, V), 1.0 / V, dtype=torch.float64),
        }
    elif model == "ngram":
        ids = tok.encode(text)
        weights = baseline_weights(fit_baseline(config.model, ids, seed))
    else:
        torch.manual_seed(seed)
        weights = export_weights(RNNLM(config.model))
    save_checkpoint(directory / "best", config, weights, tok, step=0)
    return directory


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("lstm-run"))


# ---------------------------------------------------------------------------------------------
# the recomputed recurrence


@pytest.mark.parametrize(
    "kind,cell,options",
    [
        ("lstm", torch.nn.LSTM, {}),
        ("gru", torch.nn.GRU, {}),
        ("rnn", torch.nn.RNN, {}),
        ("rnn_relu", torch.nn.RNN, {"nonlinearity": "relu"}),
    ],
)
def test_recomputed_states_equal_torch_modules(kind, cell, options):
    torch.manual_seed(0)
    module = cell(5, 9, num_layers=2, batch_first=True, **options)
    x = torch.randn(3, 17, 5)
    h0 = torch.randn(2, 3, 9) * 0.5
    c0 = torch.randn(2, 3, 9) * 0.5
    reference, final = module(x, (h0, c0) if kind == "lstm" else h0)
    inputs = x
    for layer in range(2):
        state = (h0[layer], c0[layer]) if kind == "lstm" else h0[layer]
        values, state = run_layer(kind, layer_weights(module, layer), inputs, state)
        inputs = values["h"]
        if kind == "lstm":
            assert (state[1] - final[1][layer]).abs().max() < 1e-5  # c_T
            assert (values["c"][:, -1] - final[1][layer]).abs().max() < 1e-5
        expected_h = final[0][layer] if kind == "lstm" else final[layer]
        assert (values["h"][:, -1] - expected_h).abs().max() < 1e-5
    assert (inputs - reference).abs().max() < 1e-5  # every step of the top layer


def test_lstm_cell_state_at_every_step_equals_stepping_nn_lstm():
    torch.manual_seed(1)
    module = torch.nn.LSTM(4, 6, batch_first=True)
    x = torch.randn(2, 11, 4)
    values, _ = run_layer("lstm", layer_weights(module, 0), x, zero_state("lstm", 2, 6))
    state = None
    for t in range(11):  # nn.LSTM returns c only at the end: one call per step gives every c_t
        _, state = module(x[:, t : t + 1], state)
        assert (values["c"][:, t] - state[1][0]).abs().max() < 1e-5
    # gates are in range and reproduce c_t = f c_{t-1} + i g, h = o tanh(c) (g = (c_t - f c_{t-1}) / i)
    assert values["i"].min() > 0 and values["f"].max() < 1
    assert torch.allclose(values["h"], values["o"] * torch.tanh(values["c"]), atol=1e-6)


def test_gru_gates_reproduce_its_update():
    torch.manual_seed(2)
    module = torch.nn.GRU(3, 5, batch_first=True)
    x = torch.randn(1, 9, 3)
    values, _ = run_layer("gru", layer_weights(module, 0), x, zero_state("gru", 1, 5))
    h_prev = torch.cat([torch.zeros(1, 1, 5), values["h"][:, :-1]], dim=1)
    z = values["z"]
    n = (values["h"] - z * h_prev) / (1 - z)  # h_t = (1 - z) n + z h_{t-1}  =>  n in (-1, 1)
    assert n.abs().max() < 1 and ((values["r"] > 0) & (values["r"] < 1)).all()


# ---------------------------------------------------------------------------------------------
# streams, features, running sums


@pytest.mark.parametrize(
    "positions,streams,warmup", [(1, None, 256), (50, 4, 5), (10_000, None, 256), (1000, 7, 300), (9, 20, 2)]
)
def test_stream_windows_tile_the_positions_exactly_once(positions, streams, warmup):
    layout = StreamLayout.choose(positions, streams, warmup)
    position, kept = layout.window()
    assert sorted(position[kept].tolist()) == list(range(positions))
    if layout.streams > 1:  # each later stream reads `warmup` tokens before its slice
        assert (kept[1:, : layout.warmup] == 0).all()


def test_char_features_by_hand():
    text = 'ab "c(d[e)]" X9\n  f\n'
    f = char_features(text)
    assert f["inside_quotes"].tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert f["bracket_depth"].tolist() == [0, 0, 0, 0, 0, 1, 1, 2, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert f["line_position"].tolist() == list(range(16)) + [0, 1, 2, 3]
    assert f["to_line_end"].tolist() == list(range(15, -1, -1)) + [3, 2, 1, 0]
    assert f["indent"].tolist() == [0] * 16 + [2] * 4
    assert f["after_newline"].tolist() == [1] + [0] * 15 + [1, 0, 0, 0]
    assert np.flatnonzero(f["uppercase"]).tolist() == [13] and np.flatnonzero(f["digit"]).tolist() == [14]
    assert np.flatnonzero(f["inside_word"]).tolist() == [0, 1, 4, 6, 8, 13, 14, 18]
    assert char_features("a 'x' b\n'c")["inside_single_quotes"].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 1, 1]
    # an apostrophe: to the line end
    assert char_features("it's\nx")["inside_single_quotes"].tolist() == [0, 0, 1, 1, 1, 0]
    assert char_features(")(")["bracket_depth"].tolist() == [0, 1]  # a stray closer starts over


def test_word_features_read_the_last_character_and_count_sentences():
    text = "Hello there. Are you (well)?\nYes"
    tokenizer = build_tokenizer("word", text)
    ids = tokenizer.encode(text)
    tokens = token_text(tokenizer, text, ids.size)
    names, values = token_features(tokens, word_level=True)
    column = dict(zip(names, values.T, strict=True))
    assert tokens.pieces == ["Hello", " there", ".", " Are", " you", " (", "well", ")", "?", "\n", "Yes"]
    assert "".join(tokens.pieces) == text
    assert column["sentence_position"].tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 5, 0, 1]
    assert column["inside_brackets"].tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert column["uppercase"].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # last letters are lowercase
    assert sentence_position(["a", "!", "b"]).tolist() == [0, 1, 0]


def test_correlator_matches_numpy_on_both_slices_and_marks_constants():
    rng = np.random.default_rng(0)
    features = np.stack([rng.normal(size=400), np.ones(400)], axis=1).astype(np.float32)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    x[:, 1] += 2 * features[:, 0]
    correlator = Correlator([(0, "h")], 3, features, split=250)
    rows = np.arange(400)
    for part in np.array_split(rng.permutation(rows), 7):  # any order, any chunking
        correlator.add(part, {(0, "h"): x[part]})
    r = correlator.correlations()[(0, "h")]
    for s, rows_s in enumerate((slice(0, 250), slice(250, 400))):
        for unit in range(3):
            expected = np.corrcoef(x[rows_s, unit], features[rows_s, 0])[0, 1]
            assert abs(r[s, unit, 0] - expected) < 1e-6
    assert np.isnan(r[:, :, 1]).all()


def test_a_finding_must_hold_on_the_held_out_slice():
    rng = np.random.default_rng(1)
    n = 2000
    feature = (rng.random(n) < 0.3).astype(np.float32)[:, None]
    x = rng.normal(size=(n, 4)).astype(np.float32) * 0.5
    x[:, 2] += feature[:, 0]  # unit 2 tracks the feature everywhere
    x[:1000, 0] += 3 * feature[:1000, 0]  # unit 0 tracks it on the first half only (a lucky unit)
    correlator = Correlator([(1, "c")], 4, feature, split=1000)
    correlator.add(np.arange(n), {(1, "c"): x})
    r = correlator.correlations()
    row = feature_table(["digit"], r, None, 0.3)[0]
    assert row["best"]["unit"] == "layer 1 c[0]" and abs(row["best"]["r_heldout"]) < 0.1
    assert row["finding"] is False  # the best on discovery did not hold
    assert row["top_units"][1]["unit"] == "layer 1 c[2]" and row["top_units"][1]["r_heldout"] > 0.5
    assert is_finding({"r_discovery": 0.5, "r_heldout": 0.4}, 0.3)
    assert not is_finding({"r_discovery": 0.5, "r_heldout": -0.4}, 0.3)


def test_saturation_counts():
    saturation = Saturation([(0, "f")], 3)
    saturation.add({(0, "f"): np.array([[0.05, 0.5, 0.95], [0.2, 0.99, 0.01]], dtype=np.float32)})
    assert saturation.fractions() == {"layer0": {"f": {"left": [0.5, 0.0, 0.5], "right": [0.0, 0.5, 0.5]}}}


# ---------------------------------------------------------------------------------------------
# the command


def test_inspect_records_every_unit_exactly(lstm_run, tmp_path):
    """One stream: the recorded h equals nn.LSTM's output, the surprisal equals the scoring seam's."""
    from rnnkit import load

    out = tmp_path / "out"
    text = TEXT[:300]
    document = inspect(lstm_run, text, out=out, options=InspectOptions(streams=1, top_k=3, show=100))
    assert document["files"]["png"] == ["saturation.png", "features.png"]  # matplotlib is a dev dependency
    lm = load(lstm_run, device="cpu")
    ids = lm.tokenizer.encode(text)
    inputs = torch.from_numpy(np.concatenate([[lm.tokenizer.start_id()], ids]))[None]
    with torch.no_grad():
        reference, _ = lm.model.rnn(lm.model.inputs(inputs))
    h = np.load(out / "activations" / "layer1_h.npy", mmap_mode="r")
    assert h.shape == (ids.size, 12)
    assert np.abs(h - reference[0, 1:].numpy()).max() < 1e-5  # the state after reading each token
    nll, _ = TorchScorer(lm.model).score(inputs[:, :-1].numpy(), ids[None], lm.model.initial_state(1))
    surprisal = np.load(out / "tokens" / "surprisal_bits.npy")
    assert abs(surprisal.sum() * np.log(2) - nll) < 1e-3 * nll
    assert abs(document["mean_nll_nats"] - nll / ids.size) < 1e-4
    top = np.load(out / "tokens" / "top_probs.npy")
    assert top.shape == (ids.size, 3) and (np.diff(top, axis=1) <= 0).all()
    assert document["complete"] and json.loads((out / "inspect.json").read_text())["tokens"] == ids.size
    assert set(document["saturation"]["trained"]) == {"layer0", "layer1"}
    assert set(document["saturation"]["trained"]["layer0"]) == {"i", "f", "o"}


def test_streams_keep_the_first_slice_exact(lstm_run, tmp_path):
    one = inspect(lstm_run, TEXT, out=tmp_path / "one", options=InspectOptions(streams=1, pngs=False))
    four = inspect(lstm_run, TEXT, out=tmp_path / "four", options=InspectOptions(streams=4, warmup=20, pngs=False))
    assert four["streams"] == 4
    a = np.load(tmp_path / "one" / "activations" / "layer0_c.npy")
    b = np.load(tmp_path / "four" / "activations" / "layer0_c.npy")
    first = StreamLayout.choose(len(TEXT) + 1, 4, 20)
    assert np.abs(a[: first.warmup + first.slice_length - 1] - b[: first.warmup + first.slice_length - 1]).max() < 1e-6
    assert abs(one["mean_nll_nats"] - four["mean_nll_nats"]) < 0.05  # later slices: 20 tokens of context


def test_cli_records_only_the_requested_units(lstm_run, tmp_path, capsys):
    out = tmp_path / "few"
    assert (
        main(
            [
                "inspect",
                str(lstm_run),
                "--text",
                TEXT[:200],
                "--layer",
                "1",
                "--units",
                "0,5,11",
                "--out",
                str(out),
                "--json",
                "--no-png",
            ]
        )
        == 0
    )
    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sorted(p.name for p in (out / "activations").iterdir()) == [
        f"layer1_{s}.npy" for s in ("c", "f", "h", "i", "o")
    ]
    assert np.load(out / "activations" / "layer1_h.npy").shape == (200, 3)
    assert document["recorded"] == {
        "layers": [1],
        "units": [0, 5, 11],
        "dtype": "float32",
        "signals": document["recorded"]["signals"],
    }
    assert {"report.html", "inspect.json"} <= {p.name for p in out.iterdir()}
    assert main(["inspect", str(lstm_run), "--text", TEXT[:200], "--out", str(out)]) == 2  # kept, not overwritten
    assert "exists already" in capsys.readouterr().err


def test_gru_run_prints_a_table(tmp_path, capsys):
    run = make_run(tmp_path / "gru", model="gru", layers=1)
    assert main(["inspect", str(run), "--text", TEXT, "--out", str(tmp_path / "o"), "--quiet", "--no-png"]) == 0
    printed = capsys.readouterr().out
    assert "bracket_depth" in printed and "saturation (trained, layer0" in printed and "z " in printed
    assert sorted(p.name for p in (tmp_path / "o" / "activations").iterdir()) == [
        "layer0_h.npy",
        "layer0_r.npy",
        "layer0_z.npy",
    ]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--text", ""], "is empty"),
        (["--text", "Speak \u00e9"], "lacks"),
        (["--text", "Speak", "--units", "12"], "unit 12 is out of range"),
        (["--text", "Speak", "--units", "-1"], "out of range"),
        (["--text", "Speak", "--layer", "2"], "--layer 2 is out of range"),
        (["--text", "Speak", "--units", "x"], "comma-separated integers"),
        (["--file", "/nonexistent/file.txt"], "no such file"),
        (["--text", "Speak", "--show-from", "5"], "past the end"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(lstm_run, tmp_path, capsys, args, message):
    assert main(["inspect", str(lstm_run), *args, "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("model", ["ngram", "hmm"])
def test_baselines_have_no_hidden_units(tmp_path, capsys, model):
    run = make_run(tmp_path / model, model=model)
    assert main(["inspect", str(run), "--text", "Speak", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no hidden units" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_no_text_option_is_a_usage_error(lstm_run, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["inspect", str(lstm_run)])
    assert stopped.value.code == 2 and "one of the arguments" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# the report in a real browser


def test_report_renders_in_headless_chromium(lstm_run, tmp_path):
    playwright, executable = browser_or_skip()
    out = tmp_path / "report"
    inspect(lstm_run, TEXT, out=out, options=InspectOptions(show=400, pngs=False))
    requests = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("request", lambda request: requests.append(request.url))
        page.goto((out / "report.html").as_uri())
        tokens = page.locator("#surprisal-text span.t")
        assert tokens.count() == 400 and tokens.nth(10).is_visible()
        colour = tokens.nth(10).evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour.startswith("rgb") and colour != "rgba(0, 0, 0, 0)"  # coloured by surprisal
        tokens.nth(10).hover()
        tip = page.locator("#tip")
        assert tip.is_visible() and "bits" in tip.inner_text() and "top predictions" in tip.inner_text()
        assert page.locator("#feature-table tr").count() == 12  # header + 11 features
        unit_text = page.locator("[id^='unit-'] span.t")
        assert unit_text.count() >= 400 and unit_text.first.is_visible()
        plots = page.locator("svg.saturation")
        assert plots.count() == 4  # 2 layers x (trained, fresh)
        plots.first.scroll_into_view_if_needed()
        assert plots.first.is_visible() and plots.first.locator("circle").count() == 3 * 12
        box = plots.first.bounding_box()
        assert box["width"] > 100 and box["height"] > 100
        browser.close()
    assert all(url.startswith("file://") for url in requests), requests  # nothing from the network


def test_word_model_gets_sentence_position_and_keeps_its_spaces(tmp_path):
    run = make_run(tmp_path / "word", model="gru", layers=1, tokenizer="word")
    text = "Before we proceed any further, hear me speak. Speak, speak!\nAll: Speak."
    document = inspect(run, text, out=tmp_path / "o", options=InspectOptions(pngs=False, max_tokens=12))
    assert document["tokens"] == 12 and document["tokenizer"] == "word"
    assert [row["feature"] for row in document["features"]][-1] == "sentence_position"
    report = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert ">Before</span>" in report and "> we</span>" in report  # words drawn with their spaces
