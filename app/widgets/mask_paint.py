"""The mask editor's painting logic in plain numpy (no Qt), so it is testable and fast on its own.

Coordinates: (x, y) in image pixels with pixel (i, j) *centred* on the integer point (i, j); so
stroke([(3, 4)]) with a 1 px brush paints exactly pixel column 3, row 4.

A stroke is a chain of segments. Each segment paints the "capsule" around it: the brush profile
of the distance from each pixel centre to the segment. That equals the max over infinitely dense
dabs along the segment, so the result does not depend on how fast the mouse moved, and since the
brush combines by max (the eraser by min(mask, 1 - stamp)), going over the same place again within
a stroke never goes beyond the stamp.

Undo keeps one patch per record: the bounding box of what changed, with the content from before.
Undoing swaps that patch with the current content, so the same record then serves as the redo.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 (half-open); y0 == y1 means empty


def brush_profile(dist: np.ndarray, size: float, hardness: float) -> np.ndarray:
    """The stamp's value at `dist` pixels from its centre: 1 inside hardness * radius, easing
    (smoothstep) to 0 at the radius. hardness 1 is a hard disc with only 0 and 1."""
    r = max(size, 1.0) / 2.0
    if hardness >= 1.0:
        # strict < r: a whole-number radius would otherwise grow one-pixel nubs on the axes;
        # <= 0.5 keeps the pixel under the path, so a 1 px line never breaks up
        return ((dist < r) | (dist <= 0.5)).astype(np.float32)
    inner = r * max(hardness, 0.0)
    t = np.clip((r - dist) / (r - inner), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def segment_distance(xs: np.ndarray, ys: np.ndarray, p0, p1) -> np.ndarray:
    """Distance from points (xs[None, :], ys[:, None]) to the segment p0-p1 (a point if equal)."""
    (x0, y0), (x1, y1) = sorted((tuple(p0), tuple(p1)))  # the same values whichever way it is drawn
    dx, dy = x1 - x0, y1 - y0
    px, py = xs[None, :] - x0, ys[:, None] - y0
    ll = dx * dx + dy * dy
    if ll == 0:
        return np.sqrt(px * px + py * py)
    t = np.clip((px * dx + py * dy) / ll, 0.0, 1.0)
    ex, ey = px - t * dx, py - t * dy
    return np.sqrt(ex * ex + ey * ey)


def union(a: Box | None, b: Box | None) -> Box | None:
    if a is None or a[0] == a[1] or a[2] == a[3]:
        return b
    if b is None or b[0] == b[1] or b[2] == b[3]:
        return a
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


@dataclass
class _Record:
    y: int
    x: int
    patch: np.ndarray  # the content of mask[y:y+h, x:x+w] on the other side of this change


class MaskDocument:
    """A float32 H x W mask in [0, 1] with a round brush, an eraser and per-operation undo."""

    def __init__(self, height: int = 0, width: int = 0, *, max_undo: int = 100):
        self.max_undo = max(50, max_undo)
        self.size = 8.0        # brush diameter in image pixels
        self.hardness = 1.0    # 1: hard edge (0/1 only); < 1: soft edge with real grey values
        self.eraser = False
        self.last_point: tuple[float, float] | None = None  # for Shift+click straight lines
        self.reset(height, width)

    # ---- shape and history ---------------------------------------------------------------------
    def reset(self, height: int, width: int) -> None:
        """A new, empty mask (history dropped: patches of another size cannot be applied)."""
        self.mask = np.zeros((height, width), np.float32)
        self._undo: list[_Record] = []
        self._redo: list[_Record] = []
        self._before: np.ndarray | None = None  # the mask when the current stroke began
        self._stroke_box: Box | None = None
        self.last_point = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> Box | None:
        return self._swap(self._undo, self._redo)

    def redo(self) -> Box | None:
        return self._swap(self._redo, self._undo)

    def _swap(self, src: list, dst: list) -> Box | None:
        if not src:
            return None
        r = src.pop()
        h, w = r.patch.shape
        view = self.mask[r.y:r.y + h, r.x:r.x + w]
        current = view.copy()
        view[...] = r.patch
        r.patch = current
        dst.append(r)
        return r.y, r.y + h, r.x, r.x + w

    def _record(self, before: np.ndarray, box: Box | None) -> Box | None:
        """Push an undo record for what changed inside `box` (mask vs before); None if nothing."""
        if box is None or box[0] == box[1] or box[2] == box[3]:
            return None
        y0, y1, x0, x1 = box
        changed = self.mask[y0:y1, x0:x1] != before[y0:y1, x0:x1]
        if not changed.any():
            return None
        rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
        y0, y1, x0, x1 = y0 + rows[0], y0 + rows[-1] + 1, x0 + cols[0], x0 + cols[-1] + 1
        self._undo.append(_Record(y0, x0, before[y0:y1, x0:x1].copy()))
        del self._undo[:-self.max_undo]
        self._redo.clear()
        return y0, y1, x0, x1

    # ---- strokes -------------------------------------------------------------------------------
    def begin_stroke(self) -> None:
        # one full copy per stroke (about 0.1 ms at 512 x 512) lets the end cut the exact patch
        self._before = self.mask.copy()
        self._stroke_box = None

    def segment(self, p0, p1=None) -> Box | None:
        """Paint (or erase) the segment p0-p1 (a dab when p1 is None); returns the box it touched."""
        if self._before is None:
            self.begin_stroke()
        p1 = p0 if p1 is None else p1
        h, w = self.mask.shape
        r = max(self.size, 1.0) / 2.0
        x0 = max(int(np.floor(min(p0[0], p1[0]) - r)), 0)
        x1 = min(int(np.ceil(max(p0[0], p1[0]) + r)) + 1, w)
        y0 = max(int(np.floor(min(p0[1], p1[1]) - r)), 0)
        y1 = min(int(np.ceil(max(p0[1], p1[1]) + r)) + 1, h)
        self.last_point = (float(p1[0]), float(p1[1]))
        if x0 >= x1 or y0 >= y1:
            return None
        xs = np.arange(x0, x1, dtype=np.float32)
        ys = np.arange(y0, y1, dtype=np.float32)
        stamp = brush_profile(segment_distance(xs, ys, p0, p1), self.size, self.hardness)
        view = self.mask[y0:y1, x0:x1]
        if self.eraser:
            np.minimum(view, 1.0 - stamp, out=view)
        else:
            np.maximum(view, stamp, out=view)
        box = (y0, y1, x0, x1)
        self._stroke_box = union(self._stroke_box, box)
        return box

    def end_stroke(self) -> Box | None:
        """Close the stroke: one undo record for all of it. Returns the changed box, or None."""
        if self._before is None:
            return None
        before, self._before = self._before, None
        return self._record(before, self._stroke_box)

    def stroke(self, points) -> Box | None:
        """A whole stroke through `points` (one undo step); None if the mask did not change."""
        self.begin_stroke()
        pts = [(float(x), float(y)) for x, y in points]
        for a, b in zip(pts, pts[1:] or pts):
            self.segment(a, b)
        return self.end_stroke()

    # ---- whole-mask operations (each one undo step) --------------------------------------------
    def apply(self, new: np.ndarray) -> Box | None:
        new = np.asarray(new, np.float32)
        if new.shape != self.mask.shape:
            raise ValueError(f"mask shape {new.shape} differs from {self.mask.shape}")
        before = self.mask
        self.mask = np.clip(new, 0.0, 1.0).astype(np.float32, copy=True)
        return self._record(before, (0, self.mask.shape[0], 0, self.mask.shape[1]))

    def invert(self) -> Box | None:
        return self.apply(1.0 - self.mask)

    def clear(self) -> Box | None:
        return self.apply(np.zeros_like(self.mask))

    def fill(self) -> Box | None:
        return self.apply(np.ones_like(self.mask))


def to_float_mask(arr: np.ndarray) -> np.ndarray:
    """uint8 0..255 (or bool, or float 0..1) -> float32 in [0, 1]; a colour mask is averaged."""
    a = np.asarray(arr)
    if a.ndim == 3:
        a = a.mean(axis=2) if a.dtype != np.uint8 else a.mean(axis=2).round().astype(np.uint8)
    if a.ndim != 2:
        raise ValueError(f"a mask is H x W, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    return np.clip(a.astype(np.float32), 0.0, 1.0)


def to_uint8_mask(mask: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(mask * 255.0), 0, 255).astype(np.uint8)


def resize_nearest(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize by index lookup (pixel centres), exact for whole-number factors."""
    h, w = a.shape[:2]
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.intp), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.intp), w - 1)
    return a[rows[:, None], cols[None, :]]
