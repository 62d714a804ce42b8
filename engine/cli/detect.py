"""`genlab-engine detect IMAGE_OR_DIR...`: run the detection lab's checks on images and folders.
With --json, one JSON object per line per (image, check); otherwise a table. A file that cannot be
read, or a check that cannot run on it, is one line on stderr and the rest go on; the exit status
is 0 when at least one image was checked, 2 when none was."""
from __future__ import annotations

import json

from engine.cli.common import CLIError, say

HELP = ("run forensic checks (spectrum, NPR, noise residual, copy-move, watermark, trained detectors, "
        "model-based zero-shot, reconstruction and DIRE checks) on images")


def add_arguments(p) -> None:
    from engine.core.detect_checks import CHECKS, default_checks
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files, or folders of them (not recursed)")
    p.add_argument("--checks", default="", help=f"comma-separated, or 'all' (default: {', '.join(default_checks())}; "
                                                f"known: {', '.join(CHECKS.names())})")
    p.add_argument("--json", action="store_true", help="one JSON object per line per image and check")
    from engine.core.config import DATASETS
    p.add_argument("--real-data", default="textures", choices=[d for d in DATASETS if d != "folder"],
                   help="built-in dataset the spectrum check compares against (default: textures, crops of "
                        "photographs; the others are drawn or up-sampled from tiny images)")
    p.add_argument("--spectrum-detector", metavar="FILE", help="a trained spectrum detector (spectrum-lr check)")
    p.add_argument("--detector", metavar="FILE",
                   help="a trained NPR or CNN detector (npr-cnn, cnn checks; `genlab-engine detector train`)")
    p.add_argument("--noise-reference", metavar="DIR_OR_FILE",
                   help="a folder of one source's images, or a saved pattern: the noise check correlates with it")
    p.add_argument("--likelihood-model", metavar="CKPT",
                   help="a pixel-likelihood checkpoint (a pixelcnn run's) trained on real images (zeroshot check)")
    p.add_argument("--autoencoder", metavar="CKPT",
                   help="an autoencoder checkpoint (a vae, hvae or vqvae run's) for the aeroblade check")
    from engine.core.detect_checks import DIRE_STEPS
    p.add_argument("--diffusion-checkpoint", metavar="FILE",
                   help="a diffusion checkpoint (ddpm, edm, flow_matching, ldm): the dire check inverts and "
                        "reconstructs each image with it")
    p.add_argument("--dire-steps", type=int, default=DIRE_STEPS,
                   help=f"DDIM steps each way for the dire check (default {DIRE_STEPS}, as the DIRE paper)")


def _context(args):
    from engine.detect.context import DetectContext
    ctx = DetectContext(real_data=args.real_data, spectrum_detector=args.spectrum_detector,
                        noise_reference=args.noise_reference, detector=args.detector,
                        likelihood_model=args.likelihood_model, autoencoder=args.autoencoder,
                        diffusion_model=args.diffusion_checkpoint, dire_steps=args.dire_steps)
    if args.dire_steps < 1:
        raise CLIError(f"--dire-steps must be at least 1, got {args.dire_steps}")
    try:   # load what the checks share once, so a bad file is one error, not one per image
        ctx.spectrum_detector_model()
        ctx.trained_detector()
        ctx.noise_pattern()
        ctx.likelihood_family()
        ctx.autoencoder_family()
        ctx.diffusion_family()
    except ValueError as e:
        raise CLIError(str(e)) from None
    return ctx


# each check that needs a file (a trained detector, a checkpoint): the argument that gives it, and how the error names it
_DETECTOR_FLAG = {
    "spectrum-lr": ("spectrum_detector", "--spectrum-detector FILE (a trained spectrum detector)"),
    "npr-cnn": ("detector", "--detector FILE (an NPR detector: genlab-engine detector train --arch npr)"),
    "cnn": ("detector", "--detector FILE (a CNN detector: genlab-engine detector train --arch cnn)"),
    "zeroshot": ("likelihood_model", "--likelihood-model CKPT (a pixelcnn checkpoint trained on real images)"),
    "aeroblade": ("autoencoder", "--autoencoder CKPT (a vae, hvae or vqvae checkpoint)"),
    "dire": ("diffusion_checkpoint", "--diffusion-checkpoint FILE (a diffusion checkpoint: ddpm, edm, "
                                     "flow_matching or ldm)"),
}


def _cell(x, width: int) -> str:
    s = x if isinstance(x, str) else ("—" if x is None or x != x else f"{x:.4g}")
    return s if len(s) <= width else "…" + s[-(width - 1):]


def run(args) -> int:
    from engine.core.detect_checks import NEEDS_FILE, parse_checks
    from engine.detect.run import Failure, detect_files
    try:
        checks = parse_checks(args.checks)
    except ValueError as e:
        raise CLIError(str(e)) from None
    from engine.core.detect_checks import CHECKS
    if args.checks.strip().lower() == "all":   # all that can run: a detector or model check only with its file
        checks = [c for c in checks if CHECKS.get(c).needs not in NEEDS_FILE or getattr(args, _DETECTOR_FLAG[c][0])]
    for c in checks:
        if CHECKS.get(c).needs in NEEDS_FILE and not getattr(args, _DETECTOR_FLAG[c][0]):
            raise CLIError(f"the {c} check needs {_DETECTOR_FLAG[c][1]}")
    ctx = _context(args)
    if args.checks.strip().lower() == "all" and args.detector:   # the trained check of the detector's own kind
        arch_check = {"npr": "npr-cnn", "cnn": "cnn"}[ctx.trained_detector().arch]
        checks = [c for c in checks if c not in ("npr-cnn", "cnn") or c == arch_check]
    checked, header = set(), False
    for path, res in detect_files(args.inputs, checks, ctx):
        if isinstance(res, Failure):
            say(f"genlab-engine: skipped {res.line()}")
            continue
        checked.add(path)
        if args.json:
            print(json.dumps({"image": path, **res.to_json()}), flush=True)
            continue
        if not header:
            print(f"{'image':<32}  {'check':<11}  {'score':>8}  explanation")
            header = True
        print(f"{_cell(path, 32):<32}  {res.check:<11}  {_cell(res.score, 8):>8}  {res.explanation}", flush=True)
    if not checked:
        say("genlab-engine: error: no image could be checked")
        return 2
    return 0
