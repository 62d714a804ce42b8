"""Which watermark survives what: dwtDct and dwtDctSvd (48 bits, Stable Diffusion XL's message) on
256x256 crops of scikit-image's photographs, and Tree-Ring on a diffusion checkpoint's own samples,
each put through JPEG 90/75/50, resize (to half and back), crop (the centred 75% of each side,
resized back), Gaussian blur (sigma 1 px) and brightness (x1.3).

dwt methods: the mean bit accuracy and the detection rate (binomial p < 1e-3: the watermark check's
"weakened" bound). Tree-Ring: the detection rate of marked samples (p < 0.01) and the false-alarm
rate of the same seeds sampled without the rings, after the same attack.

    python benchmarks/watermark_robustness.py --checkpoint runs/<ddpm-digits>/checkpoints/step_000400.safetensors
        [--photos 4] [--samples 16] [--steps 20] [--key 7]
"""
from __future__ import annotations

import argparse
import io
import time

from common import write_result

import numpy as np

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
WEAK_P = 1e-3


def _jpeg(q):
    def f(rgb):
        from PIL import Image
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=q)
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return f


def _resize_half(rgb):
    import cv2
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _crop(rgb):
    import cv2
    h, w = rgb.shape[:2]
    ch, cw = round(h * 0.75), round(w * 0.75)
    y, x = (h - ch) // 2, (w - cw) // 2
    return cv2.resize(np.ascontiguousarray(rgb[y:y + ch, x:x + cw]), (w, h), interpolation=cv2.INTER_LINEAR)


def _blur(rgb):
    import cv2
    return cv2.GaussianBlur(rgb, (0, 0), 1.0)


def _bright(rgb):
    return np.clip(rgb.astype(np.float64) * 1.3, 0, 255).round().astype(np.uint8)


ATTACKS = {"none": lambda x: x, "jpeg90": _jpeg(90), "jpeg75": _jpeg(75), "jpeg50": _jpeg(50),
           "resize 0.5x": _resize_half, "crop 75%": _crop, "blur 1px": _blur, "brightness 1.3x": _bright}


def photos(n: int) -> list[np.ndarray]:
    import skimage.data
    out = []
    for i in range(n):
        img = getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()
        img = np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img[..., :3]
        out.append(np.ascontiguousarray(img[:256, :256]))
    return out


def dwt_table(n: int) -> dict:
    from engine.detect.watermark.dwt_dct import embed, read_scores
    from engine.detect.watermark.messages import SDXL_BITS, compare
    rows = {}
    for method in ("dwtDct", "dwtDctSvd"):
        marked = [embed(np.ascontiguousarray(p[..., ::-1]), SDXL_BITS, method)[..., ::-1] for p in photos(n)]
        rows[method] = {}
        for name, attack in ATTACKS.items():
            acc, hit = [], []
            for m in marked:
                bgr = np.ascontiguousarray(attack(np.ascontiguousarray(m))[..., ::-1])
                bits = (read_scores(bgr, len(SDXL_BITS), method) * 255 > 127).astype(np.uint8)
                c = compare(bits, SDXL_BITS)
                acc.append(c.accuracy)
                hit.append(c.p_value < WEAK_P)
            rows[method][name] = {"bit_accuracy": float(np.mean(acc)), "detected": float(np.mean(hit))}
    return rows


def treering_table(checkpoint: str, n: int, steps: int, key) -> dict:
    import torch

    from engine.detect.model_input import model_input, to_uint8
    from engine.detect.watermark.treering import ring_for, sample_marked, verify_images
    from engine.diffusion.inversion import reconstruct
    from engine.training.checkpoint import family_from_checkpoint
    fam, _ = family_from_checkpoint(checkpoint, "auto")
    ring = ring_for(fam, key)
    seeds = list(range(n))
    marked = to_uint8(sample_marked(fam, ring, seeds, steps))
    plain = to_uint8(reconstruct(fam, fam.seed_latents(seeds), steps))
    rows = {}
    for name, attack in ATTACKS.items():
        def tests(images):
            x = torch.cat([model_input(attack(np.ascontiguousarray(im)), fam.channels, fam.resolution)
                           for im in images])
            return verify_images(fam, ring, x, steps)
        hit, false = tests(marked), tests(plain)
        rows[name] = {"detected": float(np.mean([t.marked for t in hit])),
                      "false_alarms": float(np.mean([t.marked for t in false])),
                      "median_p_marked": float(np.median([t.p_value for t in hit]))}
    return {"model": fam.name, "resolution": fam.resolution, "channels": fam.channels, **ring.describe(),
            "steps": steps, "samples": n, "attacks": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="a diffusion checkpoint for Tree-Ring (ddpm-digits, say)")
    ap.add_argument("--photos", type=int, default=4)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--key", default="7")
    args = ap.parse_args()
    t = time.time()
    dwt = dwt_table(args.photos)
    tr = treering_table(args.checkpoint, args.samples, args.steps, args.key)
    write_result("watermark_robustness", {"checkpoint": args.checkpoint, "photos": args.photos, "dwt": dwt,
                                          "treering": tr, "wall_s": round(time.time() - t, 1)})
    head = "| mark | " + " | ".join(ATTACKS) + " |"
    print("\n" + head + "\n|" + "---|" * (len(ATTACKS) + 1))
    for method, row in dwt.items():
        print(f"| {method} 256², bit acc. / detected | " + " | ".join(
            f"{r['bit_accuracy']:.2f} / {r['detected']:.0%}" for r in row.values()) + " |")
    print(f"| treering {tr['resolution']}² ({tr['model']}), detected / false alarms | " + " | ".join(
        f"{r['detected']:.0%} / {r['false_alarms']:.0%}" for r in tr["attacks"].values()) + " |")


if __name__ == "__main__":
    main()
