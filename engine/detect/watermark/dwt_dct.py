"""DWT-DCT and DWT-DCT-SVD invisible watermarks, bit-compatible with the invisible-watermark
package (`imwatermark` 0.2.0, the one Stable Diffusion XL uses): an image it marked reads here, and
an image marked here reads there, and for uint8 images the marked pixels are identical.

What the package does, and so what this does (imwatermark/maxDct.py, dwtDctSvd.py):
- BGR -> YUV with cv2, then only the channels 0 and 1 are visited and only those with a scale > 0:
  dwtDct's scales are (0, 36, 36) and dwtDctSvd's (0, 36, 0), so both mark the U channel alone
  (dwtDct's V scale is never reached), with the quantisation step 36.
- The U channel, cut to a multiple of 4 pixels a side, gets one Haar DWT level; its LL band is cut
  in 4x4 blocks, in raster order; block k carries bit k mod len(message).
- dwtDct (despite its name there is no DCT in this version): the largest-magnitude coefficient of
  the block other than its top-left one is quantised: |v| -> (|v| // 36 + 0.25 + 0.5 bit) * 36,
  sign kept. Reading: bit 1 where |v| mod 36 > 18.
- dwtDctSvd: the block's 2D DCT (cv2.dct) is SVD-decomposed and its largest singular value s0
  quantised the same way, then inverted (cv2.idct). Reading: bit 1 where s0 mod 36 > 18.
- A bit is 1 where the mean of its blocks' readings x 255 > 127 (a majority vote).
- The inverse DWT is given the H and V bands swapped ((cA, (cV, cH, cD))): a quirk of the package
  that does not touch the LL band the mark lives in; it is kept so the pixels match.
- Storing the float result into a uint8 image truncates. The package lets values outside [0, 256)
  wrap around; here they are clipped first (the only place the pixels may differ).

Small images: the package refuses anything under 256x256 pixels (by area). GenLab embeds and reads
a mark in any image whose LL band has at least one block per message bit (an 8x8-pixel cell each:
48 bits need e.g. 64x48 pixels), and says so: below 256x256 the mark has fewer blocks voting for
each bit (21 per bit for 48 bits at 256x256; 1 at 56x56), so it survives less, and imwatermark
itself will refuse to read it. Fewer blocks than bits is refused with one line."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.detect.watermark.haar import dwt2, idwt2

METHODS = ("dwtDct", "dwtDctSvd")
SCALES = {"dwtDct": (0, 36, 36), "dwtDctSvd": (0, 36, 0)}   # per YUV channel, as the package's defaults
BLOCK = 4                       # LL-band block side (8 image pixels)
PACKAGE_MIN_PIXELS = 256 * 256  # invisible-watermark refuses images with fewer pixels


class WatermarkError(ValueError):
    """A mark cannot be embedded or read: the message says why in one line."""


@dataclass
class Capacity:
    blocks: int          # LL blocks in the image, all channels together
    bits: int
    pixels: int

    @property
    def blocks_per_bit(self) -> int:
        return self.blocks // max(self.bits, 1)

    def warnings(self) -> list[str]:
        if self.pixels >= PACKAGE_MIN_PIXELS:
            return []
        return [f"smaller than 256x256 pixels: invisible-watermark refuses such images; GenLab uses "
                f"{self.blocks_per_bit} block(s) per bit instead of 21+, so the mark survives less"]


def _method(method: str) -> str:
    if method not in METHODS:
        raise WatermarkError(f"unknown watermark method {method!r}; choose from: {', '.join(METHODS)}")
    return method


def _channels(method: str, scales=None) -> list[tuple[int, float]]:
    scales = SCALES[_method(method)] if scales is None else tuple(scales)
    return [(ch, scales[ch]) for ch in range(2) if scales[ch] > 0]   # the package visits channels 0 and 1 only


def capacity(shape, bits: int, method: str) -> Capacity:
    rows, cols = shape[:2]
    per_channel = ((rows // 4 * 4) // 2 // BLOCK) * ((cols // 4 * 4) // 2 // BLOCK)
    return Capacity(per_channel * len(_channels(method)), bits, rows * cols)


def _check_image(bgr: np.ndarray, bits: int, method: str) -> Capacity:
    if bgr.ndim != 3 or bgr.shape[2] != 3:
        raise WatermarkError(f"expected an H x W x 3 image, got shape {bgr.shape}")
    if bits < 1:
        raise WatermarkError("the message has no bits")
    cap = capacity(bgr.shape, bits, method)
    if cap.blocks < bits:
        raise WatermarkError(f"{bgr.shape[1]}x{bgr.shape[0]} pixels hold {cap.blocks} blocks, fewer than the "
                             f"{bits} bits of the message: too small to carry it (one 8x8 cell per bit at least)")
    return cap


def _blocks(ca: np.ndarray) -> np.ndarray:
    """The LL band's whole 4x4 blocks in raster order, (n, 4, 4) (a copy)."""
    nr, nc = ca.shape[0] // BLOCK, ca.shape[1] // BLOCK
    return ca[:nr * BLOCK, :nc * BLOCK].reshape(nr, BLOCK, nc, BLOCK).swapaxes(1, 2).reshape(-1, BLOCK, BLOCK).copy()


