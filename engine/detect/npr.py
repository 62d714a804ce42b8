"""The neighbouring-pixel residual (NPR; Tan et al., "Rethinking the up-sampling operations in
CNN-based generative network for generalizable deepfake detection", CVPR 2024):
    NPR = x - up(down(x)),  down: keep the top-left pixel of each 2x2 cell, up: repeat it (nearest)
Up-sampling layers make the pixels of a 2x2 cell depend on each other; NPR isolates that local
structure. Training-free, its energy is a measurement: exactly zero where each cell repeats one
pixel (nearest 2x up-sampling). Its energy at the four grid phases also tells whether one 2x2 grid
stands out (up-sampling aligns with one phase; a natural photo has none). The trained NPR CNN
(a small network on this residual) is a detector of its own."""
from __future__ import annotations

import numpy as np

from engine.detect.image import as_rgb
from engine.detect.result import CheckResult


def npr_residual(image: np.ndarray) -> np.ndarray:
    """x - up(down(x)) with nearest 2x resampling, float32 H' x W' x C (H', W': cut to even sides), in
    8-bit levels."""
    x = np.asarray(image, dtype=np.float32)
    x = x[: x.shape[0] // 2 * 2, : x.shape[1] // 2 * 2]
    up = np.repeat(np.repeat(x[::2, ::2], 2, axis=0), 2, axis=1)
    return x - up


def phase_energies(image: np.ndarray) -> np.ndarray:
    """RMS of the residual with the 2x2 grid offset by (dy, dx) in {0, 1}^2, as a 2 x 2 array."""
    x = np.asarray(image, dtype=np.float32)
    out = np.zeros((2, 2))
    for dy in (0, 1):
        for dx in (0, 1):
            out[dy, dx] = np.sqrt(np.mean(npr_residual(x[dy:, dx:]) ** 2))
    return out


def check(image: np.ndarray, context=None) -> CheckResult:
    x = as_rgb(image)
    if min(x.shape[:2]) < 4:
        raise ValueError(f"{x.shape[1]}x{x.shape[0]} pixels: too small for the NPR residual (4x4 at least)")
    r = npr_residual(x)
    energy = float(np.sqrt(np.mean(r ** 2)))
    phases = phase_energies(x)
    ratio = float(phases.min() / phases.max()) if phases.max() > 0 else 1.0
    aligned = np.unravel_index(np.argmin(phases), phases.shape)
    if phases.max() == 0:
        sentence = "The image is flat: no neighbouring pixels differ, so the residual says nothing."
    elif energy < 0.5:
        sentence = (f"Each 2x2 cell repeats one pixel (residual RMS {energy:.2f} levels): the image was up-sampled 2x "
                    f"by nearest neighbour.")
    elif ratio < 0.5:
        sentence = (f"The residual is {phases.min():.1f} levels on the 2x2 grid at offset {tuple(map(int, aligned))} "
                    f"but up to {phases.max():.1f} on the others: a 2x up-sampling grid stands out.")
    else:
        sentence = (f"Neighbouring pixels differ by {energy:.1f} levels (RMS) alike on every 2x2 grid phase: no "
                    f"nearest-neighbour up-sampling grid stands out.")
    return CheckResult("npr", energy, sentence, map=np.abs(r).mean(axis=2), map_title="|x - up(down(x))|",
                       details={"phase_rms": phases.round(4).tolist(), "grid_ratio": round(ratio, 4),
                                "grid_offset": [int(a) for a in aligned]})
