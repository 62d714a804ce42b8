"""Watermark messages as bit arrays, and how well a read message matches the expected one.

The formats are the invisible-watermark package's: text and bytes as their bits, most significant
bit first (numpy.unpackbits); a '0'/'1' string as it reads. Stable Diffusion XL (diffusers'
StableDiffusionXLWatermarker and Stability's sgm) marks every image of 256 pixels or more a side
with dwtDct and the 48 bits of 0xB3EC907BB19E."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SDXL_MESSAGE = 0b101100111110110010010000011110111011000110011110   # 0xB3EC907BB19E
SDXL_BITS = np.array([int(b) for b in bin(SDXL_MESSAGE)[2:]], dtype=np.uint8)   # 48 bits
SDXL_METHOD = "dwtDct"


def bits_from_text(text: str) -> np.ndarray:
    return np.unpackbits(np.frombuffer(text.encode("utf-8"), dtype=np.uint8))


def bits_from_hex(hexstr: str) -> np.ndarray:
    try:
        raw = bytes.fromhex(hexstr.removeprefix("0x"))
    except ValueError:
        raise ValueError(f"{hexstr!r} is not a hexadecimal message") from None
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8))


def bits_from_string(bits: str) -> np.ndarray:
    bits = bits.strip()
    if not bits or set(bits) - {"0", "1"}:
        raise ValueError(f"{bits!r} is not a string of 0s and 1s")
    return np.array([int(b) for b in bits], dtype=np.uint8)


def bits_to_string(bits) -> str:
    return "".join(str(int(b)) for b in bits)


def bits_to_text(bits) -> str | None:
    """The bits as UTF-8 text, or None when they are not whole bytes of valid text."""
    bits = np.asarray(bits, dtype=np.uint8)
    if len(bits) % 8:
        return None
    try:
        return np.packbits(bits).tobytes().decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class Match:
    matches: int
    bits: int
    accuracy: float      # fraction of bits equal
    p_value: float       # P(at least this many equal | an unmarked image: each bit a fair coin)

    def line(self) -> str:
        return f"bit accuracy {self.accuracy:.3f} ({self.matches}/{self.bits}), p = {self.p_value:.3g}"


def compare(read, expected) -> Match:
    """How well a read message matches the expected one, with the one-sided binomial p-value of
    that many matches by chance (an unmarked image reads each bit as a coin flip)."""
    from scipy.stats import binom
    read, expected = np.asarray(read).ravel(), np.asarray(expected).ravel()
    if len(read) != len(expected):
        raise ValueError(f"read {len(read)} bits, expected {len(expected)}")
    k, n = int((read == expected).sum()), len(expected)
    return Match(k, n, k / n, float(binom.sf(k - 1, n, 0.5)))
