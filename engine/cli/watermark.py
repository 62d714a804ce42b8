"""`genlab-engine watermark embed|verify`: invisible watermarks bit-compatible with the
invisible-watermark package (imwatermark): DWT-DCT and DWT-DCT-SVD; and the Tree-Ring mark of
GenLab's own diffusion samples (engine/detect/watermark/treering.py).

    embed  IMAGE --out OUT (--text T | --bits 0101.. | --hex B3EC.. | --sdxl) [--method dwtDct]
    verify IMAGE (--length N | --expect-text T | --expect-bits .. | --expect-hex .. | --sdxl) [--method ..]
    embed  --method treering --checkpoint CKPT --key K --count N --out DIR [--seed S] [--steps N]
    verify --method treering --checkpoint CKPT --key K IMAGES... [--steps N]

verify prints the bits read as a 0/1 string; with an expected message also the bit accuracy and
the binomial p-value of that many matches by chance. Images under 256x256 pixels, which the
package refuses, are marked and read here while each bit has a block (with a warning: fewer blocks
vote per bit, so the mark is weaker, and imwatermark will not read it).

Tree-Ring has no message to embed into an existing image: it samples N new images from the
checkpoint with the key's rings in their initial noise; verify inverts each image by DDIM with the
same checkpoint and prints the p-value of the rings (and their distance to the key)."""
from __future__ import annotations

import json
from pathlib import Path

from engine.cli.common import CLIError, warn
from engine.core.detect_checks import TREERING_STEPS

HELP = "embed or verify an invisible watermark (dwtDct, dwtDctSvd: compatible with invisible-watermark; treering)"
TREERING = "treering"


def _message_args(p, prefix: str, what: str) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(f"--{prefix}text", help=f"{what}: UTF-8 text (its bytes' bits, as imwatermark's 'bytes')")
    g.add_argument(f"--{prefix}bits", help=f"{what}: a string of 0s and 1s")
    g.add_argument(f"--{prefix}hex", help=f"{what}: hexadecimal bytes (imwatermark's 'b16')")
    g.add_argument("--sdxl", action="store_true", help=f"{what}: Stable Diffusion XL's 48 bits (0xB3EC907BB19E)")


def _treering_args(p, embed: bool) -> None:
    p.add_argument("--checkpoint", metavar="CKPT", help="treering: the diffusion checkpoint (ddpm, edm, flow_matching) "
                                                        "that samples" + (" the marked images" if embed else
                                                                          " and inverts the images"))
    p.add_argument("--key", help="treering: the key (any integer or text) that draws the ring pattern")
    p.add_argument("--steps", type=int, default=TREERING_STEPS,
                   help=f"treering: DDIM steps (default {TREERING_STEPS}; verify with the count embed used)")
    p.add_argument("--radius", type=int, help="treering: radius of the marked disc of x_T's spectrum (default: a "
                                              "quarter of the latent's side, 4 at 16 px)")
    p.add_argument("--channel", type=int, help="treering: the channel of x_T that carries it (default: the last)")
    if embed:
        p.add_argument("--count", type=int, default=8, help="treering: how many marked images to sample (default 8)")
        p.add_argument("--seed", type=int, default=0, help="treering: the first image's noise seed (default 0)")


def add_arguments(p) -> None:
    from engine.detect.watermark.dwt_dct import METHODS
    sub = p.add_subparsers(dest="action", required=True)
    e = sub.add_parser("embed", help="mark an image (dwtDct, dwtDctSvd) or sample marked images (treering)")
    e.add_argument("image", nargs="?", help="the image to mark (dwtDct, dwtDctSvd)")
    e.add_argument("--out", required=True, help="the marked image (PNG keeps the mark best); treering: a folder")
    e.add_argument("--method", choices=(*METHODS, TREERING), default="dwtDct")
    _message_args(e, "", "the message")
    _treering_args(e, embed=True)
    v = sub.add_parser("verify", help="read a mark")
    v.add_argument("images", nargs="+", metavar="IMAGE", help="the image to read (treering: one or more)")
    v.add_argument("--method", choices=(*METHODS, TREERING), default="dwtDct")
    v.add_argument("--length", type=int, help="bits to read (when no expected message is given)")
    _message_args(v, "expect-", "the expected message")
    _treering_args(v, embed=False)
    v.add_argument("--json", action="store_true", help="one JSON object instead of lines (treering: one per image)")


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
    if args.image is None:
        raise CLIError(f"watermark embed --method {args.method}: give the IMAGE to mark")
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
    if len(args.images) != 1:
        raise CLIError(f"watermark verify --method {args.method} reads one image at a time")
    args.image = args.images[0]
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


