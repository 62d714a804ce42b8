"""The FD-vs-NFE plot of a sweep as PNG bytes, drawn with PIL (the engine has no plotting library
and never imports Qt): one coloured line with dots per solver, NFE on a log-2 x axis, the
reference FD as a dashed grey line, a legend in the top-right corner."""
from __future__ import annotations

import io
import math

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 720, 460
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 50     # margins around the plotting area, px
# distinguishable on white, colour-blind-safe first (Okabe-Ito), then more
COLOURS = [(0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0), (86, 180, 233),
           (120, 120, 120), (150, 60, 30), (60, 60, 160), (100, 140, 20)]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round values spanning [lo, hi] for a linear axis (1, 2 or 5 times a power of ten apart)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    ticks = [math.floor(lo / step) * step]
    while ticks[-1] < hi - step * 1e-9:   # the last tick at or above hi: every value inside
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def render_sweep_png(record: dict) -> bytes:
    """record: what sweep.json holds (points with solver, nfe and fd; reference; metric_title)."""
    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    points = [p for p in record["points"] if math.isfinite(p["fd"])]
    title = record.get("metric_title") or "FD"
    ref = record.get("reference")
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM   # plotting area (y0 top)
    nfes = [p["nfe"] for p in points] or [1]
    fds = [p["fd"] for p in points] + ([ref["fd"]] if ref else [])
    fds = fds or [0.0, 1.0]
    lx_lo, lx_hi = math.log2(min(nfes)), math.log2(max(nfes))
    if lx_hi - lx_lo < 1:
        lx_lo, lx_hi = lx_lo - 0.5, lx_hi + 0.5
    pad = 0.05 * (lx_hi - lx_lo)
    lx_lo, lx_hi = lx_lo - pad, lx_hi + pad
    yt = nice_ticks(min(0.0, min(fds)), max(fds))
    y_lo, y_hi = yt[0], yt[-1]

    def px(nfe: float) -> float:
        return x0 + (math.log2(nfe) - lx_lo) / (lx_hi - lx_lo) * (x1 - x0)

    def py(v: float) -> float:
        return y1 - (v - y_lo) / (y_hi - y_lo) * (y1 - y0)

    # grid and ticks: y at round values, x at the powers of two
    for v in yt:
        y = py(v)
        d.line([(x0, y), (x1, y)], fill=(230, 230, 230))
        label = f"{v:g}"
        d.text((x0 - 6 - d.textlength(label, font=font), y - 6), label, fill="black", font=font)
    for e in range(math.ceil(lx_lo), math.floor(lx_hi) + 1):
        x = px(2 ** e)
        d.line([(x, y0), (x, y1)], fill=(230, 230, 230))
        label = str(2 ** e)
        d.text((x - d.textlength(label, font=font) / 2, y1 + 6), label, fill="black", font=font)
    d.rectangle([x0, y0, x1, y1], outline="black")
    xlabel = "network evaluations (NFE, log scale)"
    d.text(((x0 + x1) / 2 - d.textlength(xlabel, font=font) / 2, HEIGHT - 20), xlabel, fill="black", font=font)
    d.text((8, y0 - 16), f"{title} (lower is better)", fill="black", font=font)
    head = f"{title} against network evaluations, one line per solver"
    d.text(((x0 + x1) / 2 - d.textlength(head, font=font) / 2, 10), head, fill="black", font=font)

    if ref:
        y = py(ref["fd"])
        for xa in range(int(x0), int(x1), 12):
            d.line([(xa, y), (min(xa + 6, x1), y)], fill=(110, 110, 110), width=1)
        d.text((x0 + 4, y - 13), f"{ref['solver']}-{ref['steps']}: {ref['fd']:.4g}", fill=(90, 90, 90), font=font)

    solvers = list(dict.fromkeys(p["solver"] for p in points))
    for i, name in enumerate(solvers):
        colour = COLOURS[i % len(COLOURS)]
        mine = sorted((p for p in points if p["solver"] == name), key=lambda p: p["nfe"])
        xy = [(px(p["nfe"]), py(p["fd"])) for p in mine]
        if len(xy) > 1:
            d.line(xy, fill=colour, width=2)
        for x, y in xy:
            d.ellipse([x - 3.5, y - 3.5, x + 3.5, y + 3.5], fill=colour)
        # legend entry
        ly = y0 + 8 + 16 * i
        d.line([(x1 - 110, ly + 6), (x1 - 90, ly + 6)], fill=colour, width=2)
        d.text((x1 - 84, ly), name, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
