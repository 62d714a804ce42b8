"""The image file types GenLab reads, in one place: the folder dataset loader and the GUI (file
dialogs, drag and drop) both use this list. Deliberately light (no torch, numpy or PIL) because
the GUI process imports it.

Every suffix here is one that Pillow decodes and engine.data.folder.load_image converts (the
formats the README names: png/jpg/webp/bmp/tiff). GIF is left out: mostly animations, of which
only the first frame would be read."""
from __future__ import annotations

import os

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def is_image_path(path: str | os.PathLike) -> bool:
    """Whether the file name ends in one of IMAGE_SUFFIXES, in any letter case."""
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_SUFFIXES