def _put_blocks(ca: np.ndarray, blocks: np.ndarray) -> None:
    nr, nc = ca.shape[0] // BLOCK, ca.shape[1] // BLOCK
    ca[:nr * BLOCK, :nc * BLOCK] = blocks.reshape(nr, nc, BLOCK, BLOCK).swapaxes(1, 2).reshape(nr * BLOCK, nc * BLOCK)


def _quantise(v, bit, scale):
    return (v // scale + 0.25 + 0.5 * bit) * scale   # the package's expression, in its order


def _embed_max(blocks: np.ndarray, bits: np.ndarray, scale: float) -> None:
    flat = blocks.reshape(len(blocks), -1)
    pos = np.argmax(np.abs(flat[:, 1:]), axis=1) + 1      # the largest non-DC coefficient (first on ties)
    rows = np.arange(len(flat))
    val = flat[rows, pos]
    q = _quantise(np.abs(val), bits, scale)
    flat[rows, pos] = np.where(val >= 0.0, q, -1.0 * q)


def _read_max(blocks: np.ndarray, scale: float) -> np.ndarray:
    flat = np.abs(blocks.reshape(len(blocks), -1))
    val = flat[np.arange(len(flat)), np.argmax(flat[:, 1:], axis=1) + 1]
    return (val % scale > 0.5 * scale).astype(np.float64)


def _dct2(blocks: np.ndarray, inverse: bool = False) -> np.ndarray:
    """cv2.dct (or cv2.idct) of every 4x4 block at once: rows, then columns, which gives the same
    floats as cv2's own 2D transform of each block (checked against the package's pixels)."""
    flags = cv2.DCT_ROWS | (cv2.DCT_INVERSE if inverse else 0)
    n = len(blocks)
    rows = cv2.dct(np.ascontiguousarray(blocks).reshape(-1, BLOCK), flags=flags).reshape(n, BLOCK, BLOCK)
    cols = cv2.dct(np.ascontiguousarray(rows.transpose(0, 2, 1)).reshape(-1, BLOCK), flags=flags)
    return cols.reshape(n, BLOCK, BLOCK).transpose(0, 2, 1)


def _embed_svd(blocks: np.ndarray, bits: np.ndarray, scale: float) -> None:
    u, s, v = np.linalg.svd(_dct2(blocks))
    s[:, 0] = _quantise(s[:, 0], bits, scale)
    # u . (diag(s) . v), as the package multiplies (diag(s) . v is each row of v times its s)
    blocks[:] = _dct2(np.matmul(u, np.einsum("ni,nij->nij", s, v)), inverse=True)


def _read_svd(blocks: np.ndarray, scale: float) -> np.ndarray:
    s0 = np.linalg.svd(_dct2(blocks))[1][:, 0]
    return (s0 % scale > 0.5 * scale).astype(np.float64)


def _store(rec: np.ndarray, dtype) -> np.ndarray:
    # the package assigns the float result into the uint8 image (truncation); values outside the
    # range would wrap there, here they are clipped
    return np.clip(rec, 0, 255) if dtype == np.uint8 else rec


def embed(bgr: np.ndarray, bits, method: str = "dwtDct", scales=None) -> np.ndarray:
    """The image (H x W x 3, BGR as cv2 reads it, uint8 or float32 in [0, 255]) with `bits` marked
    in it, as imwatermark's WatermarkEncoder.encode(bgr, method) returns it."""
    bits = np.asarray(bits, dtype=np.uint8).ravel()
    _check_image(bgr, len(bits), method)
    rows, cols = bgr.shape[:2]
    r4, c4 = rows // 4 * 4, cols // 4 * 4
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)
    for ch, scale in _channels(method, scales):
        ca, (h, v, d) = dwt2(yuv[:r4, :c4, ch])
        blocks = _blocks(ca)
        per_block = np.resize(bits, len(blocks))    # block k carries bit k mod len
        (_embed_max if method == "dwtDct" else _embed_svd)(blocks, per_block, scale)
        _put_blocks(ca, blocks)
        yuv[:r4, :c4, ch] = _store(idwt2((ca, (v, h, d))), yuv.dtype)
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR)


def read_scores(bgr: np.ndarray, n_bits: int, method: str = "dwtDct", scales=None) -> np.ndarray:
    """Each bit's mean block reading in [0, 1] (1: every block voted 1)."""
    _check_image(bgr, n_bits, method)
    rows, cols = bgr.shape[:2]
    r4, c4 = rows // 4 * 4, cols // 4 * 4
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)
    votes = [[] for _ in range(n_bits)]
    for ch, scale in _channels(method, scales):
        ca, _ = dwt2(yuv[:r4, :c4, ch])
        blocks = _blocks(ca)
        got = (_read_max if method == "dwtDct" else _read_svd)(blocks, scale)
        for b in range(n_bits):
            votes[b].extend(got[b::n_bits])
    return np.array([np.mean(v) for v in votes])


def decode(bgr: np.ndarray, n_bits: int, method: str = "dwtDct", scales=None) -> np.ndarray:
    """The n_bits read from the image (uint8 0/1), as imwatermark's WatermarkDecoder('bits', n).decode."""
    return (read_scores(bgr, n_bits, method, scales) * 255 > 127).astype(np.uint8)
