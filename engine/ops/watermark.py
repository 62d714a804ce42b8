"""Invisible watermarks for the Detection canvas: embed a message into an image and write the
marked PNG, or read a mark and compare it with the expected message (bit accuracy and the
binomial p-value of that many matches by chance). The same marks as `genlab-engine watermark`
(engine/detect/watermark/, bit-compatible with the invisible-watermark package)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.core.flags import request_field, result_field
from engine.family.progress import Cancel, StageProgress

ACTIONS = ("embed", "verify")
KINDS = ("text", "hex", "bits", "sdxl")    # how `message` is written


def message_bits(message: str, kind: str):
    from engine.detect.watermark import messages
    if kind == "sdxl":
        return messages.SDXL_BITS
    if not message:
        raise ValueError("watermark: the message is empty")
    return {"text": messages.bits_from_text, "hex": messages.bits_from_hex,
            "bits": messages.bits_from_string}[kind](message)


def verdict(p_value: float) -> str:
    """'marked', 'weakened' (chance rarely reads so many bits right: re-encoded or resized) or 'absent'."""
    from engine.detect.watermark.check import MARKED_P, WEAK_P
    return "marked" if p_value < MARKED_P else "weakened" if p_value < WEAK_P else "absent"


@dataclass
class WatermarkRequest:
    image: str = request_field(help="the image to mark or read")
    action: str = request_field("verify", choices=ACTIONS)
    method: str = request_field("dwtDct", choices=("dwtDct", "dwtDctSvd"))
    message: str = request_field("", "the message to embed, or the one expected (empty with verify: read `length` bits)")
    kind: str = request_field("text", "how the message is written", choices=KINDS)
    length: int = request_field(0, "bits to read when no message is expected")
    out: str = request_field("", "the marked PNG (embed)", output="file")

    def check(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"watermark: action {self.action!r} is not one of {', '.join(ACTIONS)}")
        if self.kind not in KINDS:
            raise ValueError(f"watermark: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.action == "embed" and not self.out:
            raise ValueError("watermark embed: the request is missing 'out' (the marked PNG)")
        if self.action == "embed" and Path(self.out).suffix.lower() != ".png":
            raise ValueError(f"{self.out}: the marked image is written as PNG (lossy formats weaken the mark)")


@dataclass
class WatermarkResult:
    action: str = result_field()
    image: str = result_field()
    out: str = result_field("")                  # the marked PNG (embed)
    bits: str = result_field("")                 # embedded, or read
    text: str | None = result_field(None)        # the bits read as UTF-8 text, where they are
    expected: str = result_field("")
    matches: int = result_field(0)
    bit_accuracy: float | None = result_field(None)
    p_value: float | None = result_field(None)
    verdict: str = result_field("")              # what the p-value says, by the watermark check's bounds
    warnings: list = result_field(factory=list)


def run(session, req: WatermarkRequest, progress: StageProgress, cancel: Cancel) -> WatermarkResult:
    import cv2
    import numpy as np

    from engine.core.util import atomic_write_bytes
    from engine.detect.image import load_rgb
    from engine.detect.watermark import messages
    from engine.detect.watermark.dwt_dct import capacity, embed, read_scores
    bgr = np.ascontiguousarray(load_rgb(req.image)[..., ::-1])
    where = Path(req.image).name
    expected = message_bits(req.message, req.kind) if (req.message or req.kind == "sdxl" or req.action == "embed") \
        else None
    n = len(expected) if expected is not None else req.length
    if n < 1:
        raise ValueError("watermark verify: give the expected message or the number of bits to read")
    warnings = [f"{where}: {w}" for w in capacity(bgr.shape, n, req.method).warnings()]
    progress(req.action, 0, 1)
    if req.action == "embed":
        marked = embed(bgr, expected, req.method)
        ok, buf = cv2.imencode(".png", marked)
        if not ok:
            raise ValueError(f"{req.out}: could not encode the PNG")
        Path(req.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(req.out), buf.tobytes())
        progress(req.action, 1, 1)
        return WatermarkResult("embed", req.image, req.out, messages.bits_to_string(expected), warnings=warnings)
    bits = (read_scores(bgr, n, req.method) * 255 > 127).astype(np.uint8)
    progress(req.action, 1, 1)
    res = WatermarkResult("verify", req.image, bits=messages.bits_to_string(bits), text=messages.bits_to_text(bits),
                          warnings=warnings)
    if expected is not None:
        m = messages.compare(bits, expected)
        res.expected, res.matches, res.bit_accuracy, res.p_value = (messages.bits_to_string(expected), m.matches,
                                                                     m.accuracy, m.p_value)
        res.verdict = verdict(m.p_value)
    return res
