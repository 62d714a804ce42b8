"""genlab-engine: train | sample | mix | interpolate | inpaint | eval | compare | presets | worker | data-preview | runs | control | export | queue | detect | watermark | detector | ema

One module per command (engine/cli/<command>.py: HELP, add_arguments, run); the op commands
(sample, mix, interpolate, inpaint, and any op registered with a `command`) are one generic
module, engine/cli/op_command.py, their flags read from the op's Request. Only the command being
run gets its arguments (and so imports what they need): `genlab-engine presets` imports no op.
Errors exit non-zero with one clear line on stderr.
"""
from __future__ import annotations

import argparse
import sys

from engine.cli import (compare, control, data_preview, detect, detector, ema, evaluate, export, op_command, presets,
                        queue, runs, train, watermark, worker)
from engine.cli.common import CLIError, rank_prefix, say

# the commands, in --help order; the op commands come in after train
BEFORE_OPS = {"train": train}
AFTER_OPS = {"eval": evaluate, "compare": compare, "presets": presets, "worker": worker, "data-preview": data_preview,
             "runs": runs, "control": control, "export": export, "queue": queue, "detect": detect,
             "watermark": watermark, "detector": detector, "ema": ema}


def build_parser(commands: list[str] | None = None) -> argparse.ArgumentParser:
    """The genlab-engine parser; only the `commands` named get their arguments (None: all)."""
    p = argparse.ArgumentParser(prog="genlab-engine", description="GenLab's engine: train and sample image generative models.")
    sub = p.add_subparsers(dest="cmd", required=True)
    wanted = (lambda name: True) if commands is None else (lambda name: name in commands)
    for name, module in BEFORE_OPS.items():
        _add_command(sub, name, module.HELP, module.add_arguments if wanted(name) else None, module.run)
    for name in op_command.commands():
        add = (lambda parser, n=name: op_command.add_arguments(parser, n)) if wanted(name) else None
        _add_command(sub, name, op_command.help_of(name), add, op_command.run)
    for name, module in AFTER_OPS.items():
        _add_command(sub, name, module.HELP, module.add_arguments if wanted(name) else None, module.run)
    return p


def _add_command(sub, name: str, help: str, add_arguments, run) -> None:
    parser = sub.add_parser(name, help=help)
    if add_arguments is not None:
        add_arguments(parser)
    parser.set_defaults(func=run)


def _expected_errors() -> tuple[type, ...]:
    """The errors that are a bad input, not a bug: one line, exit 2 (imported only when one is
    raised: their modules import torch)."""
    from engine.core.config import ConfigError
    from engine.data.dataset import DataError
    from engine.training.checkpoint import CheckpointError
    return CLIError, ConfigError, DataError, CheckpointError


def main(argv: list[str] | None = None) -> int:
    argv = evaluate.sweep_argv(sys.argv[1:] if argv is None else list(argv))
    args = build_parser(argv[:1]).parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except OSError as e:  # disk full, permission, a file where a folder should be: one line, the path
        from engine.core.errors import os_error_line
        say(f"{rank_prefix()}genlab-engine: error: {os_error_line(e)}")
        return 2
    except Exception as e:
        if not isinstance(e, _expected_errors()):
            raise
        say(f"{rank_prefix()}genlab-engine: error: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
