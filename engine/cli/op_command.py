"""The commands that run an operation of engine/ops (sample, mix, interpolate, inpaint, and any
op registered with a `command`): their flags come from the op's Request (engine/core/flags.py),
they run the op the worker would run, and print its result as one JSON line (the Result's fields
its metadata reports, and the checkpoint's step)."""
from __future__ import annotations

import json

from engine.cli.common import CLIError, note, progress_line, warn
from engine.core.config import DEVICES
from engine.ops import OPS


def commands() -> list[str]:
    """The ops that are genlab-engine commands, in registration order."""
    return [name for name, op in OPS.items() if op.command]


def help_of(name: str) -> str:
    return OPS.get(name).command


def add_arguments(parser, name: str) -> None:
    from engine.cli.request_args import add_request_arguments
    op = OPS.get(name)
    parser.add_argument("--checkpoint", required=op.needs_model, help=op.checkpoint_help)
    add_request_arguments(parser, op.request)
    parser.add_argument("--device", choices=DEVICES)


def run(args) -> int:
    from engine.cli.request_args import request_from_args
    from engine.core.flags import report
    from engine.ops.base import result_fields
    name = args.cmd
    op = OPS.get(name)
    parsed = request_from_args(op.request, args, name)
    for line in parsed.warnings:
        warn(line)
    fields, checkpoint = parsed.fields, args.checkpoint
    adapt = getattr(op.request, "command_line", None)   # an op's own rules of its command, if any
    if adapt is not None:
        try:
            fields, checkpoint, notes = adapt(fields, checkpoint)
        except ValueError as e:
            raise CLIError(str(e)) from None
        for line in notes:
            note(line)
    result, step = run_op(name, checkpoint, args.device, fields,
                          progress=progress_line if op.progress_lines else None, named_options=parsed.named_options)
    line, notes = report(type(result), result_fields(result))
    for text in notes:
        note(text)
    print(json.dumps({**line, "step": step}))
    return 0


def run_op(name: str, checkpoint: str | None, device: str | None, fields: dict, progress=None,
           named_options: dict | None = None) -> tuple[object, int | None]:
    """Load the checkpoint and run the operation the worker would run: its Result, and the
    checkpoint's step (None without one). `named_options` are sample options from named flags ({option: (flag,
    value)}): one the model's family does not have is ignored with a warning (--sample-steps means
    nothing to a GAN), while --option NAME=VALUE (in fields["options"]) is strict."""
    from engine.core.sections import option_fields
    from engine.ops.base import ModelSession, never, no_progress, parse_request
    op = OPS.get(name)
    if not checkpoint:
        if op.needs_model:
            raise CLIError(f"{name} needs --checkpoint")
        session = None
    else:
        session = ModelSession.load(checkpoint, device or "auto")
    known = {f.name for f in option_fields(type(session.family.cfg.sampling))} if session else set()
    for option, (flag, value) in (named_options or {}).items():
        if option in known:
            fields.setdefault("options", {}).setdefault(option, value)
        else:
            warn(f"{flag} does not apply to a {session.family.name} model; ignored" if session else
                 f"{flag} does not apply without a model; ignored")
    try:
        request = parse_request(op.request, fields, name)
        result = op.run(session, request, progress or no_progress, never)
    except ValueError as e:  # a bad option, layer, class or endpoint: one line
        raise CLIError(str(e)) from None
    return result, (session.step if session else None)
