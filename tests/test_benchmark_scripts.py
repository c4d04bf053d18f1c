"""The benchmark scripts still run (a tiny configuration; their figures are not checked here)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_prepare_speed_reports_every_row():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "prepare_speed.py"), "--copies", "1",
                           "--runs", "1", "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["what"] for row in rows] == [
        "word scanner, english (ASCII)", "word scanner, curly apostrophes", "word scanner, accented e",
        "word scanner, Cyrillic letters", "prepare --tokenizer char", "prepare --tokenizer word"]
    assert all(row["MB/s"] > 0 for row in rows)