# ---- Tree-Ring --------------------------------------------------------------------------------------
def _treering_model(args):
    """(family, ring) of --checkpoint and --key, or one CLIError line naming what is missing or wrong."""
    if not args.checkpoint:
        raise CLIError(f"watermark {args.action} --method treering needs --checkpoint CKPT (a diffusion checkpoint)")
    if args.key is None or args.key == "":
        raise CLIError(f"watermark {args.action} --method treering needs --key K (the key that draws the rings)")
    if args.steps < 1:
        raise CLIError(f"--steps must be at least 1, got {args.steps}")
    from engine.detect.watermark.treering import ring_for
    from engine.diffusion.inversion import require_invertible
    from engine.training.checkpoint import family_from_checkpoint
    try:
        fam, _ = family_from_checkpoint(args.checkpoint, "auto")
        require_invertible(fam, args.checkpoint)
        return fam, ring_for(fam, args.key, args.radius, args.channel)
    except ValueError as e:
        raise CLIError(f"{args.checkpoint}: {e}" if args.checkpoint not in str(e) else str(e)) from None


def _treering_embed(args) -> int:
    from engine.detect.watermark.treering import write_marked_samples
    if args.image is not None:
        raise CLIError("watermark embed --method treering samples new images and marks no existing one: "
                       "leave out IMAGE (use --count N)")
    if args.count < 1:
        raise CLIError(f"--count must be at least 1, got {args.count}")
    fam, ring = _treering_model(args)
    try:
        write_marked_samples(fam, ring, list(range(args.seed, args.seed + args.count)), args.steps, args.out,
                             batch=16, written=lambda p: print(f"marked {p}", flush=True))
    except ValueError as e:
        raise CLIError(str(e)) from None
    d = ring.describe()
    print(f"{args.count} images sampled by {args.checkpoint} with Tree-Ring key {args.key!r} (radius {d['radius']}, "
          f"channel {d['channel']} of x_T {'x'.join(map(str, d['latent']))}, {args.steps} DDIM steps)")
    return 0


def _treering_verify(args) -> int:
    import torch

    from engine.detect.image import load_rgb
    from engine.detect.model_input import model_input, resize_rule
    from engine.detect.watermark.treering import verify_images
    fam, ring = _treering_model(args)
    checked = 0
    for name in args.images:
        try:
            image = load_rgb(name)
        except FileNotFoundError:
            warn(f"{name}: no such file")
            continue
        except (ValueError, OSError) as e:
            warn(f"{name}: {e}")
            continue
        x = model_input(image, fam.channels, fam.resolution)
        with torch.no_grad():
            t = verify_images(fam, ring, x, args.steps)[0]
        checked += 1
        verdict = "marked" if t.marked else "not marked"
        if args.json:
            print(json.dumps({"image": name, "method": TREERING, "key": args.key, "p_value": t.p_value,
                              "distance": t.distance, "chi2": t.chi2, "df": t.df, "verdict": verdict,
                              "steps": args.steps, "resize": resize_rule(image, fam.resolution), **ring.describe()}),
                  flush=True)
        else:
            print(f"{name}: p-value {t.p_value:.3g}, distance {t.distance:.3f} ({verdict})", flush=True)
    if not checked:
        raise CLIError("no image could be verified")
    return 0


def run(args) -> int:
    if args.method == TREERING:
        return _treering_embed(args) if args.action == "embed" else _treering_verify(args)
    return _embed(args) if args.action == "embed" else _verify(args)
