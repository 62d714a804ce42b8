"""Pieces the latent canvases share: parsing seed lists, the images a person drops, and copying a
rendered PNG to where they want it."""
from __future__ import annotations

import shutil
from pathlib import Path

from engine.core.imageformats import IMAGE_SUFFIXES


def parse_sources(text: str) -> list:
    """'1, 2, 5-7, /path/face.png' -> [1, 2, 5, 6, 7, '/path/face.png']. Raises ValueError naming the
    bad item."""
    out: list = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.isdigit():
            out.append(int(part))
        elif "-" in part and all(x.strip().isdigit() for x in part.split("-", 1)):
            a, b = (int(x) for x in part.split("-", 1))
            if b < a or b - a > 64:
                raise ValueError(f"{part!r}: a seed range runs low-high, at most 64 seeds")
            out += list(range(a, b + 1))
        elif Path(part).suffix.lower() in IMAGE_SUFFIXES:
            if not Path(part).is_file():
                raise ValueError(f"{part}: image not found")
            out.append(part)
        else:
            raise ValueError(f"{part!r} is neither a seed, a seed range like 3-7, nor an image file")
    return out


def class_text(index: int, name: str) -> str:
    """A class in a combo: "3: cat" where the model names it, "3" where its name is its number
    (digits' classes are named "0" … "9": "3: 3" says nothing twice)."""
    name = str(name).strip()
    return f"{index}: {name}" if name and name != str(index) else str(index)


def dropped_images(mime) -> list[str]:
    return [u.toLocalFile() for u in mime.urls() if Path(u.toLocalFile()).suffix.lower() in IMAGE_SUFFIXES]


def copy_result(src: str, dst: str) -> None:
    shutil.copyfile(src, dst)
