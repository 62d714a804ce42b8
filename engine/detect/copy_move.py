"""Copy-move forgery detection (Popescu & Farid 2004, "Exposing digital forgeries by detecting
duplicated image regions").

Every overlapping BLOCK x BLOCK block of the luminance is described by its first COMPONENTS principal
components (a PCA of the image's own blocks; computed as filters over the image, so the blocks are
never all held in memory); the descriptions are quantised coarsely and sorted lexicographically, so
duplicated blocks land near each other even after the image was re-saved as JPEG (each copy's
compression noise is its own). Each pair among NEIGHBOURS sorted rows whose components agree within
TOLERANCE and that lie farther apart than MIN_SHIFT votes for its shift vector; a region copied
elsewhere makes one shift win many votes. As in the paper, the tolerance is what survives
re-compression; what keeps untouched images quiet: flat blocks are left out, blocks that are nearly a
plane (a smooth gradient matches gradients of like slope anywhere) must match exactly, and a shift's
votes count only where they form a solid patch (a copied region), not scattered matches of noise or a
line along a gradient. Measured: benchmarks/README.md (copy-move after JPEG)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.detect.image import luminance
from engine.detect.result import CheckResult

BLOCK = 8           # block side, pixels
COMPONENTS = 8      # principal components kept
QUANT = 16.0        # quantisation step of the components in the sort (coarse: a re-saved copy sorts beside its source)
TOLERANCE = 8.0     # largest component difference still called a duplicate (JPEG 50 moves a component by ~4)
EXACT_TOLERANCE = 2.0   # the same for blocks of little detail: only a copy left as it was matches there
NEIGHBOURS = 4      # sorted rows compared with each row
MIN_SHIFT = 16      # pixels: nearer pairs are the same texture, not a copy
MIN_STD = 4.0       # 8-bit levels: flatter blocks (sky, blur, a plain background) are left out
MIN_DETAIL = 3.0    # 8-bit levels: blocks with less detail beyond their best plane (a gradient) match at EXACT_TOLERANCE
MIN_VOTES = 32      # blocks sharing a shift before it counts as a copy
SPREAD, SOLID = 5, 0.25   # a vote counts when a quarter of the SPREAD x SPREAD corners around its block vote too
CANDIDATES = 32     # the most voted shifts whose votes are counted that way
PCA_SAMPLE = 2048   # blocks the PCA is fitted on
MAX_PIXELS = 1 << 21   # larger images are searched at 1/k size (k an integer): memory grows with the blocks
                       # (8 components a block: ~0.4 GB at 2 megapixels' worth of float64 maps)


@dataclass
class CopyMove:
    shift: tuple[int, int] | None      # (dy, dx) of the most frequent shift, None when none counts
    votes: int                         # blocks that voted for it
    shifts: list[tuple[int, int, int]]  # (dy, dx, votes) of every shift that counts, most votes first
    mask: np.ndarray                   # H x W float32: 1 in blocks duplicated under a counted shift
    top_share: float = 0.0             # share of the image in blocks duplicated under the top shift


def _block_features(g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H-B+1, W-B+1, COMPONENTS): each block's projection on the PCA basis of the image's blocks."""
    h, w = g.shape[0] - BLOCK + 1, g.shape[1] - BLOCK + 1
    windows = np.lib.stride_tricks.sliding_window_view(g, (BLOCK, BLOCK))
    n = min(PCA_SAMPLE, h * w)
    pick = rng.choice(h * w, size=n, replace=False)
    sample = windows.reshape(h * w, BLOCK * BLOCK)[pick] if h * w <= PCA_SAMPLE else \
        np.stack([windows[i // w, i % w].ravel() for i in pick])
    sample = sample - sample.mean(0)
    # a 64 x 64 covariance and its eigenvectors: one BLAS thread, since threads only contend on so
    # small a problem (200x slower on a busy 2-core machine than one thread)
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        eigval, eigvec = np.linalg.eigh(sample.T @ sample / len(sample))
    basis = eigvec[:, ::-1][:, :COMPONENTS].T
    feats = np.empty((h, w, len(basis)))
    for k, comp in enumerate(basis):   # a component is a filter: its response at a block's corner is the projection
        kernel = comp.reshape(BLOCK, BLOCK)
        feats[..., k] = cv2.filter2D(g, cv2.CV_64F, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[:h, :w]
    return feats


def _sort_key(f: np.ndarray, step: float) -> np.ndarray:
    """The lexicographic order of the components quantised by `step` as one int64 per block (10 bits
    for each of the first 6 components, the first most significant)."""
    q = np.clip(np.round(f[:, :6] / step), -511, 511).astype(np.int64) + 512
    key = np.zeros(len(f), np.int64)
    for k in range(q.shape[1]):
        key = (key << 10) | q[:, k]
    return key


def _local_std(g: np.ndarray) -> np.ndarray:
    h, w = g.shape[0] - BLOCK + 1, g.shape[1] - BLOCK + 1
    m = cv2.boxFilter(g, cv2.CV_64F, (BLOCK, BLOCK), anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[:h, :w]
    m2 = cv2.boxFilter(g * g, cv2.CV_64F, (BLOCK, BLOCK), anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[:h, :w]
    return np.sqrt(np.maximum(m2 - m * m, 0))


def _local_detail(g: np.ndarray) -> np.ndarray:
    """Each block's standard deviation left after its best-fitting plane: a smooth gradient (a sky,
    a blurred background) has none, and its blocks match blocks of like slope anywhere."""
    h, w = g.shape[0] - BLOCK + 1, g.shape[1] - BLOCK + 1
    ramp = np.arange(BLOCK) - (BLOCK - 1) / 2
    var = _local_std(g) ** 2
    for kernel in (np.tile(ramp, (BLOCK, 1)), np.tile(ramp[:, None], (1, BLOCK))):   # slope across, then down
        kernel = kernel / np.linalg.norm(kernel)
        proj = cv2.filter2D(g, cv2.CV_64F, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[:h, :w]
        var -= proj * proj / (BLOCK * BLOCK)
    return np.sqrt(np.maximum(var, 0))


def find_copy_move(gray: np.ndarray, seed: int = 0) -> CopyMove:
    g = np.ascontiguousarray(gray, dtype=np.float64)
    H, W = g.shape
    empty = CopyMove(None, 0, [], np.zeros((H, W), np.float32))
    if min(H, W) < BLOCK + MIN_SHIFT:
        return empty
    feats = _block_features(g, np.random.default_rng(seed))
    h, w = feats.shape[:2]
    detailed = _local_detail(g) >= MIN_DETAIL
    ys, xs = np.nonzero(detailed | (_local_std(g) >= MIN_STD))
    if len(ys) < 2:
        return empty
    f, tol = feats[ys, xs], np.where(detailed[ys, xs], TOLERANCE, EXACT_TOLERANCE)
    # coarse bins first (a re-compressed copy lands in its source's), exact twins next to each other within a bin
    order = np.lexsort((_sort_key(f, EXACT_TOLERANCE), _sort_key(f, QUANT)))
    f, tol, ys, xs = f[order], tol[order], ys[order], xs[order]
    pairs = []
    for o in range(1, NEIGHBOURS + 1):
        close = np.all(np.abs(f[o:] - f[:-o]) <= np.minimum(tol[o:], tol[:-o])[:, None], axis=1)
        i = np.nonzero(close)[0]
        dy, dx = ys[i + o] - ys[i], xs[i + o] - xs[i]
        flip = (dy < 0) | ((dy == 0) & (dx < 0))   # one sign per shift: (dy, dx) and (-dy, -dx) are one copy
        dy, dx = np.where(flip, -dy, dy), np.where(flip, -dx, dx)
        src_y, src_x = np.where(flip, ys[i + o], ys[i]), np.where(flip, xs[i + o], xs[i])
        far = dy * dy + dx * dx >= MIN_SHIFT * MIN_SHIFT
        pairs.append(np.stack([dy[far], dx[far], src_y[far], src_x[far]], axis=1))
    pairs = np.concatenate(pairs) if pairs else np.zeros((0, 4), int)
    if not len(pairs):
        return empty
    pairs = np.unique(pairs, axis=0)    # a block pair found at two offsets votes once
    shifts, inverse, counts = np.unique(pairs[:, :2], axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    for n, k in enumerate(np.argsort(-counts, kind="stable")):
        if counts[k] < MIN_VOTES:
            break
        # beyond the CANDIDATES most voted, a shift is noise's (a copy's shift is among the first)
        counts[k] = _solid_votes(pairs[inverse == k], (h, w)) if n < CANDIDATES else min(counts[k], MIN_VOTES - 1)
    rank = np.argsort(-counts, kind="stable")
    counted = [(int(shifts[k, 0]), int(shifts[k, 1]), int(counts[k])) for k in rank if counts[k] >= MIN_VOTES]
    mask = np.zeros((H, W), np.float32)
    top_share = 0.0
    for k in rank[:len(counted)]:
        m = _blocks_mask(pairs[inverse == k], (H, W))
        top_share = top_share or float(m.mean())
        mask = np.maximum(mask, m)
    top = rank[0]
    if counts[top] < MIN_VOTES:
        return CopyMove(None, int(counts[top]), [], mask)
    return CopyMove((int(shifts[top, 0]), int(shifts[top, 1])), int(counts[top]), counted, mask, top_share)


def _solid_votes(pairs: np.ndarray, shape) -> int:
    """The votes from blocks amid other voters (SOLID of the SPREAD x SPREAD corners around them vote
    too): a copied region's blocks are a solid patch; blocks of noise or of a smooth gradient that
    match by chance lie scattered or along a line."""
    corners = np.zeros(shape, np.float32)
    corners[pairs[:, 2], pairs[:, 3]] = 1.0
    density = cv2.boxFilter(corners, -1, (SPREAD, SPREAD), borderType=cv2.BORDER_CONSTANT)
    return int(np.count_nonzero(density[pairs[:, 2], pairs[:, 3]] >= SOLID))


def _blocks_mask(pairs: np.ndarray, shape) -> np.ndarray:
    """1 over both blocks of each (dy, dx, y, x) pair: the block at (y, x) and its copy."""
    corners = np.zeros(shape, np.float32)
    corners[pairs[:, 2], pairs[:, 3]] = 1.0
    corners[pairs[:, 2] + pairs[:, 0], pairs[:, 3] + pairs[:, 1]] = 1.0
    # a block's corner marks the block: spread each mark over the BLOCK x BLOCK pixels below-right
    return cv2.dilate(corners, np.ones((BLOCK, BLOCK), np.uint8), anchor=(BLOCK - 1, BLOCK - 1),
                      borderType=cv2.BORDER_CONSTANT, borderValue=0)


def reduction(shape) -> int:
    """The integer factor a large image is shrunk by before the search (1: none)."""
    return max(1, int(np.ceil(np.sqrt(shape[0] * shape[1] / MAX_PIXELS))))


def check(image: np.ndarray, context=None) -> CheckResult:
    g = luminance(image)
    k = reduction(g.shape)
    if k > 1:   # area-averaged: a copy moved by a multiple of k stays exact; other copies are mostly missed
        small = cv2.resize(g, (g.shape[1] // k, g.shape[0] // k), interpolation=cv2.INTER_AREA)
        found = find_copy_move(small)
        mask = cv2.resize(found.mask, (g.shape[1], g.shape[0]), interpolation=cv2.INTER_NEAREST)
        found = CopyMove(tuple(k * v for v in found.shift) if found.shift else None, found.votes,
                         [(k * dy, k * dx, n) for dy, dx, n in found.shifts], mask, found.top_share)
    else:
        found = find_copy_move(g)
    details = {"shift": list(found.shift) if found.shift else None, "votes": found.votes,
               "shifts": [list(s) for s in found.shifts[:10]], "searched_at": f"1/{k} size" if k > 1 else "full size"}
    if found.shift is None:
        return CheckResult("copymove", 0.0, f"No region appears twice: no shift is shared by {MIN_VOTES} or more "
                                            f"{BLOCK}x{BLOCK} blocks (the most shared: {found.votes}).",
                           map=found.mask, map_title="duplicated regions", details=details)
    dy, dx = found.shift
    share = float(found.mask.mean())
    return CheckResult("copymove", found.top_share,
                       f"A region appears twice, moved by {abs(dy)} px {'down' if dy >= 0 else 'up'} and "
                       f"{abs(dx)} px {'right' if dx >= 0 else 'left'} "
                       f"({found.votes} matching {BLOCK}x{BLOCK} blocks; {share:.1%} of the image marked).",
                       map=found.mask, map_title="duplicated regions", details=details)

