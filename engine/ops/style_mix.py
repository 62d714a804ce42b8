"""The style-mixing figure: row sources down the left, column sources across the top; cell (r, c)
is row r with the chosen layers' styles taken from column c. Sources are seeds or images."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from engine.family.interfaces import StyleMixer
from engine.family.progress import Cancel, StageProgress
from engine.ops.base import ModelSession, check_encode_steps, check_scale
from engine.ops.project import encode_source
from engine.core.flags import Flag, request_field, result_field, seeds_or_paths


@dataclass
class StyleMixRequest:
    rows: list = request_field(help="row sources: seeds and/or image paths, comma-separated", parse=seeds_or_paths)
    cols: list = request_field(help="column sources (they give the chosen layers' styles)", parse=seeds_or_paths)
    out: str = request_field(output="file", cli_default="mix.png")
    layers: list = request_field(  # indices, ranges "0-3", or group names
        factory=lambda: ["coarse"], cli_default="coarse",
        help="style layers taken from the columns: 0-3, 0,2,5, coarse, middle, fine or all (default coarse)")
    options: dict = request_field(factory=dict, sample_options=(
        Flag(key="truncation_psi", help="truncation psi (1 = off; default: the run's)"), "noise_mode"))
    encode_steps: int = request_field(0, "optimisation steps to project an image", flag="--project-steps",
                                      cli_default=200)
    scale: int = request_field(1, "upscale the grid by this factor (nearest)", cli_default=2)

    def check(self) -> None:
        check_encode_steps(self.encode_steps)
        check_scale(self.scale)


@dataclass
class StyleMixResult:
    path: str = result_field(report="out")
    rows: int
    cols: int
    layers: list


def parse_layers(spec, num_ws: int, groups: dict[str, list[int]]) -> list[int]:
    """[0, 2], '0-3', '0,2,5', 'coarse', ['middle,fine'] or 'all' -> sorted style indices."""
    parts: list = []
    for item in ([spec] if isinstance(spec, str) else list(spec)):
        parts += item.split(",") if isinstance(item, str) else [item]
    out: list[int] = []
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out.append(part)
            continue
        text = str(part).strip().lower()
        if not text:
            continue
        if text == "all":
            out += list(range(num_ws))
        elif text in groups:
            out += groups[text]
        elif "-" in text and text.replace("-", "").isdigit():
            a, b = text.split("-", 1)
            out += list(range(int(a), int(b) + 1))
        elif text.isdigit():
            out.append(int(text))
        else:
            raise ValueError(f"layers: {text!r} is not a layer number, a range like 0-3, "
                             f"or one of: all, {', '.join(groups)}")
    bad = [i for i in out if not 0 <= i < num_ws]
    if bad:
        raise ValueError(f"layers: layer {bad[0]} is out of range; this model has layers 0..{num_ws - 1}")
    return sorted(set(out))


def run(session: ModelSession, req: StyleMixRequest, progress: StageProgress, cancel: Cancel) -> StyleMixResult:
    from engine.family.grid import make_grid, save_png
    session.require(StyleMixer, "has no per-layer styles to mix (style mixing needs a style-based generator)")
    fam = session.family
    if not req.rows or not req.cols:
        raise ValueError("style mixing needs at least one row and one column source")
    options = fam.sample_options(req.options)
    layers = parse_layers(req.layers, len(fam.style_layers()), fam.style_groups())
    labels = session.labels(None)
    rows = torch.cat([encode_source(session, s, labels, options, req.encode_steps, progress, cancel) for s in req.rows])
    cols = torch.cat([encode_source(session, s, labels, options, req.encode_steps, progress, cancel) for s in req.cols])
    grid = fam.style_mix(rows, cols, layers, options=options)
    save_png(make_grid(grid, len(req.cols) + 1, scale=req.scale), Path(req.out))
    return StyleMixResult(req.out, len(req.rows), len(req.cols), layers)
