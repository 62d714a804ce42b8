"""Single-level 2D Haar wavelet transform, computed exactly as PyWavelets' `pywt.dwt2(x, 'haar')`
and `pywt.idwt2(..., 'haar')` compute it (PyWavelets is not a dependency). Exactness matters: the
invisible-watermark package casts the inverse transform to uint8 by truncation, so a last-bit
difference in the float arithmetic could move a pixel by one level.

For each 2x2 block [[a, b], [c, d]], with c = 1/sqrt(2) as a float64 (PyWavelets' filter taps),
the forward transform runs along rows (axis 0) then columns (axis 1), each as
    low = c*x0 + c*x1,  high = c*x0 - c*x1
so cA ~ (a+b+c+d)/2, cH ~ (a+b-c-d)/2, cV ~ (a-b+c-d)/2, cD ~ (a-b-c+d)/2. The inverse runs
columns first, then rows: x0 = c*low + c*high, x1 = c*low - c*high. Even sizes only (the
watermark cuts the image to a multiple of 4 first)."""
from __future__ import annotations

import numpy as np

C = 0.7071067811865476   # float64(1/sqrt(2)): the Haar filter taps PyWavelets uses


def _float(x: np.ndarray) -> np.ndarray:
    # PyWavelets keeps float32 as float32 and turns every other type (uint8 included) into float64
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def _dwt_axis(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    x0 = np.take(x, np.arange(0, x.shape[axis], 2), axis=axis)
    x1 = np.take(x, np.arange(1, x.shape[axis], 2), axis=axis)
    c = x.dtype.type(C)
    return c * x0 + c * x1, c * x0 - c * x1


def _idwt_axis(lo: np.ndarray, hi: np.ndarray, axis: int) -> np.ndarray:
    c = lo.dtype.type(C)
    x0, x1 = c * lo + c * hi, c * lo - c * hi
    shape = list(lo.shape)
    shape[axis] *= 2
    out = np.empty(shape, lo.dtype)
    even = [slice(None)] * lo.ndim
    odd = [slice(None)] * lo.ndim
    even[axis], odd[axis] = slice(0, None, 2), slice(1, None, 2)
    out[tuple(even)], out[tuple(odd)] = x0, x1
    return out


def dwt2(x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(cA, (cH, cV, cD)) of a 2D array with even sides, as pywt.dwt2(x, 'haar')."""
    x = _float(x)
    if x.ndim != 2 or x.shape[0] % 2 or x.shape[1] % 2:
        raise ValueError(f"Haar dwt2 needs a 2D array with even sides, got shape {x.shape}")
    lo, hi = _dwt_axis(x, 0)
    aa, ad = _dwt_axis(lo, 1)
    da, dd = _dwt_axis(hi, 1)
    return aa, (da, ad, dd)


def idwt2(coeffs) -> np.ndarray:
    """The inverse of dwt2, as pywt.idwt2((cA, (cH, cV, cD)), 'haar')."""
    ca, (ch, cv, cd) = coeffs
    ca, ch, cv, cd = (_float(a) for a in (ca, ch, cv, cd))
    dtype = np.result_type(ca, ch, cv, cd)
    ca, ch, cv, cd = (a.astype(dtype, copy=False) for a in (ca, ch, cv, cd))
    lo = _idwt_axis(ca, cv, 1)    # the 'a?' pair along columns, then the 'd?' pair
    hi = _idwt_axis(ch, cd, 1)
    return _idwt_axis(lo, hi, 0)
