"""The lines the Training panel reads out about the run shown: its headline losses and speed, and
the device it trains on. Pure text from an engine event or a metrics row: the same line for a run
trained here (its events) and a run opened from disk (its files)."""
from __future__ import annotations

from app.qt_util import human_duration
from engine.core.logkeys import short


def stats_line(row: dict, headline: tuple[str, ...] = (), *, eta: bool = False, paused: bool = False) -> str:
    """'loss mse 0.0412 · 66 img/s · ETA 1m 05s': the family's headline losses (every loss/ value
    when it has none), the speed, and the ETA (`eta`) or "paused"."""
    keys = headline or tuple(k for k in row if k.startswith("loss/"))
    parts = [f"loss {short(k)} {row[k]:.4f}" for k in keys if isinstance(row.get(k), (int, float))]
    if row.get("img_per_s"):
        parts.append(f"{row['img_per_s']:.0f} img/s")
    if paused:
        parts.append("paused")   # no ETA while nothing moves
    elif eta and row.get("eta_s") is not None:
        parts.append(f"ETA {human_duration(row['eta_s'])}")
    return " · ".join(parts) or "–"


def device_line(ev: dict) -> tuple[str, str]:
    """The device line of a "started" event and its tooltip (one device per rank, in rank order)."""
    world = int(ev.get("world_size") or 1)
    if world <= 1:
        return f"device: {ev['device']} · {ev['precision']}", ""
    devices = ev.get("devices") or [ev["device"]]
    shown = ", ".join(devices[:4]) + (f", … ({len(devices)} in all)" if len(devices) > 4 else "")
    return (f"{world} processes: {shown} · {ev['precision']}",
            "\n".join(f"rank {r}: {d}" for r, d in enumerate(devices)))
