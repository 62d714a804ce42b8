"""`genlab-engine ema RUN --sigma-rel S`: post-hoc EMA (EDM2) from a run's phema/ snapshots
(training.posthoc_ema): the EMA of length σ_rel at a snapshot's step, written as a checkpoint of
the run (engine/ops/posthoc_ema.py). Progress events and one result event are JSON lines on stdout
(the runs browser's "Reconstruct EMA…" reads them)."""
from __future__ import annotations

from engine.cli.common import CLIError
from engine.core.config import POSTHOC_SIGMA_MAX

HELP = "post-hoc EMA: reconstruct a run's EMA of any length (sigma_rel) from its stored snapshots, as a checkpoint"


def add_arguments(p) -> None:
    p.add_argument("run", metavar="RUN_DIR", help="a run trained with training.posthoc_ema (its phema/ snapshots)")
    p.add_argument("--sigma-rel", type=float, required=True, metavar="S",
                   help=f"the EMA length relative to the training time, in (0, {POSTHOC_SIGMA_MAX}] "
                        f"(EDM2's sigma_rel; its profiles are 0.05 and 0.1)")
    p.add_argument("--step", type=int, default=0, help="reconstruct at this snapshot's step (default: the newest)")
    p.add_argument("--out", default="", metavar="CHECKPOINT",
                   help="where to write it (default: the run's checkpoints/step_NNNNNN-ema-0pXXX.safetensors)")


def run(args) -> int:
    from engine.core import protocol
    from engine.core.util import throttled
    from engine.ops.base import never, result_fields
    from engine.ops.posthoc_ema import EmaRequest, run as reconstruct

    def emit(ev):
        print(protocol.encode(ev), flush=True)

    progress = throttled(lambda stage, done, total: emit(protocol.event("progress", stage=stage, done=done,
                                                                        total=total)), 0.2)
    try:
        result = reconstruct(None, EmaRequest(args.run, args.sigma_rel, args.step, args.out), progress, never)
    except ValueError as e:   # no snapshots, a bad sigma_rel or step, a snapshot of another model: one line
        raise CLIError(str(e)) from None
    emit(protocol.event("result", **result_fields(result)))
    return 0
