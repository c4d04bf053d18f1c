"""files.json_safe: the one NaN/inf -> None conversion for the JSON rnnkit writes."""

import json
import math

from rnnkit.files import json_safe


def test_json_safe_replaces_every_non_finite_float_and_nothing_else():
    record = {
        "loss": math.nan,
        "ppl": math.inf,
        "low": -math.inf,
        "step": 3,
        "lr": 0.5,
        "name": "x",
        "ok": True,
        "none": None,
        "nested": {"curve": [1.0, math.nan, (math.inf, 2)]},
    }
    safe = json_safe(record)
    assert safe == {
        "loss": None,
        "ppl": None,
        "low": None,
        "step": 3,
        "lr": 0.5,
        "name": "x",
        "ok": True,
        "none": None,
        "nested": {"curve": [1.0, None, (None, 2)]},
    }
    json.loads(json.dumps(safe, allow_nan=False))  # strict JSON now
    assert math.isnan(record["loss"])  # the input is not modified
    assert json_safe(math.nan) is None and json_safe(2.5) == 2.5
