"""`genlab-engine eval`: score a checkpoint's samples against its training data (through the
evaluate op: its flags are the op's request fields), or a folder of fakes against a folder of
reals. Progress and the result are JSON lines on stdout."""
from __future__ import annotations

from engine.cli.common import CLIError
from engine.core.config import DEVICES

HELP = "score samples: FID (or FD-domain), KID, precision/recall, IS"
OP = "evaluate"


def add_arguments(e) -> None:
    from engine.cli.request_args import add_request_arguments
    from engine.ops import OPS
    e.add_argument("--checkpoint", help="sample from this checkpoint and compare with its training data")
    e.add_argument("--fake", help="folder of generated images (with --real)")
    add_request_arguments(e, OPS.get(OP).request)   # --n --metrics --steps --inception --real
    e.add_argument("--resolution", type=int, default=64, help="folder mode: images are resized to this")
    e.add_argument("--device", choices=DEVICES)
    e.add_argument("--sweep", action="store_true",
                   help="FD against network evaluations: the checkpoint sampled with every solver at several "
                        "step counts (then --solvers, --steps 1,2,4,..., --samples, --reference, --deterministic, "
                        "--out: see `genlab-engine sweep --help`)")


def sweep_argv(argv: list[str]) -> list[str]:
    """`eval --sweep ...` is the sweep command (engine/ops/sweep.py), whose --steps is a list."""
    if argv[:1] == ["eval"] and "--sweep" in argv:
        return ["sweep", *[a for a in argv[1:] if a != "--sweep"]]
    return argv


def run(args) -> int:
    import time
    from engine.cli.op_command import run_op
    from engine.cli.request_args import request_from_args
    from engine.core import protocol
    from engine.core.metrics import HELDOUT, MEASURES
    from engine.core.util import throttled
    from engine.core.metrics import parse_metrics
    from engine.ops import OPS

    def emit(ev):
        print(protocol.encode(ev), flush=True)

    progress = throttled(lambda stage, done, total: emit(
        protocol.event("progress", stage=stage, done=done, total=total)), 0.2)

    try:
        metrics = parse_metrics(args.metrics)
    except ValueError as e:
        raise CLIError(f"--metrics: {e}") from None
    t0 = time.perf_counter()
    if args.checkpoint:
        if args.fake:
            raise CLIError("give --checkpoint (its samples are the fakes), or --real and --fake, not both")
        if args.real and (not metrics or any(MEASURES.get(m).needs not in HELDOUT for m in metrics)):
            raise CLIError("--real with --checkpoint is for --metrics bpd or codebook (scored on that folder)")
        fields = {**request_from_args(OPS.get(OP).request, args, "eval").fields, "metrics": ",".join(metrics)}
        r, step = run_op(OP, args.checkpoint, args.device, fields, progress=progress)
        scores, kind, note = r.scores, r.extractor, r.note
        source = {"checkpoint": str(args.checkpoint), "step": step}
    else:
        scores, kind, note, source = _folders(args, metrics, progress)
    emit(protocol.event("result", **scores, **source, extractor=kind, note=note, n=args.n,
                        seconds=round(time.perf_counter() - t0, 2)))
    return 0


def _folders(args, metrics: list[str], progress):
    """A folder of fakes scored against a folder of reals, both resized to --resolution."""
    import torch
    from engine.data.dataset import to_uint8_nchw
    from engine.data.folder import load_folder
    from engine.metrics.evaluate import Evaluator
    from engine.ops.evaluate import check_eval_args
    if not (args.real and args.fake):
        raise CLIError("give --checkpoint, or both --real DIR and --fake DIR")
    check_eval_args(args.n)
    real, labels, names, _, _, _ = load_folder(args.real, args.resolution, args.n)
    fake, _, _, _, _, _ = load_folder(args.fake, args.resolution, args.n)
    real_t = to_uint8_nchw(real)
    ev = Evaluator(real_t, torch.from_numpy(labels), len(names), metrics=metrics,
                   inception_path=args.inception or None, device=args.device or "cpu", progress=progress)
    fake_f = to_uint8_nchw(fake).float().div(127.5).sub(1.0)
    try:
        scores = ev.score(fake_f, n_real=len(real_t))
    except ValueError as e:   # too few images, a score that is not finite: one line
        raise CLIError(str(e)) from None
    return scores, ev.kind, ev.note, {"real": args.real, "fake": args.fake, "real_images": len(real_t),
                                      "fake_images": len(fake_f)}
