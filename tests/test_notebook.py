"""rnnkit in a real Jupyter kernel (nbclient + ipykernel): progress bar, callback, figures.

The kernel takes seconds to start, so this is a slow test; test_reporting.py checks the same
paths with a fake kernel, and test_plot.py the figures, in the fast suite."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

import rnnkit

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

SOURCE = Path(rnnkit.__file__).resolve().parents[1]  # the rnnkit under test, whatever is installed


def cells(run_dir: Path) -> list[str]:
    return [
        f"import sys\nsys.path.insert(0, {str(SOURCE)!r})\nimport rnnkit\nrecords = []",
        "config = rnnkit.RunConfig(rnnkit.ModelConfig(model='gru', layers=1, hidden=16, embed=8),\n"
        "                          rnnkit.DataConfig(data='toy', batch_size=4, seq_len=8),\n"
        "                          rnnkit.TrainConfig(steps=20, eval_interval=10, log_interval=5, "
        f"out={str(run_dir)!r},\n"
        "                                             device='cpu', sample_tokens=0))\n"
        "result = rnnkit.train(config, callback=records.append)\n"
        "print('records', [r['step'] for r in records])",
        "import matplotlib.pyplot as plt\nfrom rnnkit.studies.plot import plot_runs\n"
        "fig, ax = plt.subplots()\n"
        f"drawn = plot_runs([result.checkpoint], 'train_loss', out={str(run_dir / 'loss.png')!r}, ax=ax)\n"
        "print('same figure', drawn.figure is fig)",
        f"plot_runs([result.checkpoint], out={str(run_dir / 'val.png')!r})",  # the cell's value: an image
    ]


@pytest.mark.slow
def test_training_and_plots_in_a_jupyter_kernel(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells(tmp_path / "run")]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [cell.outputs for cell in notebook.cells]
    train_text = "".join(o.get("text", "") for o in outputs[1] if o.output_type == "stream")
    assert "records [5, 10, 15, 20]" in train_text
    stderr = "".join(o.get("text", "") for o in outputs[1] if o.output_type == "stream" and o.name == "stderr")
    widgets = [o for o in outputs[1] if o.output_type == "display_data"]
    assert "20/20" in stderr or widgets, "no progress bar in the notebook"  # text bar, or widget without ipywidgets
    assert "same figure True" in "".join(o.get("text", "") for o in outputs[2])
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000
    images = [o for o in outputs[3] if o.output_type == "execute_result" and "image/png" in o.data]
    assert images and base64.b64decode(images[0].data["image/png"]).startswith(b"\x89PNG")
