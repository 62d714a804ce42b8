"""Running checks on images: one result per (image, check), or one line saying why not."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from engine.core.detect_checks import CHECKS
from engine.core.registry import load_object
from engine.detect.context import DetectContext
from engine.detect.result import CheckResult


@dataclass
class Failure:
    """A file that could not be read, or a check that could not run on it: one plain line."""
    path: str
    check: str | None    # None: the file itself
    reason: str

    def line(self) -> str:
        return f"{self.path}: {self.reason}" if self.check is None else f"{self.path}: {self.check}: {self.reason}"


def run_check(key: str, image: np.ndarray, context: DetectContext | None = None) -> CheckResult:
    """One check on a uint8 H x W x 3 RGB image."""
    fn = load_object(CHECKS.get(key).function)
    return fn(image, context if context is not None else DetectContext())


def image_paths(inputs) -> Iterator[Path | Failure]:
    """The image files named, a folder's image files (sorted, not recursing) in their place; a name
    that is neither comes back as a Failure."""
    from engine.core.imageformats import is_image_path
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and is_image_path(f))
            if not files:
                yield Failure(str(p), None, "folder holds no image files (png, jpg, webp, bmp, tif)")
            yield from files
        elif p.is_file():
            yield p
        else:
            yield Failure(str(p), None, "no such file or folder")


def detect_files(inputs, checks: list[str], context: DetectContext | None = None,
                 ) -> Iterator[tuple[str, CheckResult | Failure]]:
    """(path, result or failure) for each image and check, in order; a bad file or a failing check
    is one Failure and the rest go on."""
    from engine.detect.image import load_rgb
    context = context if context is not None else DetectContext()
    for item in image_paths(inputs):
        if isinstance(item, Failure):
            yield item.path, item
            continue
        try:
            image = load_rgb(item)
        except (ValueError, OSError) as e:
            yield str(item), Failure(str(item), None, str(e) or type(e).__name__)
            continue
        for key in checks:
            try:
                yield str(item), run_check(key, image, context)
            except (ValueError, OSError) as e:
                yield str(item), Failure(str(item), key, str(e))
