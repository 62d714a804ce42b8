"""Generation parameters inside PNG files, so an image says how it was made (A1111's "PNG Info").

Every PNG GenLab writes for a person (samples, inpaintings) carries two text chunks:
  genlab      JSON: what GenLab reads back: {"kind": "sample" | "inpaint", "checkpoint", "step",
              "family", "seed", "options", …, "genlab_version"}
  parameters  one readable line ("Seed: 3, steps: 50, …, Checkpoint: step_000500.safetensors
              (step 500, ddpm)"), as other tools write it, for people and their tools.
read_png_info() gives the genlab dict back: None for a PNG without one, a ValueError naming the file
for one that cannot be read."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from engine import __version__

KEY = "genlab"            # the JSON chunk
PARAMETERS_KEY = "parameters"


def png_bytes(img, meta: dict | None = None, parameters: str = "") -> bytes:
    """A PNG of `img` (a PIL image, or an H×W×C array: uint8, or float in [0, 1]) with `meta` as the
    genlab chunk (stamped with this GenLab's version) and `parameters` as the readable line."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo
    pil = img if isinstance(img, Image.Image) else _pil_image(np.asarray(img))
    info = PngInfo()
    if meta is not None:
        info.add_text(KEY, json.dumps({**meta, "genlab_version": __version__}))
    if parameters:
        info.add_text(PARAMETERS_KEY, parameters)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def write_png(path: str | Path, img, meta: dict | None = None, parameters: str = "") -> None:
    """png_bytes() written atomically (a reader never sees half a file)."""
    from engine.core.util import atomic_write_bytes
    atomic_write_bytes(Path(path), png_bytes(img, meta, parameters))


def read_png_info(path: str | Path) -> dict | None:
    """The genlab dict of a PNG, or None when it has none (a PNG from elsewhere). A missing file,
    a file that is not a PNG or a broken genlab chunk is a ValueError naming the file."""
    from PIL import Image, UnidentifiedImageError
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such file")
    try:
        with Image.open(p) as im:
            if im.format != "PNG":
                raise ValueError(f"{p}: not a PNG file ({im.format})")
            im.load()  # text chunks after the image data are read only with it
            text = dict(getattr(im, "text", {}) or {})
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"{p}: not a readable PNG file ({e})") from None
    raw = text.get(KEY)
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: its GenLab parameters are not valid JSON ({e.msg})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{p}: its GenLab parameters are not a JSON object")
    return meta


def parameters_line(items: dict, meta: dict) -> str:
    """One readable line: `items` in order as "Name: value" (None values left out), then where the
    image came from ("Checkpoint: step_000500.safetensors (step 500, ddpm)") when meta says."""
    parts = [f"{k}: {v}" for k, v in items.items() if v is not None]
    if meta.get("checkpoint"):
        parts.append(f"Checkpoint: {Path(meta['checkpoint']).name} (step {meta.get('step')}, {meta.get('family')})")
    return ", ".join(parts)


def _pil_image(arr: np.ndarray):
    from PIL import Image
    if arr.dtype != np.uint8:  # float in [0, 1]
        arr = (np.clip(arr, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    return Image.fromarray(arr, "L" if arr.ndim == 2 else "RGB")
