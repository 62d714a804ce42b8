"""TensorBoard's event file, written without TensorBoard (it is an optional extra: GenLab trains
and exports without it).

An event file is a sequence of TFRecords, each
  uint64 length | uint32 masked CRC32C of the length | data | uint32 masked CRC32C of the data
(little-endian), whose data is one serialized `Event` protobuf (tensorboard/compat/proto/event.proto,
summary.proto). The few messages GenLab writes are encoded here by hand:
  Event    wall_time=1 (double), step=2 (int64), file_version=3 (string), summary=5, session_log=7
  Summary  value=1 (repeated Value)
  Value    tag=1, simple_value=2 (float), image=4, tensor=8, metadata=9
  Image    height=1, width=2, colorspace=3, encoded_image_string=4
  TensorProto  dtype=1 (DT_STRING = 7), tensor_shape=2 (a scalar: empty), string_val=8
  SummaryMetadata  plugin_data=1 {plugin_name=1, content=2}, data_class=4
"""
from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

from engine.core.util import FILE_MODE

FILE_VERSION = "brain.Event:2"
DT_STRING = 7
DATA_CLASS_TENSOR = 2
SESSION_START = 1  # SessionLog.status
# PNG colour type -> Summary.Image colorspace (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA); palette reads as RGB
_COLORSPACE = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


# ---- CRC32C (Castagnoli), as TFRecord frames use it ---------------------------------------------
def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    crc, table = 0xFFFFFFFF, _TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One TFRecord around `data`."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


# ---- protobuf wire format ------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64s are ten bytes of two's complement
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _int_field(field: int, n: int) -> bytes:
    return _varint(field << 3) + _varint(n)


def _bytes_field(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _str_field(field: int, text: str) -> bytes:
    return _bytes_field(field, text.encode("utf-8"))


# ---- the messages --------------------------------------------------------------------------------
def scalar_value(tag: str, value: float) -> bytes:
    """A Summary.Value holding a scalar (stored as float32, as TensorBoard does)."""
    return _str_field(1, tag) + _varint(2 << 3 | 5) + struct.pack("<f", value)


def png_size(png: bytes) -> tuple[int, int, int]:
    """(width, height, colorspace) from a PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    width, height = struct.unpack(">II", png[16:24])
    return width, height, _COLORSPACE.get(png[25], 3)


def image_value(tag: str, png: bytes) -> bytes:
    """A Summary.Value holding a PNG as it is (TensorBoard decodes it in the browser)."""
    width, height, colorspace = png_size(png)
    image = _int_field(1, height) + _int_field(2, width) + _int_field(3, colorspace) + _bytes_field(4, png)
    return _str_field(1, tag) + _bytes_field(4, image)


def text_value(tag: str, text: str) -> bytes:
    """A Summary.Value the text plugin shows: a scalar string tensor (markdown)."""
    metadata = _bytes_field(1, _str_field(1, "text")) + _int_field(4, DATA_CLASS_TENSOR)
    tensor = _int_field(1, DT_STRING) + _bytes_field(2, b"") + _str_field(8, text)
    return _str_field(1, tag) + _bytes_field(9, metadata) + _bytes_field(8, tensor)


def event(step: int, wall_time: float, values: list[bytes]) -> bytes:
    """A serialized Event holding one Summary of `values`."""
    summary = b"".join(_bytes_field(1, v) for v in values)
    return (_varint(1 << 3 | 1) + struct.pack("<d", wall_time) + _int_field(2, step)
            + _bytes_field(5, summary))


def version_event(wall_time: float) -> bytes:
    """The Event every event file starts with."""
    return _varint(1 << 3 | 1) + struct.pack("<d", wall_time) + _str_field(3, FILE_VERSION)


def start_event(step: int, wall_time: float) -> bytes:
    """A SessionLog START (Event field 7, status=1) at `step`: TensorBoard drops what it holds of
    this run from that step on (a run that restarts there), then reads what follows."""
    return (_varint(1 << 3 | 1) + struct.pack("<d", wall_time) + _int_field(2, step)
            + _bytes_field(7, _int_field(1, SESSION_START)))


# ---- the file ------------------------------------------------------------------------------------
def append(path: Path, events: list[bytes]) -> None:
    """Append whole records in one write and flush: a reader sees whole records (TensorBoard waits
    at a short tail). An event file is only ever appended to, never rewritten in place: a
    TensorBoard reading it keeps its offset into it."""
    with open(path, "ab") as f:
        f.write(b"".join(frame(e) for e in events))
        f.flush()


def write_whole(path: Path, events) -> None:
    """Write a whole event file (events: an iterable, framed one at a time) through a temp file
    renamed to `path`, so a reader never sees it half-written. The temp file's name has no
    "tfevents" in it: a TensorBoard watching the folder never reads it as an event file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".genlab-events.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                os.fchmod(f.fileno(), FILE_MODE)  # mkstemp's 0600: a shared run folder stays readable
            except (OSError, AttributeError):
                pass
            for e in events:
                f.write(frame(e))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
