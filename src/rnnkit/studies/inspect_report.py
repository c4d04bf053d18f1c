"""DIR/report.html for `rnnkit inspect`: one self-contained file (inline CSS, a little vanilla
JavaScript for the hover, inline SVG plots; nothing fetched from anywhere), and PNGs of the same
plots beside it when matplotlib is installed.

Sections: the text coloured by surprisal (hover a token for the model's top predictions), the
feature table with the best unit per feature drawn as the text coloured by that unit, and gate
saturation (fraction of steps each gate unit spends below 0.1 against above 0.9, as Karpathy et
al. 2015 plot it), trained beside freshly initialised.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

SURPRISAL_BUCKETS = 10  # 0-1, 1-2, ..., 9+ bits
UNIT_BUCKETS = 11  # -1 .. 1 in steps of 0.2
GATE_COLOURS = {"i": "#1f77b4", "f": "#2ca02c", "o": "#d62728", "z": "#9467bd", "r": "#ff7f0e"}
GATE_NAMES = {"i": "input", "f": "forget", "o": "output", "z": "update", "r": "reset"}
BOUNDED = {"i", "f", "o", "z", "r"}  # gates: values in (0, 1)


def write_report(out: Path, document: dict[str, Any], excerpt: dict[str, Any], pngs: bool = True) -> dict[str, Any]:
    """Write report.html (and PNGs when asked and matplotlib is there); return the file names."""
    files: dict[str, Any] = {"html": "report.html", "json": "inspect.json", "png": []}
    if pngs:
        files["png"] = write_pngs(out, document)
    (out / "report.html").write_text(report_html(document, excerpt), encoding="utf-8")
    return files


# ---------------------------------------------------------------------------------------------
# HTML


CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
.text{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;line-height:1.55;
  border:1px solid #ddd;padding:.6em;max-height:28em;overflow:auto;font-size:13px}
.t{border-radius:2px}.nl{color:#bbb}
table{border-collapse:collapse;font-size:14px}td,th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.yes{color:#070;font-weight:bold}.no{color:#999}
#tip{position:fixed;display:none;background:#fff;border:1px solid #888;padding:.4em .6em;font-size:13px;
  box-shadow:2px 2px 6px rgba(0,0,0,.2);pointer-events:none;z-index:10;font-family:ui-monospace,monospace}
.legend span{display:inline-block;padding:0 .5em;font-size:12px}
.plots{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}figcaption{font-size:13px;color:#444}
.note{color:#555;font-size:14px}
"""

JS = """
(function(){
  var data = JSON.parse(document.getElementById('token-data').textContent);
  var tip = document.getElementById('tip');
  function show(e){
    var i = e.target.getAttribute('data-i'); if (i === null) return;
    var d = data[+i], rows = d.top.map(function(p){
      return '<tr><td>' + p[0] + '</td><td class="n">' + p[1].toFixed(3) + '</td></tr>';}).join('');
    tip.innerHTML = '<b>' + d.piece + '</b>: ' + d.bits.toFixed(2) + ' bits<br>top predictions before it:' +
      '<table>' + rows + '</table>';
    tip.style.display = 'block';
    tip.style.left = Math.min(e.clientX + 12, window.innerWidth - 220) + 'px';
    tip.style.top = (e.clientY + 14) + 'px';
  }
  var box = document.getElementById('surprisal-text');
  box.addEventListener('mouseover', show);
  box.addEventListener('mouseout', function(){ tip.style.display = 'none'; });
})();
"""


def _surprisal_colour(k: int) -> str:
    """White (0 bits) to deep red (9+ bits)."""
    level = k / (SURPRISAL_BUCKETS - 1)
    return f"rgb(255,{int(255 - 190 * level)},{int(255 - 215 * level)})"


def _unit_colour(k: int) -> str:
    """Blue (-1) through white (0) to red (+1)."""
    v = (k - (UNIT_BUCKETS - 1) / 2) / ((UNIT_BUCKETS - 1) / 2)
    if v < 0:
        return f"rgb({int(255 + 200 * v)},{int(255 + 120 * v)},255)"
    return f"rgb(255,{int(255 - 150 * v)},{int(255 - 200 * v)})"


