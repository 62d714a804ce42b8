"""Inpainting time: RePaint against plain per-step blending, side by side, on the ddpm-digits
(16×16) and ddpm-faces (32×32) architectures, through the same operation the canvas runs
(engine/ops/inpaint.py: image and mask files in, one PNG per seed out). Time depends on the
architecture, not on training, so untrained networks are timed unless checkpoints are given.
Rounds alternate the methods, so a change in machine load hits both alike.

    python benchmarks/inpaint_speed.py [--device cpu|cuda] [--rounds 3] [--seeds 4]
        [--digits CKPT] [--faces CKPT]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import write_result

import numpy as np

PRESETS = ("ddpm-digits", "ddpm-faces")


def session_for(preset: str, checkpoint: str | None, device: str):
    from engine.core.config import load_preset
    from engine.data import build_dataset
    from engine.family.base import build_family
    from engine.ops.base import ModelSession
    from engine.training.device import select_device
    if checkpoint:
        return ModelSession.load(checkpoint, device)
    cfg = load_preset(preset)
    ds = build_dataset(cfg.data)
    fam = build_family(cfg, ds.channels, cfg.data.resolution, ds.class_names).to(select_device(device))
    return ModelSession(fam, Path(f"{preset} (untrained)"), 0, cfg)


def write_inputs(folder: Path, res: int, channels: int) -> tuple[str, str]:
    from PIL import Image
    rng = np.random.default_rng(0)
    img = (rng.random((res, res, 3)) * 255).astype(np.uint8)
    Image.fromarray(img[..., 0] if channels == 1 else img).save(folder / "image.png")
    mask = np.zeros((res, res), np.uint8)
    mask[res // 4: 3 * res // 4, res // 4: 3 * res // 4] = 255     # the middle quarter of the area
    Image.fromarray(mask).save(folder / "mask.png")
    return str(folder / "image.png"), str(folder / "mask.png")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="auto")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seeds", type=int, default=4, help="results per run (one batch)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--jump", type=int, default=5)
    p.add_argument("--resample", type=int, default=10)
    p.add_argument("--digits")
    p.add_argument("--faces")
    a = p.parse_args()
    from engine.ops.base import never, no_progress, parse_request
    from engine.ops.inpaint import InpaintRequest, run
    from engine.diffusion.inpaint import repaint_schedule
    tmp = Path(tempfile.mkdtemp())
    walk = repaint_schedule(a.steps, a.jump, a.resample)
    nfe = {"blend": a.steps, "repaint": sum(1 for x, y in zip(walk, walk[1:]) if y == x + 1)}
    rows = {}
    for preset, ckpt in zip(PRESETS, (a.digits, a.faces)):
        session = session_for(preset, ckpt, a.device)
        fam = session.family
        image, mask = write_inputs(tmp, fam.resolution, fam.channels)
        times: dict[str, list[float]] = {"blend": [], "repaint": []}
        for r in range(a.rounds + 1):            # round 0 warms up (kernels, allocator) and is dropped
            for method in ("blend", "repaint"):
                req = parse_request(InpaintRequest, {
                    "image": image, "mask": mask, "out_dir": str(tmp / "out"), "method": method,
                    "seeds": list(range(a.seeds)), "options": {"steps": a.steps, "sampler": "ddpm"},
                    "inpaint": {"jump": a.jump, "resample": a.resample}}, "inpaint")
                if fam.device.type == "cuda":
                    import torch
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                run(session, req, no_progress, never)
                if r:
                    times[method].append(time.perf_counter() - t0)
        med = {m: statistics.median(v) for m, v in times.items()}
        rows[preset] = {"resolution": fam.resolution, "checkpoint": str(session.checkpoint),
                        "device": str(fam.device), "seeds": a.seeds,
                        **{f"{m}_s": round(med[m], 3) for m in med},
                        **{f"{m}_nfe": nfe[m] for m in nfe},
                        "repaint_over_blend": round(med["repaint"] / med["blend"], 2),
                        "blend_ms_per_nfe": round(1000 * med["blend"] / nfe["blend"], 2),
                        "repaint_ms_per_nfe": round(1000 * med["repaint"] / nfe["repaint"], 2)}
        print(preset, rows[preset], flush=True)
    name = "inpaint_speed_" + ("gpu" if any(r["device"].startswith("cuda") for r in rows.values()) else "cpu")
    write_result(name, {"steps": a.steps, "jump": a.jump, "resample": a.resample, "sampler": "ddpm",
                        "rounds": a.rounds, "presets": rows})


if __name__ == "__main__":
    main()
