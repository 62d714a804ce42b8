"""The `watermark` check: does the image carry Stable Diffusion XL's invisible watermark (the
invisible-watermark package's dwtDct mark with SDXL's 48-bit message)?"""
from __future__ import annotations

import numpy as np

from engine.detect.image import as_rgb
from engine.detect.result import CheckResult
from engine.detect.watermark.dwt_dct import capacity, read_scores
from engine.detect.watermark.messages import SDXL_BITS, SDXL_METHOD, bits_to_string, compare

MARKED_P = 1e-6      # a p-value below this: the message is there (41 or more of 48 bits)
WEAK_P = 1e-3        # below this: chance rarely reads so many bits right, a weakened mark likely
SDXL_MIN_SIDE = 256  # SDXL's watermarker leaves narrower images unmarked


def check(image: np.ndarray, context=None) -> CheckResult:
    rgb = as_rgb(image)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    n = len(SDXL_BITS)
    if rgb.shape[1] < SDXL_MIN_SIDE or capacity(bgr.shape, n, SDXL_METHOD).blocks < n:
        return CheckResult("watermark", float("nan"),
                           f"{rgb.shape[1]} pixels wide: Stable Diffusion XL marks only images {SDXL_MIN_SIDE} pixels "
                           f"wide or more, so there is no mark to read.", details={"read": None})
    scores = read_scores(bgr, n, SDXL_METHOD)
    bits = (scores * 255 > 127).astype(np.uint8)
    m = compare(bits, SDXL_BITS)
    if m.p_value < MARKED_P:
        sentence = (f"It carries Stable Diffusion XL's invisible watermark: {m.matches} of {m.bits} bits match "
                    f"(p = {m.p_value:.1g} by chance).")
    elif m.p_value < WEAK_P:
        sentence = (f"Likely Stable Diffusion XL's invisible watermark, weakened (re-encoding, resizing): {m.matches} "
                    f"of {m.bits} bits match (p = {m.p_value:.1g} by chance).")
    else:
        sentence = (f"No Stable Diffusion XL watermark: {m.matches} of {m.bits} bits match, as chance could "
                    f"(p = {m.p_value:.2g}).")
    return CheckResult("watermark", m.accuracy, sentence,
                       details={"read": bits_to_string(bits), "expected": bits_to_string(SDXL_BITS),
                                "matches": m.matches, "p_value": m.p_value, "method": SDXL_METHOD,
                                "bit_votes": np.round(scores, 3).tolist()})
