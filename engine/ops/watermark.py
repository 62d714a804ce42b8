"""Invisible watermarks for the Detection canvas: embed a message into an image and write the
marked PNG, or read a mark and compare it with the expected message (bit accuracy and the
binomial p-value of that many matches by chance). The same marks as `genlab-engine watermark`
(engine/detect/watermark/, bit-compatible with the invisible-watermark package).

Tree-Ring (method "treering", engine/ops/treering_watermark.py) marks no existing image: embed
samples `count` new images from a diffusion checkpoint with the key's rings in their starting
noise (written into the folder `samples`), and verify inverts an image by DDIM with that checkpoint
and tests the rings (p-value, distance, "marked" when p < 0.01)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.core.detect_checks import TREERING_STEPS
from engine.core.flags import request_field, result_field
from engine.family.progress import Cancel, StageProgress

ACTIONS = ("embed", "verify")
METHODS = ("dwtDct", "dwtDctSvd", "treering")
TREERING = "treering"
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
    image: str = request_field("", "the image to mark or read (treering embed: none, it samples new ones)")
    action: str = request_field("verify", choices=ACTIONS)
    method: str = request_field("dwtDct", choices=METHODS)
    message: str = request_field("", "the message to embed, or the one expected (empty with verify: read `length` bits)")
    kind: str = request_field("text", "how the message is written", choices=KINDS)
    length: int = request_field(0, "bits to read when no message is expected")
    out: str = request_field("", "the marked PNG (embed)", output="file")
    diffusion_checkpoint: str = request_field("", "treering: the diffusion checkpoint that samples the marked images "
                                                  "and inverts the ones verified")
    key: str = request_field("", "treering: the key (any integer or text) that draws the rings")
    count: int = request_field(4, "treering embed: how many marked images to sample")
    seed: int = request_field(0, "treering embed: the first image's noise seed")
    steps: int = request_field(TREERING_STEPS, "treering: DDIM steps (verify with the count embed used)")
    samples: str = request_field("", "treering embed: the folder the sampled images go to", output="folder")

    def check(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"watermark: action {self.action!r} is not one of {', '.join(ACTIONS)}")
        if self.method not in METHODS:
            raise ValueError(f"watermark: method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.method == TREERING:
            self._check_treering()
            return
        if not self.image:
            raise ValueError(f"watermark {self.action}: the request is missing 'image'")
        if self.kind not in KINDS:
            raise ValueError(f"watermark: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.action == "embed" and not self.out:
            raise ValueError("watermark embed: the request is missing 'out' (the marked PNG)")
        if self.action == "embed" and Path(self.out).suffix.lower() != ".png":
            raise ValueError(f"{self.out}: the marked image is written as PNG (lossy formats weaken the mark)")

    def _check_treering(self) -> None:
        where = f"watermark {self.action} treering"
        if not self.diffusion_checkpoint:
            raise ValueError(f"{where}: choose a diffusion checkpoint (ddpm, edm, flow_matching or ldm): it samples "
                             f"the marked images and inverts the ones verified")
        if not str(self.key).strip():
            raise ValueError(f"{where}: give the key (any integer or text) that draws the rings")
        if self.steps < 1:
            raise ValueError(f"{where}: steps must be at least 1, got {self.steps}")
        if self.action == "embed":
            if self.count < 1:
                raise ValueError(f"{where}: count must be at least 1, got {self.count}")
            if not self.samples:
                raise ValueError(f"{where}: the request is missing 'samples' (the folder for the sampled images)")
        elif not self.image:
            raise ValueError(f"{where}: the request is missing 'image' (the image to verify)")


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
    method: str = result_field("")
    samples: list = result_field(factory=list)   # treering embed: the sampled, marked PNGs
    distance: float | None = result_field(None)  # treering verify: mean |coefficient - key| in the disc
    ring: dict = result_field(factory=dict)      # treering: key, radius, channel, latent, steps, checkpoint


def run(session, req: WatermarkRequest, progress: StageProgress, cancel: Cancel) -> WatermarkResult:
    if req.method == TREERING:
        from engine.ops.treering_watermark import run_treering
        return run_treering(req, progress, cancel)
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
        return WatermarkResult("embed", req.image, req.out, messages.bits_to_string(expected), warnings=warnings,
                               method=req.method)
    bits = (read_scores(bgr, n, req.method) * 255 > 127).astype(np.uint8)
    progress(req.action, 1, 1)
    res = WatermarkResult("verify", req.image, bits=messages.bits_to_string(bits), text=messages.bits_to_text(bits),
                          warnings=warnings, method=req.method)
    if expected is not None:
        m = messages.compare(bits, expected)
        res.expected, res.matches, res.bit_accuracy, res.p_value = (messages.bits_to_string(expected), m.matches,
                                                                     m.accuracy, m.p_value)
        res.verdict = verdict(m.p_value)
    return res
