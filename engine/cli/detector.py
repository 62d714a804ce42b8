"""`genlab-engine detector train|eval|logo`: trained detectors (NPR CNN, Wang et al.'s CNN) against
GenLab checkpoints, real images from a GenLab dataset; real and generated images always go through
the same pipeline (size, colour, encoding), which the detector's JSON report states.

    train --real DATA --fake CKPT... [--holdout CKPT...] --arch npr|cnn --out DET
    eval  DET --real DATA --fake CKPT...                     (appended to DET.json's evaluations)
    logo  --real DATA --fake CKPT... --out DIR               (leave-one-generator-out: JSON, CSV, heat-map PNG)

Progress lines with an ETA go to stderr; Ctrl-C stops between steps and writes nothing half-done."""
from __future__ import annotations

import sys
import time

from engine.cli.common import CLIError, say

HELP = "train and evaluate NPR / CNN detectors against GenLab checkpoints (leave-one-generator-out, format-bias control)"


def _sources(p, fakes_required: bool = True) -> None:
    p.add_argument("--real", required=True, metavar="DATA",
                   help="real images: a built-in dataset (digits, shapes, faces, textures) or a folder")
    p.add_argument("--fake", nargs="+", required=fakes_required, default=[], metavar="CKPT",
                   help="checkpoints whose samples are the generated images (any family)")
    p.add_argument("--real-count", type=int, default=256, help="real images (default 256)")
    p.add_argument("--fake-count", type=int, default=256, help="images sampled per checkpoint (default 256; cached)")
    p.add_argument("--seed", type=int, default=0, help="fakes: image i from seed + i; the train/test split")
    p.add_argument("--no-cache", action="store_true", help="sample again instead of reading the sample cache")
    p.add_argument("--device", default="cpu", help="where checkpoints sample and detectors train (default cpu)")


