"""Seconds per 256x256 image for every training-free detection check (engine/detect/), and the
watermark's embed and verify time for both methods, beside the invisible-watermark package's own
on the same image when a Python with that package is named (it is not a GenLab dependency; see
tests/fixtures/watermark/make_fixtures.py for a throwaway venv). The spectrum check's one-time cost
(its real reference, built once per size and cached) is reported apart. Images: 256x256 crops of
scikit-image's photographs. Median over rounds; rounds alternate the checks, so a change in machine
load hits them alike.

The model-based checks that need a diffusion model are timed on a diffusion preset's network as
built, untrained (--diffusion-preset, ddpm-digits: the time does not depend on the weights): DIRE at
its default steps each way (DIRE_STEPS), Tree-Ring verify (DDIM inversion at TREERING_STEPS and the
ring test) and Tree-Ring's sampling of one marked image, on the first --model-images photos (brought
to the model's size by the checks' own resize rule).

    python benchmarks/detect_speed.py [--rounds 3] [--images 4] [--model-images 2] [--peer-python /tmp/iwm/bin/python]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import write_result

import numpy as np

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")

PEER = r"""
import json, sys, time, types
sys.modules.setdefault("torch", types.ModuleType("torch"))      # imwatermark imports it for rivaGan only
sys.modules.setdefault("onnxruntime", types.ModuleType("onnxruntime"))
import cv2
from imwatermark import WatermarkDecoder, WatermarkEncoder
paths, rounds = sys.argv[1].split(","), int(sys.argv[2])
bits = [int(b) for b in bin(0b101100111110110010010000011110111011000110011110)[2:]]
out = {}
for method in ("dwtDct", "dwtDctSvd"):
    emb, ver = [], []
    for _ in range(rounds):
        for p in paths:
            img = cv2.imread(p)
            enc = WatermarkEncoder(); enc.set_watermark("bits", bits)
            t = time.perf_counter(); marked = enc.encode(img, method); emb.append(time.perf_counter() - t)
            t = time.perf_counter(); WatermarkDecoder("bits", 48).decode(marked, method); ver.append(time.perf_counter() - t)
    out[method] = {"embed_s": sorted(emb)[len(emb) // 2], "verify_s": sorted(ver)[len(ver) // 2]}
print(json.dumps(out))
"""


def photos(n: int) -> list[np.ndarray]:
    import skimage.data
    return [np.ascontiguousarray(getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()[:256, :256, :3]) for i in range(n)]


def diffusion_model(preset: str):
    """The preset's diffusion family as built (untrained), on the CPU."""
    import torch

    from engine.core.config import load_preset
    from engine.data import build_dataset
    from engine.family.base import build_family
    torch.manual_seed(0)
    cfg = load_preset(preset).replace(training={"device": "cpu"})
    ds = build_dataset(cfg.data)
    return build_family(cfg, ds.channels, cfg.data.resolution, ds.class_names)


def time_diffusion_checks(preset: str, images: list[np.ndarray], rounds: int) -> dict:
    """Seconds per image of DIRE, Tree-Ring verify and one Tree-Ring sample with the preset's model."""
    from engine.core.detect_checks import DIRE_STEPS, TREERING_STEPS
    from engine.detect.context import DetectContext
    from engine.detect.model_input import model_input
    from engine.detect.run import run_check
    from engine.detect.watermark.treering import ring_for, sample_marked, verify_images

    @dataclass
    class PresetContext(DetectContext):      # the dire check's model: the preset's, not a checkpoint's
        family: object = None

        def diffusion_family(self):
            return self.family

    fam = diffusion_model(preset)
    ctx = PresetContext(family=fam)
    ring = ring_for(fam, "7")
    times: dict[str, list[float]] = {"dire": [], "treering verify": [], "treering sample (1 image)": []}
    for r in range(rounds):
        for img in images:
            t = time.perf_counter()
            run_check("dire", img, ctx)
            times["dire"].append(time.perf_counter() - t)
            t = time.perf_counter()
            verify_images(fam, ring, model_input(img, fam.channels, fam.resolution), TREERING_STEPS)
            times["treering verify"].append(time.perf_counter() - t)
        t = time.perf_counter()
        sample_marked(fam, ring, [r], TREERING_STEPS)
        times["treering sample (1 image)"].append(time.perf_counter() - t)
    params = sum(p.numel() for p in fam.networks.parameters())
    return {"preset": f"{preset} (untrained)", "parameters": params,
            "model_size": f"{fam.channels}x{fam.resolution}x{fam.resolution}",
            "dire_steps_each_way": DIRE_STEPS, "treering_steps": TREERING_STEPS, "images": len(images),
            "seconds_per_image": {k: round(statistics.median(v), 4) for k, v in times.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--peer-python", help="a Python with invisible-watermark installed, to time the package alike")
    ap.add_argument("--diffusion-preset", default="ddpm-digits", help="the diffusion model DIRE and Tree-Ring run "
                                                                      "(built from the preset, untrained)")
    ap.add_argument("--model-images", type=int, default=2, help="photos DIRE and Tree-Ring are timed on (0: skip)")
    args = ap.parse_args()

    from engine.core.detect_checks import default_checks
    from engine.detect.context import DetectContext
    from engine.detect.run import run_check
    from engine.detect.watermark import decode, embed
    from engine.detect.watermark.messages import SDXL_BITS

    images = photos(args.images)
    ctx = DetectContext()
    with tempfile.TemporaryDirectory() as cache:   # an empty cache: the reference's first build is timed
        os.environ["GENLAB_CACHE"] = cache
        t = time.perf_counter()
        ctx.real_profiles(256)                   # the spectrum's reference: once per size, then cached
        reference_s = time.perf_counter() - t
    checks = default_checks()
    times: dict[str, list[float]] = {c: [] for c in checks}
    wm: dict[str, list[float]] = {f"{m} {a}": [] for m in ("dwtDct", "dwtDctSvd") for a in ("embed", "verify")}
    for _ in range(args.rounds):
        for img in images:
            for c in checks:
                t = time.perf_counter()
                run_check(c, img, ctx)
                times[c].append(time.perf_counter() - t)
            bgr = np.ascontiguousarray(img[..., ::-1])
            for m in ("dwtDct", "dwtDctSvd"):
                t = time.perf_counter()
                marked = embed(bgr, SDXL_BITS, m)
                wm[f"{m} embed"].append(time.perf_counter() - t)
                t = time.perf_counter()
                decode(marked, len(SDXL_BITS), m)
                wm[f"{m} verify"].append(time.perf_counter() - t)
    result = {"image": "256x256 RGB", "images": args.images, "rounds": args.rounds,
              "spectrum_reference_first_build_s": round(reference_s, 3),
              "seconds_per_image": {c: round(statistics.median(v), 4) for c, v in times.items()},
              "watermark_seconds": {k: round(statistics.median(v), 4) for k, v in wm.items()}}
    if args.model_images > 0:
        result["diffusion_checks"] = time_diffusion_checks(args.diffusion_preset, images[:args.model_images],
                                                           args.rounds)
    if args.peer_python:
        import cv2
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i, img in enumerate(images):
                paths.append(str(Path(tmp) / f"{i}.png"))
                cv2.imwrite(paths[-1], np.ascontiguousarray(img[..., ::-1]))
            run = subprocess.run([args.peer_python, "-c", PEER, ",".join(paths), str(args.rounds)],
                                 capture_output=True, text=True, check=True)
        peer = json.loads(run.stdout)
        result["imwatermark_seconds"] = {f"{m} {a}": round(v[f"{a}_s"], 4) for m, v in peer.items()
                                         for a in ("embed", "verify")}
    write_result("detect_speed", result)


if __name__ == "__main__":
    main()
