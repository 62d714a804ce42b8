"""The autoguidance option of the sampling ops: `guide_checkpoint` (a checkpoint of the same run,
earlier or smaller; "" = off) and `autoguidance_scale`. The guide is loaded through the normal
checkpoint loader onto the main model's device, checked against the main model (one line naming
the file and the problem when it cannot guide), and kept for the next request while the same file
is asked for."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, TypeVar

from engine.core.flags import request_field

T = TypeVar("T")

GUIDE_HELP = "autoguidance: guide with this checkpoint of the same run (earlier or smaller); empty = off"
SCALE_HELP = "autoguidance weight w: D_guide + w·(D_main − D_guide); 1 = the main model alone"


def guide_field():
    return request_field("", GUIDE_HELP, flag="--guide-checkpoint", metavar="CKPT")


def scale_field():
    return request_field(2.0, SCALE_HELP, flag="--autoguidance-scale", metavar="W")


def check_autoguidance_scale(scale: float) -> None:
    if not 0.0 <= scale <= 50.0:
        raise ValueError(f"autoguidance_scale = {scale} must be between 0 and 50")


_cache: dict[str, Any] = {}   # the last guide: {"key": (path, mtime, device), "family": ...}


def load_guide(main, path: str, options=None):
    """The family of checkpoint `path`, ready to guide `main` (its networks in eval mode), or a
    ValueError of one line: missing, unreadable, another family or data shape, another schedule."""
    from engine.diffusion.autoguidance import guide_mismatch
    from engine.family.base import build_family
    from engine.training.checkpoint import checkpoint_paths, load_checkpoint, load_weights_into
    st_path = checkpoint_paths(Path(path))[0]
    if not st_path.is_file():
        raise ValueError(f"guide checkpoint {st_path}: not found")
    key = (str(st_path.resolve()), st_path.stat().st_mtime_ns, str(main.device))
    if _cache.get("key") == key:
        guide = _cache["family"]
    else:
        try:
            ckpt = load_checkpoint(st_path)
            data = ckpt.meta["data"]
            guide = build_family(ckpt.config, data["channels"], data["resolution"], data["class_names"])
            load_weights_into(guide, ckpt)
        except ValueError as e:
            raise ValueError(f"guide checkpoint {e}") from None
        guide.to(main.device)
        for nets in (guide.networks, guide.ema):
            if nets is not None:
                nets.eval()   # sampling closes over these modules: dropout off, whatever the loop restores
        _cache.clear()
        _cache.update(key=key, family=guide)
    why = guide_mismatch(main, guide, options)
    if why:
        raise ValueError(f"guide checkpoint {st_path}: cannot guide this model: {why}")
    return guide


def with_guide(main, path: str, scale: float, options, call: Callable[[Any], T]) -> T:
    """call(main), autoguided by checkpoint `path` at `scale` when a path is given."""
    if not path:
        return call(main)
    from engine.diffusion.autoguidance import autoguided
    check_autoguidance_scale(scale)
    return autoguided(main, load_guide(main, path, options), scale, call)
