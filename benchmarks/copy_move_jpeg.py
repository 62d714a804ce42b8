"""Copy-move after JPEG re-saving: how often the copy-move check finds a region copied within a photo
once the forged image is saved as JPEG 90/75/50, and how often it flags untouched images (photos,
textures, smooth random fields) saved the same way. Each photo is a 256x256 centre crop of one of
scikit-image's; each forgery copies a 48x48 square to a random place at least 56 px away (found: the
check's shift is the planted one). Beside the check as it is, "exact" is the matching it had before
(fine bins, every block at the exact tolerance, every vote counted), for comparison.

    python benchmarks/copy_move_jpeg.py [--forgeries 4]
"""
from __future__ import annotations

import argparse
import io
import time

from common import write_result

import numpy as np

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry")
TEXTURES = ("brick", "grass", "gravel")
QUALITIES = (None, 90, 75, 50)
SIDE, COPY = 256, 48
EXACT = {"QUANT": 4.0, "MIN_DETAIL": float("inf"), "SOLID": 0.0}   # the settings before JPEG robustness


def crop(name: str) -> np.ndarray:
    import skimage.data
    a = getattr(skimage.data, name)()
    a = a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2)
    h, w = a.shape[:2]
    y, x = (h - SIDE) // 2, (w - SIDE) // 2
    return np.ascontiguousarray(a[y:y + SIDE, x:x + SIDE, :3])


def smooth_field(seed: int) -> np.ndarray:
    import cv2
    f = cv2.GaussianBlur(np.random.default_rng(seed).normal(0, 1, (SIDE, SIDE)), (0, 0), 3 + 2 * seed)
    f = np.round((f - f.min()) / np.ptp(f) * 255).astype(np.uint8)
    return np.repeat(f[..., None], 3, axis=2)


def jpeg(rgb: np.ndarray, quality: int | None) -> np.ndarray:
    if quality is None:
        return rgb
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def forge(img: np.ndarray, rng) -> tuple[np.ndarray, tuple[int, int], bool]:
    """The image with a COPY x COPY square copied elsewhere, the shift as the check reports it, and
    whether the source square is mostly flat (no check of this kind can find a copy of a plain wall)."""
    from engine.detect.copy_move import MIN_STD, _local_std
    from engine.detect.image import luminance
    while True:
        (y0, x0), (y1, x1) = rng.integers(0, SIDE - COPY, (2, 2))
        if max(abs(y1 - y0), abs(x1 - x0)) >= COPY + 8:
            break
    out = img.copy()
    out[y1:y1 + COPY, x1:x1 + COPY] = img[y0:y0 + COPY, x0:x0 + COPY]
    dy, dx = int(y1 - y0), int(x1 - x0)
    shift = (dy, dx) if dy > 0 or (dy == 0 and dx >= 0) else (-dy, -dx)
    std = _local_std(luminance(img[y0:y0 + COPY, x0:x0 + COPY]).astype(np.float64))
    return out, shift, bool((std >= MIN_STD).mean() < 0.25)


def find(rgb: np.ndarray, settings: dict):
    import engine.detect.copy_move as cm
    from engine.detect.image import luminance
    saved = {k: getattr(cm, k) for k in settings}
    try:
        for k, v in settings.items():
            setattr(cm, k, v)
        return cm.find_copy_move(luminance(rgb))
    finally:
        for k, v in saved.items():
            setattr(cm, k, v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--forgeries", type=int, default=4, help="forgeries per photo")
    args = ap.parse_args()
    t0 = time.time()
    variants = {"robust": {}, "exact": EXACT}
    found = {v: {str(q): 0 for q in QUALITIES} for v in variants}
    found_detailed = {v: {str(q): 0 for q in QUALITIES} for v in variants}
    alarms = {v: {str(q): [] for q in QUALITIES} for v in variants}
    forgeries = flat = 0
    for i, name in enumerate(PHOTOS):
        rng = np.random.default_rng(i)
        img = crop(name)
        for _ in range(args.forgeries):
            forged, shift, is_flat = forge(img, rng)
            forgeries += 1
            flat += is_flat
            for q in QUALITIES:
                x = jpeg(forged, q)
                for v, settings in variants.items():
                    hit = find(x, settings).shift == shift
                    found[v][str(q)] += hit
                    found_detailed[v][str(q)] += hit and not is_flat
    untouched = {n: crop(n) for n in PHOTOS + TEXTURES} | {f"smooth field {s}": smooth_field(s) for s in range(3)}
    for name, img in untouched.items():
        for q in QUALITIES:
            x = jpeg(img, q)
            for v, settings in variants.items():
                r = find(x, settings)
                if r.shift is not None:
                    alarms[v][str(q)].append(f"{name} {list(r.shift)} ({r.votes} votes)")
    res = {"photos": PHOTOS, "forgeries": forgeries, "flat_sources": flat, "copy_px": COPY, "side": SIDE,
           "qualities": [str(q) for q in QUALITIES], "found": found, "found_textured_sources": found_detailed,
           "untouched": len(untouched), "false_alarms": alarms, "seconds": round(time.time() - t0, 1)}
    write_result("copy_move_jpeg", res)


if __name__ == "__main__":
    main()
