"""`genlab-engine compare`: checkpoints of any families trained on one dataset (engine/ops/compare.py):
quality, diversity, sampling speed and training cost, all scored against the same real images.
Progress events and one result line (the rows) are JSON lines on stdout; --csv writes the table."""
from __future__ import annotations

from engine.cli.common import CLIError
from engine.core.config import DEVICES

HELP = ("compare checkpoints of any families trained on one dataset: FD/FID, precision, recall, bits/dim, "
        "images/s, NFE, training cost")


def add_arguments(cp) -> None:
    cp.add_argument("--checkpoints", nargs="+", required=True, metavar="CHECKPOINT",
                    help="two or more checkpoints (.safetensors), all trained on the same dataset, "
                         "resolution and channel count")
    cp.add_argument("--n", type=int, default=500, help="images to generate per checkpoint (and real images in "
                                                       "the shared reference); they are also the ones timed")
    cp.add_argument("--steps", dest="sample_steps", type=int,
                    help="iterative samplers (diffusion): denoising steps (default: each run's own)")
    cp.add_argument("--csv", help="also write the table to this CSV file")
    cp.add_argument("--inception", help="path of the FID Inception weight file (default: FD-domain without it)")
    cp.add_argument("--device", choices=DEVICES)


def run(args) -> int:
    import time
    from engine.core import protocol
    from engine.core.util import throttled
    from engine.ops.compare import compare_checkpoints
    from engine.runs.compare_table import overall_fraction, write_csv

    def emit(ev):
        print(protocol.encode(ev), flush=True)

    if len(args.checkpoints) < 2:
        raise CLIError("--checkpoints: give two or more checkpoints to compare")
    progress = throttled(lambda item, items, stage, done, total: emit(protocol.event(
        "progress", stage=stage, done=done, total=total, checkpoint=item + 1, checkpoints=items,
        fraction=round(overall_fraction(item, items, stage, done, total), 4))), 0.2)
    t0 = time.perf_counter()
    try:
        rows = compare_checkpoints(args.checkpoints, n=args.n, device=args.device or "auto", progress=progress,
                                   steps=args.sample_steps or 0, inception=args.inception or "")
    except ValueError as e:  # checkpoints of different data, a bad --n or --steps: one line
        raise CLIError(str(e)) from None
    if args.csv:
        write_csv(rows, args.csv)
    emit(protocol.event("result", rows=rows, n=args.n, csv=args.csv, seconds=round(time.perf_counter() - t0, 2)))
    return 0
