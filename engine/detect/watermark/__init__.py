"""Invisible watermarks: DWT-DCT and DWT-DCT-SVD, bit-compatible with the invisible-watermark
package (dwt_dct.py), their messages and the test of a read message (messages.py)."""
from engine.detect.watermark.dwt_dct import METHODS, WatermarkError, capacity, decode, embed, read_scores
from engine.detect.watermark.messages import SDXL_BITS, SDXL_METHOD, Match, compare

__all__ = ["METHODS", "WatermarkError", "capacity", "decode", "embed", "read_scores", "SDXL_BITS", "SDXL_METHOD",
           "Match", "compare"]
