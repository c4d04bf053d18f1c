"""The hand-written gradients agree with finite differences, element by element."""

import numpy as np
import pytest

from rnnkit.models import numpy_layers
from rnnkit.studies.gradcheck import gradcheck, relative_error

CELLS = ["rnn", "rnn_relu", "gru", "lstm"]
TOLERANCE = 1e-6


def expected_names(layers: int, bidirectional: bool, embed: bool = True, tie: bool = False) -> set:
    names = {"head.bias"} | ({"embed.weight"} if embed else set()) | (set() if tie else {"head.weight"})
    for k in range(layers):
        for sfx in [f"_l{k}"] + ([f"_l{k}_reverse"] if bidirectional else []):
            names |= {f"rnn.{w}{sfx}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    return names


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bidir"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_every_parameter_matches_finite_differences(cell, layers, bidirectional):
    errors = gradcheck(cell, layers, bidirectional)
    assert set(errors) == expected_names(layers, bidirectional)
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("cell", CELLS)
def test_one_hot_input(cell):
    errors = gradcheck(cell, embed=0)
    assert set(errors) == expected_names(1, False, embed=False)
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("cell", CELLS)
def test_tied_embedding_and_head(cell):
    errors = gradcheck(cell, embed=4, hidden=4, tie=True)
    assert set(errors) == expected_names(1, False, tie=True)
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("cell", CELLS)
def test_unfused_embedding_path(cell):
    # V = 7 > 3 * embed: lookup and first projection stay two steps (the default sizes fuse them)
    errors = gradcheck(cell, embed=2)
    assert max(errors.values()) < TOLERANCE, errors


def test_dropout_backward():
    # the same masks in every evaluation, so dropout is a fixed linear map the check can see
    errors = gradcheck("lstm", layers=2, dropout=0.3)
    assert max(errors.values()) < TOLERANCE, errors


def test_gradcheck_catches_a_wrong_gradient(monkeypatch):
    real = numpy_layers.lstm_backward

    def off_by_a_little(*args, **kwargs):
        dx, dstate, (dw_ih, dw_hh, db_ih, db_hh) = real(*args, **kwargs)
        return dx, dstate, (dw_ih, dw_hh * 1.001, db_ih, db_hh)

    monkeypatch.setattr(numpy_layers, "lstm_backward", off_by_a_little)
    errors = gradcheck("lstm")
    assert errors["rnn.weight_hh_l0"] > 1e-4
    assert errors["rnn.weight_ih_l0"] < TOLERANCE


def test_relative_error_definition():
    a = np.array([1.0, 0.0, 1e-12, -2.0])
    n = np.array([1.0 + 1e-9, 0.0, 0.0, 2.0])
    err = relative_error(a, n)
    assert err[0] == pytest.approx(1e-9 / (2 + 1e-9))
    assert err[1] == 0.0  # both zero: no error, not 0/0
    assert err[2] == pytest.approx(1e-12 / 1e-6)  # the floor: ~0 against ~0 is no error
    assert err[3] == 1.0


def min_names(layers: int = 1, bidirectional: bool = False) -> set:
    names = {"head.bias", "head.weight", "embed.weight"}
    for k in range(layers):
        for sfx in [f"_l{k}"] + ([f"_l{k}_reverse"] if bidirectional else []):
            names |= {f"rnn.weight_ih{sfx}", f"rnn.bias_ih{sfx}"}
    return names


@pytest.mark.parametrize(
    "options",
    [dict(layers=1), dict(layers=2), dict(embed=0, bidirectional=True), dict(embed=2, layers=2, dropout=0.3)],
    ids=["L1", "L2", "onehot-bidir", "unfused"],
)
def test_cho_gru_matches_finite_differences(options):
    errors = gradcheck("gru", gru_form="cho", **options)
    if "embed" not in options:
        assert set(errors) == expected_names(options["layers"], False)
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize(
    "options",
    [
        dict(layers=1),
        dict(layers=2),
        dict(layers=1, bidirectional=True),
        dict(embed=0),
        dict(embed=2, layers=2, dropout=0.3),
        dict(steps=12),
    ],
    ids=["L1", "L2", "bidir", "onehot", "unfused-dropout", "T12"],
)
@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_min_rnn_backward_through_the_scan_matches_finite_differences(cell, options):
    errors = gradcheck(cell, **options)
    if options.get("embed", 5) == 5:
        assert set(errors) == min_names(options.get("layers", 1), options.get("bidirectional", False))
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("cell, form", [("gru", "cho"), ("mingru", None), ("minlstm", None)])
def test_gradcheck_catches_a_wrong_gradient_in_the_new_cells(monkeypatch, cell, form):
    from rnnkit.models import numpy_cells

    name = "cho_gru_backward" if form else "min_rnn_backward"
    real = getattr(numpy_cells, name)

    def off_by_a_little(*args, **kwargs):
        dx, dstate, wgrads = real(*args, **kwargs)
        return dx, dstate, (wgrads[0] * 1.001,) + tuple(wgrads[1:])

    monkeypatch.setattr(numpy_cells, name, off_by_a_little)
    errors = gradcheck(cell, gru_form=form)
    assert errors["rnn.weight_ih_l0"] > 1e-4
    assert errors["head.weight"] < TOLERANCE


def test_gradcheck_command_checks_the_new_cells(capsys):
    from rnnkit.cli import main

    assert main(["gradcheck", "--model", "gru", "--gru-form", "cho", "--hidden", "3"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["gradcheck", "--model", "minlstm", "--hidden", "3", "--json"]) == 0
    assert main(["gradcheck", "--model", "lstm", "--gru-form", "cho"]) == 2
    assert "not a GRU" in capsys.readouterr().err