def colour_classes() -> str:
    rules = [f".s{k}{{background:{_surprisal_colour(k)}}}" for k in range(SURPRISAL_BUCKETS)]
    rules += [f".u{k}{{background:{_unit_colour(k)}}}" for k in range(UNIT_BUCKETS)]
    return "\n".join(rules)


def _piece_html(piece: str) -> str:
    """A token as shown: a newline gets a visible mark before the line break."""
    if piece.endswith("\n"):
        return html.escape(piece[:-1]) + '<span class="nl">\u21b5</span>\n'
    return html.escape(piece)


def coloured_text(pieces: list[str], buckets: np.ndarray, prefix: str, box_id: str, indexed: bool) -> str:
    spans = []
    for i, (piece, bucket) in enumerate(zip(pieces, buckets.tolist(), strict=True)):
        index = f' data-i="{i}"' if indexed else ""
        spans.append(f'<span class="t {prefix}{bucket}"{index}>{_piece_html(piece)}</span>')
    return f'<div class="text" id="{box_id}">{"".join(spans)}</div>'


def unit_buckets(values: np.ndarray, signal: str) -> np.ndarray:
    """Values to -1..1, then to buckets: gates (0..1) as 2v - 1, the cell state as tanh(c) (what
    the output gate lets through, as Karpathy et al. draw cells), h as it is (tanh: -1..1; relu
    RNNs: v / max v over the excerpt)."""
    if signal in BOUNDED:
        scaled = 2 * values - 1
    elif signal == "c":
        scaled = np.tanh(values)
    else:
        scaled = values / max(1.0, float(np.abs(values).max()))
    half = (UNIT_BUCKETS - 1) / 2
    return np.clip(np.rint(scaled * half + half), 0, UNIT_BUCKETS - 1).astype(int)


def _fmt(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value:+.3f}"