def _training(p) -> None:
    from engine.detect.nets import ARCHS
    from engine.detect.pipeline import COLORS, FORMATS
    p.add_argument("--arch", choices=ARCHS, default="npr", help="npr: CNN on the NPR residual; cnn: on the image")
    p.add_argument("--size", type=int, default=0, help="pipeline size (default: the first checkpoint's resolution)")
    p.add_argument("--color", choices=("auto", *COLORS), default="auto",
                   help="pipeline colour (auto: grayscale when any source is grey)")
    p.add_argument("--format", choices=FORMATS, default="png", help="the encoding every image is round-tripped through")
    p.add_argument("--jpeg-quality", type=int, default=95, help="with --format jpeg, for real and fake alike")
    p.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--width", type=int, default=16, help="channels of the first layer (default 16)")
    aug = p.add_mutually_exclusive_group()
    aug.add_argument("--augment", dest="augment", action="store_const", const=True, default=None,
                     help="blur + JPEG augmentation (Wang et al.; default on for cnn, off for npr)")
    aug.add_argument("--no-augment", dest="augment", action="store_const", const=False)
    p.add_argument("--test-fraction", type=float, default=0.25, help="images of each source kept for testing")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads while training (default 1: small nets run faster on one; 0: PyTorch's default)")


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    t = sub.add_parser("train", help="train a detector; its test and format-bias control are saved with it")
    _sources(t)
    t.add_argument("--holdout", nargs="+", default=[], metavar="CKPT", help="checkpoints only tested on, never trained on")
    _training(t)
    t.add_argument("--no-bias-control", action="store_true", help="skip the format-bias control (half the time)")
    t.add_argument("--logo-matrix", action="store_true",
                   help="also the leave-one-generator-out matrix on the same split (one more detector per generator)")
    t.add_argument("--out", required=True, metavar="DET", help="writes DET.safetensors and DET.json")
    e = sub.add_parser("eval", help="evaluate a saved detector per generator (saved into DET.json)")
    e.add_argument("detector", metavar="DET")
    _sources(e)
    e.add_argument("--real-start", type=int, default=None,
                   help="first real image used (default: after the training's, for the same real data)")
    o = sub.add_parser("logo", help="leave-one-generator-out: train on all but one generator, test on every one",
                       description="Leave one generator out: one detector per --fake checkpoint, trained on all the "
                                   "others and tested on every one. The format-bias control (real images JPEG 75, "
                                   "fakes not) is part of `detector train`, not of this command.")
    _sources(o)
    _training(o)
    o.add_argument("--out", required=True, metavar="DIR", help="writes logo.json, logo.csv and logo.png there")


class EtaProgress:
    """'stage: done/total  ETA 12s' lines on stderr, at most every interval_s per stage (always the last)."""

    def __init__(self, interval_s: float = 1.0, stream=None):
        self.interval_s, self.stream = interval_s, stream or sys.stderr
        self.stage, self.t0, self.last = None, 0.0, float("-inf")

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage != self.stage:
            self.stage, self.t0, self.last = stage, now, float("-inf")
        if now - self.last < self.interval_s and done < total:
            return
        self.last = now
        eta = (now - self.t0) / done * (total - done) if done > 0 else None
        tail = "" if done >= total else (f"  ETA {eta:.0f}s" if eta is not None else "  ETA ?")
        self.stream.write(f"{stage}: {done}/{total}{tail}\n")
        self.stream.flush()


def _spec(args, holdout=(), real_start: int = 0):
    from engine.detect.workflow import SourceSpec
    for flag in ("real_count", "fake_count"):
        if getattr(args, flag) < 2:
            raise CLIError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: 2 images at least")
    return SourceSpec(args.real, list(args.fake), list(holdout), args.real_count, args.fake_count, real_start, args.seed,
                      getattr(args, "size", 0), getattr(args, "color", "auto"), getattr(args, "format", "png"),
                      getattr(args, "jpeg_quality", 95), not args.no_cache, args.device)


def _settings(args):
    from engine.detect.trained import TrainSettings
    if args.steps < 1 or args.batch_size < 2 or args.width < 1:
        raise CLIError("--steps and --width must be 1 or more, --batch-size 2 or more")
    if not 0 < args.test_fraction < 1:
        raise CLIError(f"--test-fraction {args.test_fraction}: between 0 and 1")
    return TrainSettings(args.steps, args.batch_size, args.lr, args.width, args.augment, True, args.seed, args.device,
                         max(args.threads, 0))


def _table(results: dict, title: str) -> None:
    print(title)
    width = max(9, *(len(n) for n in results))
    print(f"  {'generator':<{width}} {'seen':>4} {'acc@0.5':>8} {'AP':>7} {'AUC':>7}")
    for name, m in results.items():
        print(f"  {name:<{width}} {'yes' if m['seen_in_training'] else 'no':>4} {m['accuracy']:>8.3f} "
              f"{m['average_precision']:>7.3f} {m['auc']:>7.3f}")


def _train(args, progress) -> int:
    from engine.detect import workflow
    det = workflow.train(args.arch, _spec(args, args.holdout), _settings(args), args.test_fraction,
                         not args.no_bias_control, progress, leave_one_out_matrix=args.logo_matrix)
    weights = det.save(args.out)
    print(det.meta["data"]["statement"])
    _table(det.meta["report"]["test"], "test (fair: real and fake through the same pipeline)")
    control = det.meta["report"].get("format_bias_control")
    if control:
        _table(control["biased_test"], f"format-bias control: real JPEG {control['real_jpeg_quality']}, fakes not")
        _table(control["biased_detector_on_fair_test"], "the biased detector on the fair test set")
    print(f"wrote {weights} and {weights.with_suffix('.json')}")
    return 0


def _eval(args, progress) -> int:
    from engine.detect import workflow
    from engine.detect.trained import TrainedDetector
    try:
        det = TrainedDetector.load(args.detector)
    except ValueError as e:
        raise CLIError(str(e)) from None
    start = args.real_start
    if start is None:     # the same real data as in training: the images after the training's
        data = det.meta.get("data") or {}
        start = data.get("real_indices", [0, 0])[1] if data.get("real") == args.real else 0
    result = workflow.evaluate_saved(det, _spec(args, real_start=start), progress)
    det.save_meta(args.detector)
    _table(result["results"], f"evaluation of {args.detector} (real images {result['real_indices'][0]}.."
                              f"{result['real_indices'][1] - 1} of {args.real})")
    return 0


def _logo(args, progress) -> int:
    from pathlib import Path

    from engine.core.util import atomic_write_bytes, atomic_write_json, atomic_write_text
    from engine.detect import workflow
    from engine.detect.evaluation import heat_map_png, logo_csv, logo_matrix
    if len(args.fake) < 2:
        raise CLIError("leave-one-generator-out needs --fake with two checkpoints or more")
    data, folds, prepared = workflow.logo(args.arch, _spec(args), _settings(args), args.test_fraction, progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, cols, auc = logo_matrix(folds, "auc")
    atomic_write_json(out / "logo.json", {"arch": args.arch, "data": prepared.report(), **workflow.logo_report(folds)})
    atomic_write_text(out / "logo.csv", logo_csv(folds))
    atomic_write_bytes(out / "logo.png", heat_map_png(rows, cols, auc, f"{args.arch} detector: AUC, train (rows) x test; outlined: the held-out generator"))
    for f in folds:
        _table(f.results, f"trained on all but {f.held_out}")
    print(f"wrote {out / 'logo.json'}, logo.csv and logo.png")
    return 0


def run(args) -> int:
    from engine.family.progress import Cancelled
    progress = EtaProgress()
    try:
        return {"train": _train, "eval": _eval, "logo": _logo}[args.action](args, progress)
    except (KeyboardInterrupt, Cancelled):
        say("genlab-engine: cancelled; nothing was written")
        return 130
    except ValueError as e:     # bad settings, too few images: one line
        raise CLIError(str(e)) from None
