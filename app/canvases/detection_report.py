"""The Detection canvas's HTML report: one self-contained file (every picture embedded as a base64
PNG, the spectrum profiles as inline SVG) with the table of scores and each check's sentence, and
each image's Tree-Ring verification (p-value, verdict) where the watermark panel verified it.
Plain Python: it reads the PNGs the detect op wrote and formats text; nothing is computed."""
from __future__ import annotations

import base64
import html
from pathlib import Path

SUSPICIOUS_COLOR = "#c0392b"
COLORS = ("#2a7ab9", "#e67e22", "#27ae60", "#8e44ad")


def png_data_uri(path: str) -> str:
    """data:image/png;base64,… of a PNG file ('' when it is gone)."""
    try:
        return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
    except OSError:
        return ""


def score_text(score) -> str:
    return "—" if score is None else f"{score:.4g}"


def svg_plot(plot: dict, width: int = 360, height: int = 180) -> str:
    """The plot's curves as an inline SVG polyline each, with a legend (no library, no script)."""
    xs = plot.get("x") or []
    series = plot.get("series") or {}
    ys = [v for s in series.values() for v in s if v is not None]
    if not xs or not ys:
        return ""
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = lambda x: 30 + (x - x0) / ((x1 - x0) or 1) * (width - 40)             # noqa: E731
    sy = lambda y: height - 25 - (y - y0) / ((y1 - y0) or 1) * (height - 45)   # noqa: E731
    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" '
             f'style="background:#fff;border:1px solid #ccc">']
    for k, (name, values) in enumerate(series.items()):
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, values) if y is not None)
        color = COLORS[k % len(COLORS)]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>')
        parts.append(f'<text x="{40 + 150 * k}" y="14" font-size="11" fill="{color}">{html.escape(name)}</text>')
    parts.append(f'<text x="{width // 2 - 40}" y="{height - 6}" font-size="11">{html.escape(plot.get("x_label", ""))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def treering_text(ev: dict) -> str:
    """'p = 3.1e-05, marked (key “7”, 50 DDIM steps, model.safetensors)': one Tree-Ring reading."""
    ring = ev.get("ring") or {}
    return (f"p = {score_text(ev.get('p_value'))}, {ev.get('verdict', '')} (key “{ring.get('key', '')}”, "
            f"{ring.get('steps')} DDIM steps, {Path(ring.get('checkpoint', '')).name})")


def report_html(rows: list[dict], checks: list[dict], failures: list[str], verified: dict | None = None,
                title: str = "GenLab detection report") -> str:
    """rows: the detect op's rows; checks: [{"key", "title", "direction"}] in table order; verified:
    image -> the watermark op's verify result (only Tree-Ring's are reported: the DWT watermark is a check)."""
    esc = html.escape
    rings = {k: ev for k, ev in (verified or {}).items() if ev.get("method") == "treering"}
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>"
           "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}"
           f".sus{{color:{SUSPICIOUS_COLOR};font-weight:bold}}img{{max-width:320px;margin:4px}}"
           "</style></head><body>", f"<h1>{esc(title)}</h1>",
           "<table><tr><th>image</th>" + "".join(
               f"<th>{esc(c['title'])}<br><small>{esc(arrow(c['direction']))}</small></th>" for c in checks) +
           ("<th>Tree-Ring<br><small>p-value, verdict</small></th>" if rings else "") + "</tr>"]
    for row in rows:
        by_key = {r["check"]: r for r in row["results"]}
        cells = []
        for c in checks:
            r = by_key.get(c["key"])
            cls = " class='sus'" if r and r.get("suspicious") else ""
            cells.append(f"<td{cls}>{score_text(r['score']) if r else 'failed'}</td>")
        if rings:
            ev = rings.get(row["image"])
            cls = " class='sus'" if ev and ev.get("verdict") == "marked" else ""
            cells.append(f"<td{cls}>{score_text(ev.get('p_value')) + ', ' + esc(ev.get('verdict', '')) if ev else 'not verified'}"
                         f"</td>")
        out.append(f"<tr><td>{esc(Path(row['image']).name)}</td>{''.join(cells)}</tr>")
    out.append("</table>")
    if failures:
        out.append("<h2>Not checked</h2><ul>" + "".join(f"<li>{esc(f)}</li>" for f in failures) + "</ul>")
    for row in rows:
        out.append(f"<h2>{esc(Path(row['image']).name)}</h2><p><small>{esc(row['image'])}, "
                   f"{row['size'][0]}×{row['size'][1]} pixels</small></p>")
        out.append(f"<img alt='image' src='{png_data_uri(row['preview'])}'>")
        for r in row["results"]:
            m = r.get("map") or {}
            if m.get("png"):
                out.append(f"<figure style='display:inline-block'><img alt='{esc(r['check'])} map' "
                           f"src='{png_data_uri(m['png'])}'><figcaption>{esc(r['title'])}: {esc(m.get('title', ''))}"
                           f"</figcaption></figure>")
        for r in row["results"]:
            if r.get("plot"):
                out.append(f"<div>{svg_plot(r['plot'])}</div>")
        out.append("<ul>" + "".join(
            f"<li{' class=sus' if r.get('suspicious') else ''}><b>{esc(r['title'])}</b> "
            f"({score_text(r['score'])}): {esc(r['explanation'])}</li>" for r in row["results"]) +
            (f"<li{' class=sus' if rings[row['image']].get('verdict') == 'marked' else ''}><b>Tree-Ring</b>: "
             f"{esc(treering_text(rings[row['image']]))}</li>" if row["image"] in rings else "") + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def arrow(direction: str) -> str:
    return {"higher": "↑ higher is suspicious", "lower": "↓ lower is suspicious"}.get(direction, "a measurement")


def write_report(path: str | Path, rows, checks, failures, verified: dict | None = None) -> Path:
    from engine.core.util import atomic_write_bytes
    path = Path(path)
    atomic_write_bytes(path, report_html(rows, checks, failures, verified).encode("utf-8"))
    return path
