"""`genlab-engine watermark embed|verify`: invisible watermarks bit-compatible with the
invisible-watermark package (imwatermark): DWT-DCT and DWT-DCT-SVD.

    embed  IMAGE --out OUT (--text T | --bits 0101.. | --hex B3EC.. | --sdxl) [--method dwtDct]
    verify IMAGE (--length N | --expect-text T | --expect-bits .. | --expect-hex .. | --sdxl) [--method ..]

verify prints the bits read as a 0/1 string; with an expected message also the bit accuracy and
the binomial p-value of that many matches by chance. Images under 256x256 pixels, which the
package refuses, are marked and read here while each bit has a block (with a warning: fewer blocks
vote per bit, so the mark is weaker, and imwatermark will not read it)."""
from __future__ import annotations

import json
from pathlib import Path

from engine.cli.common import CLIError, warn

HELP = "embed or verify an invisible watermark (dwtDct, dwtDctSvd; compatible with invisible-watermark)"


def _message_args(p, prefix: str, what: str) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(f"--{prefix}text", help=f"{what}: UTF-8 text (its bytes' bits, as imwatermark's 'bytes')")
    g.add_argument(f"--{prefix}bits", help=f"{what}: a string of 0s and 1s")
    g.add_argument(f"--{prefix}hex", help=f"{what}: hexadecimal bytes (imwatermark's 'b16')")
    g.add_argument("--sdxl", action="store_true", help=f"{what}: Stable Diffusion XL's 48 bits (0xB3EC907BB19E)")


def add_arguments(p) -> None:
    from engine.detect.watermark.dwt_dct import METHODS
    sub = p.add_subparsers(dest="action", required=True)
    e = sub.add_parser("embed", help="mark an image")
    e.add_argument("image")
    e.add_argument("--out", required=True, help="the marked image (PNG keeps the mark best)")
    e.add_argument("--method", choices=METHODS, default="dwtDct")
    _message_args(e, "", "the message")
    v = sub.add_parser("verify", help="read a mark")
    v.add_argument("image")
    v.add_argument("--method", choices=METHODS, default="dwtDct")
    v.add_argument("--length", type=int, help="bits to read (when no expected message is given)")
    _message_args(v, "expect-", "the expected message")
    v.add_argument("--json", action="store_true", help="one JSON object instead of lines")


def _bits(args, prefix: str):
    from engine.detect.watermark import messages
    text, bits, hexs = (getattr(args, f"{prefix}{k}") for k in ("text", "bits", "hex"))
    try:
        if args.sdxl:
            return messages.SDXL_BITS
        if text is not None:
            if not text:
                raise ValueError("the text is empty")
            return messages.bits_from_text(text)
        if bits is not None:
            return messages.bits_from_string(bits)
        if hexs is not None:
            return messages.bits_from_hex(hexs)
    except ValueError as e:
        raise CLIError(str(e)) from None
    return None


def _read_bgr(path: str):
    import numpy as np

    from engine.detect.image import load_rgb
    try:
        return np.ascontiguousarray(load_rgb(path)[..., ::-1])
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file") from None
    except ValueError as e:
        raise CLIError(f"{path}: {e}") from None


def _embed(args) -> int:
    import cv2

    from engine.detect.watermark.dwt_dct import WatermarkError, capacity, embed
    bits = _bits(args, "")
    if bits is None:
        raise CLIError("watermark embed: give the message: --text, --bits, --hex or --sdxl")
    bgr = _read_bgr(args.image)
    try:
        marked = embed(bgr, bits, args.method)
    except WatermarkError as e:
        raise CLIError(f"{args.image}: {e}") from None
    for w in capacity(bgr.shape, len(bits), args.method).warnings():
        warn(f"{args.image}: {w}")
    out = Path(args.out)
    if out.suffix.lower() in (".jpg", ".jpeg", ".webp"):
        warn(f"{out}: lossy formats weaken the mark; PNG keeps it whole")
    out.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(out.suffix or ".png", marked)
    if not ok:
        raise CLIError(f"{out}: cannot write this image format")
    from engine.core.util import atomic_write_bytes
    atomic_write_bytes(out, buf.tobytes())
    print(f"marked {args.image} -> {out}: {len(bits)} bits with {args.method}")
    return 0


def _verify(args) -> int:
    from engine.detect.watermark import messages
    from engine.detect.watermark.dwt_dct import WatermarkError, capacity, read_scores
    expected = _bits(args, "expect_")
    n = len(expected) if expected is not None else args.length
    if not n or n < 1:
        raise CLIError("watermark verify: give --length N or the expected message (--expect-text, --expect-bits, "
                       "--expect-hex, --sdxl)")
    if expected is not None and args.length and args.length != n:
        raise CLIError(f"--length {args.length} differs from the expected message's {n} bits")
    bgr = _read_bgr(args.image)
    try:
        scores = read_scores(bgr, n, args.method)
    except WatermarkError as e:
        raise CLIError(f"{args.image}: {e}") from None
    warnings = [f"{args.image}: {w}" for w in capacity(bgr.shape, n, args.method).warnings()]
    bits = (scores * 255 > 127).astype("uint8")
    out = {"image": args.image, "method": args.method, "bits": messages.bits_to_string(bits),
           "text": messages.bits_to_text(bits)}
    if expected is not None:
        m = messages.compare(bits, expected)
        out.update(expected=messages.bits_to_string(expected), matches=m.matches, bit_accuracy=m.accuracy,
                   p_value=m.p_value)
    if args.json:
        print(json.dumps({**out, "warnings": warnings}))
        return 0
    for w in warnings:
        warn(w)
    print(out["bits"])
    if expected is not None:
        print(f"bit accuracy {m.accuracy:.4f} ({m.matches}/{m.bits}), p-value {m.p_value:.3g}")
    return 0


def run(args) -> int:
    return _embed(args) if args.action == "embed" else _verify(args)