def report_html(document: dict[str, Any], excerpt: dict[str, Any]) -> str:
    pieces = excerpt["pieces"]
    bits = excerpt["surprisal_bits"]
    token_data = [
        {
            "piece": html.escape(p.strip() or p.replace("\n", "\\n")),
            "bits": round(float(b), 3),
            "top": [
                [html.escape(_visible(excerpt["token"](int(t)))), round(float(q), 4)]
                for t, q in zip(ids, probs, strict=True)
                if q > 0
            ],
        }
        for p, b, ids, probs in zip(pieces, bits.tolist(), excerpt["top_ids"], excerpt["top_probs"], strict=True)
    ]
    surprisal_buckets = np.clip(np.floor(bits), 0, SURPRISAL_BUCKETS - 1).astype(int)
    model = document["model"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>rnnkit inspect: {html.escape(Path(document['run']).name)}</title>",
        f"<style>{CSS}\n{colour_classes()}</style></head><body>",
        f"<h1>Inside {html.escape(document['run'])}</h1>",
        f"<p>{model['model']} {model['layers']}&times;{model['hidden']} ({document['tokenizer']} tokens), read over "
        f"{document['tokens']:,} tokens of {html.escape(document['source'])}: mean surprisal "
        f"<b>{document['mean_surprisal_bits']:.3f} bits/token</b> ({document['mean_nll_nats']:.4f} nats). "
        f"{document['streams']} stream(s)"
        + (f", {document['warmup']} warm-up tokens each" if document["streams"] > 1 else "")
        + f"; {document['seconds']:.1f} s.</p>",
        f"<p class='note'>Drawn below: tokens {document['excerpt'][0]:,} to {document['excerpt'][1]:,}"
        + (" (in the held-out half)" if document["excerpt"][0] >= document["slices"]["heldout"][0] > 0 else "")
        + ".</p>",
        "<h2 id='surprisal'>Surprisal</h2>",
        "<p class='note'>Each token coloured by -log<sub>2</sub> p(token | what came before); hover a token for "
        "the model's top predictions at that point.</p>",
        _legend("s", SURPRISAL_BUCKETS, lambda k: f"{k}{'+' if k == SURPRISAL_BUCKETS - 1 else ''} bits"),
        coloured_text(pieces, surprisal_buckets, "s", "surprisal-text", indexed=True),
        "<h2 id='units'>Units that track features of the text</h2>",
        f"<p class='note'>Pearson r between each unit and each feature over the first half of the text "
        f"(discovery), the best unit then checked on the second half (held out). A <b>finding</b>: "
        f"{html.escape(document['finding_rule'])}. The last column is the best unit of a freshly "
        f"initialised model of the same configuration (a control: some features are visible in the input "
        f"itself).</p>",
        feature_table_html(document),
        _legend("u", UNIT_BUCKETS, lambda k: f"{(k - 5) / 5:+.1f}"),
        units_html(document, excerpt),
        "<h2 id='saturation'>Gate saturation</h2>",
        saturation_html(document),
        "<div id='tip'></div>",
        f"<script type='application/json' id='token-data'>{_script_json(token_data)}</script>",
        f"<script>{JS}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _visible(token: str) -> str:
    return token.replace("\n", "\\n").replace("\t", "\\t").replace(" ", "\u2423") if token.strip() == "" else token


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '</' can end it early."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


def _legend(prefix: str, count: int, label) -> str:
    return (
        "<div class='legend'>"
        + "".join(f"<span class='{prefix}{k}'>{label(k)}</span>" for k in range(count))
        + "</div>"
    )


def feature_table_html(document: dict[str, Any]) -> str:
    rows = [
        "<table id='feature-table'><tr><th>feature</th><th>best unit</th><th>r discovery</th>"
        "<th>r held out</th><th>finding</th><th>fresh model: best r (discovery / held out)</th>"
        "<th>held-out |r| minus the fresh model's</th></tr>"
    ]
    for row in document["features"]:
        best, control = row["best"], row.get("fresh_best")
        if best is None or best["r_discovery"] is None:
            rows.append(f"<tr><td>{row['feature']}</td><td colspan='6' class='no'>constant in this text</td></tr>")
            continue
        verdict = "<span class='yes'>yes</span>" if row["finding"] else "<span class='no'>no</span>"
        fresh = "&ndash;" if not control else f"{_fmt(control['r_discovery'])} / {_fmt(control['r_heldout'])}"
        rows.append(
            f"<tr><td title='{html.escape(row['description'])}'>{row['feature']}</td>"
            f"<td>{best['unit']}</td><td class='n'>{_fmt(best['r_discovery'])}</td>"
            f"<td class='n'>{_fmt(best['r_heldout'])}</td><td>{verdict}</td><td class='n'>{fresh}</td>"
            f"<td class='n'>{_fmt(row.get('margin_over_fresh'))}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def units_html(document: dict[str, Any], excerpt: dict[str, Any]) -> str:
    out = []
    for row in document["features"]:
        best = row["best"]
        if best is None or best["r_discovery"] is None:
            continue
        values = excerpt["values"].get((best["layer"], best["signal"]))
        if values is None:
            continue
        buckets = unit_buckets(values[:, best["index"]], best["signal"])
        out.append(f"<section class='unit' id='unit-{row['feature']}'>")
        out.append(
            f"<h3>{row['feature']} <small>({html.escape(row['description'])})</small>: {best['unit']}, "
            f"r {_fmt(best['r_discovery'])} discovery, {_fmt(best['r_heldout'])} held out"
            f"{' &mdash; finding' if row['finding'] else ''}</h3>"
        )
        out.append(coloured_text(excerpt["pieces"], buckets, "u", f"unit-text-{row['feature']}", indexed=False))
        out.append("</section>")
    return "\n".join(out)


def saturation_html(document: dict[str, Any]) -> str:
    saturation = document["saturation"]
    if not saturation["trained"]:
        return "<p class='note'>This kind of cell has no gates.</p>"
    out = [
        f"<p class='note'>Each dot is one gate unit: the fraction of steps it is below "
        f"{saturation['left_below']} (left-saturated, x) against above {saturation['right_above']} "
        f"(right-saturated, y). Trained model over {saturation['trained_tokens']:,} tokens; freshly "
        f"initialised model over {saturation['fresh_tokens']:,}.</p>",
        "<div class='legend'>"
        + "".join(
            f"<span style='color:{GATE_COLOURS[g]}'>&#9679; {GATE_NAMES[g]} gate</span>"
            for g in next(iter(saturation["trained"].values()))
        )
        + "</div>",
        "<div class='plots'>",
    ]
    for layer in saturation["trained"]:
        for which in ("trained", "fresh"):
            gates = saturation[which].get(layer)
            if gates:
                out.append(f"<figure>{scatter_svg(gates)}<figcaption>{layer}, {which}</figcaption></figure>")
    out.append("</div>")
    return "\n".join(out)


def scatter_svg(gates: dict[str, dict[str, list[float]]], size: int = 240, pad: int = 34) -> str:
    """Left- against right-saturation fraction, one dot per gate unit, axes 0..1."""
    span = size - 2 * pad
    x_of = lambda v: pad + v * span  # noqa: E731
    y_of = lambda v: size - pad - v * span  # noqa: E731
    parts = [
        f"<svg class='saturation' xmlns='http://www.w3.org/2000/svg' width='{size}' height='{size}' "
        f"viewBox='0 0 {size} {size}' role='img'>",
        f"<rect x='{pad}' y='{pad}' width='{span}' height='{span}' fill='#fafafa' stroke='#999'/>",
        f"<line x1='{x_of(0)}' y1='{y_of(1)}' x2='{x_of(1)}' y2='{y_of(0)}' stroke='#ddd'/>",
    ]
    for tick in (0, 0.5, 1):
        parts.append(
            f"<text x='{x_of(tick)}' y='{size - pad + 14}' font-size='10' text-anchor='middle'>{tick:g}</text>"
        )
        parts.append(f"<text x='{pad - 6}' y='{y_of(tick) + 3}' font-size='10' text-anchor='end'>{tick:g}</text>")
    parts.append(
        f"<text x='{size / 2}' y='{size - 4}' font-size='11' text-anchor='middle'>fraction left-saturated</text>"
    )
    parts.append(
        f"<text x='10' y='{size / 2}' font-size='11' text-anchor='middle' "
        f"transform='rotate(-90 10 {size / 2})'>fraction right-saturated</text>"
    )
    for gate, values in gates.items():
        colour = GATE_COLOURS.get(gate, "#333")
        for left, right in zip(values["left"], values["right"], strict=True):
            parts.append(
                f"<circle cx='{x_of(left):.1f}' cy='{y_of(right):.1f}' r='2.2' fill='{colour}' fill-opacity='0.55'/>"
            )
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# PNGs


def write_pngs(out: Path, document: dict[str, Any]) -> list[str]:
    """saturation.png and features.png (the same numbers as inspect.json); none without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    saturation = document["saturation"]
    layers = list(saturation["trained"])
    if layers:
        fig, axes = plt.subplots(len(layers), 2, figsize=(7, 3.4 * len(layers)), squeeze=False)
        for row, layer in enumerate(layers):
            for col, which in enumerate(("trained", "fresh")):
                ax = axes[row][col]
                for gate, values in saturation[which].get(layer, {}).items():
                    ax.scatter(
                        values["left"],
                        values["right"],
                        s=6,
                        alpha=0.5,
                        color=GATE_COLOURS.get(gate),
                        label=f"{GATE_NAMES.get(gate, gate)} gate",
                    )
                ax.plot([0, 1], [1, 0], color="#ddd", lw=0.8)
                ax.set(
                    xlim=(0, 1),
                    ylim=(0, 1),
                    title=f"{layer}, {which}",
                    xlabel="fraction left-saturated (< 0.1)",
                    ylabel="fraction right-saturated (> 0.9)",
                )
                ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        fig.savefig(out / "saturation.png", dpi=110)
        plt.close(fig)
        written.append("saturation.png")
    rows = [row for row in document["features"] if row["best"] and row["best"]["r_discovery"] is not None]
    if rows:
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
        y = np.arange(len(rows))
        discovery = [abs(row["best"]["r_discovery"]) for row in rows]
        held = [abs(row["best"]["r_heldout"] or 0) * (1 if _same_sign(row["best"]) else -1) for row in rows]
        ax.barh(y - 0.2, discovery, height=0.4, label="|r| discovery (first half)")
        ax.barh(y + 0.2, held, height=0.4, label="held out (second half; negative: sign flipped)")
        ax.axvline(document["threshold"], color="k", ls="--", lw=0.8, label=f"threshold {document['threshold']}")
        ax.set_yticks(y, [f"{row['feature']}: {row['best']['unit']}" for row in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set(xlim=(-1, 1), xlabel="correlation of the best unit with the feature")
        ax.legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        fig.savefig(out / "features.png", dpi=110)
        plt.close(fig)
        written.append("features.png")
    return written


def _same_sign(best: dict[str, Any]) -> bool:
    return best["r_heldout"] is not None and np.sign(best["r_heldout"]) == np.sign(best["r_discovery"])
