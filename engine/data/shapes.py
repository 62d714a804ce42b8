"""Procedural shapes: circles, squares, triangles and stars in several colours, sizes and
positions on varied backgrounds, drawn supersampled for clean edges. Any count, seeded."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star")
COLORS = [(230, 57, 70), (244, 162, 97), (233, 196, 106), (42, 157, 143), (38, 70, 83),
          (69, 123, 157), (168, 218, 220), (131, 56, 236), (255, 255, 255), (20, 20, 20)]
SUPERSAMPLE = 4


def _polygon(kind: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    if kind == "square":
        pts = [(math.cos(rot + k * math.pi / 2 + math.pi / 4), math.sin(rot + k * math.pi / 2 + math.pi / 4))
               for k in range(4)]
    elif kind == "triangle":
        pts = [(math.cos(rot + k * 2 * math.pi / 3 - math.pi / 2), math.sin(rot + k * 2 * math.pi / 3 - math.pi / 2))
               for k in range(3)]
    else:  # star: 5 points, inner radius 0.45
        pts = []
        for k in range(10):
            rr = 1.0 if k % 2 == 0 else 0.45
            a = rot + k * math.pi / 5 - math.pi / 2
            pts.append((rr * math.cos(a), rr * math.sin(a)))
    return [(cx + r * x, cy + r * y) for x, y in pts]


def _background(rng: np.random.Generator, s: int) -> Image.Image:
    kind = rng.integers(3)
    c1 = np.array(COLORS[rng.integers(len(COLORS))], np.float32) * 0.6 + 40
    if kind == 0:  # flat
        arr = np.broadcast_to(c1, (s, s, 3))
    elif kind == 1:  # linear gradient in a random direction
        c2 = np.array(COLORS[rng.integers(len(COLORS))], np.float32) * 0.6 + 40
        a = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:s, 0:s] / (s - 1)
        t = ((xx - 0.5) * math.cos(a) + (yy - 0.5) * math.sin(a)) / 1.42 + 0.5
        arr = c1 * (1 - t[..., None]) + c2 * t[..., None]
    else:  # smooth noise: coarse random grid, upsampled
        coarse = rng.uniform(-40, 40, (4, 4, 3)).astype(np.float32)
        up = np.asarray(Image.fromarray(np.uint8(coarse + 128)).resize((s, s), Image.BICUBIC), np.float32) - 128
        arr = c1 + up
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def draw_shapes(count: int, resolution: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (count, res, res, 3) and labels (index into SHAPES)."""
    rng = np.random.default_rng(seed)
    s = resolution * SUPERSAMPLE
    images = np.empty((count, resolution, resolution, 3), np.uint8)
    labels = rng.integers(len(SHAPES), size=count)
    for i in range(count):
        img = _background(rng, s)
        draw = ImageDraw.Draw(img)
        r = rng.uniform(0.18, 0.36) * s
        cx, cy = rng.uniform(r, s - r, size=2)
        rot = rng.uniform(0, 2 * math.pi)
        color = COLORS[rng.integers(len(COLORS))]
        kind = SHAPES[labels[i]]
        if kind == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
        else:
            draw.polygon(_polygon(kind, cx, cy, r, rot), fill=color)
        images[i] = np.asarray(img.resize((resolution, resolution), Image.LANCZOS))
    return images, labels
