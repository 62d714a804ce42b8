"""DIRE, the diffusion reconstruction error (Wang et al., ICCV 2023): an image a diffusion model
generated lies on the model's own sampling paths, so DDIM inversion followed by DDIM sampling brings
it back closely; a real photograph comes back further off. The score is the mean |x - recon(invert(x))|
in 8-bit levels (lower: more likely the model's own), the map that difference per pixel.

It runs a GenLab diffusion checkpoint (--diffusion-checkpoint; engine/diffusion/inversion.py) at
its own resolution: the image is brought to it by engine/detect/model_input.py's rule (as is at the
model's size; else its centred square, area-averaged down or bicubic up), and the map is at that
size. DIRE_STEPS DDIM steps each way by default (the paper's 20), unconditional prediction. The
paper trains a classifier on DIRE maps; this check reports the magnitude itself, which ranks a
model's own samples below real images of the same kind."""
from __future__ import annotations

import numpy as np

from engine.core.detect_checks import DIRE_STEPS
from engine.detect.result import CheckResult


def reconstruction_error(family, image: np.ndarray, steps: int = DIRE_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """(|x - recon| H x W in 8-bit levels, averaged over channels; the reconstruction uint8 H x W x 3)
    of a uint8 image at the model's resolution."""
    from engine.detect.model_input import model_input, to_uint8
    from engine.diffusion.inversion import round_trip
    x = model_input(image, family.channels, family.resolution)
    _, recon = round_trip(family, x, steps)
    diff = (x - recon.float()).abs().mean(dim=1)[0] * 127.5
    return diff.numpy().astype(np.float64), to_uint8(recon)[0]


def check(image: np.ndarray, context) -> CheckResult:
    family = context.diffusion_family() if context is not None else None
    if family is None:
        raise ValueError("the dire check needs a diffusion checkpoint (--diffusion-checkpoint FILE: a ddpm, edm, "
                         "flow_matching or ldm model, ideally the one suspected of making the image)")
    from engine.detect.model_input import resize_rule
    steps = int(getattr(context, "dire_steps", DIRE_STEPS))
    diff, _ = reconstruction_error(family, image, steps)
    score = float(diff.mean())
    sentence = (f"DDIM inversion and reconstruction with the {family.name} checkpoint ({steps} steps each way) "
                f"change it by {score:.1f} levels on average: the lower, the more it lies on that model's own "
                f"sampling paths.")
    return CheckResult("dire", score, sentence, map=diff, map_title="|x - DDIM reconstruction| (8-bit levels)",
                       details={"steps": steps, "model": family.name, "resolution": family.resolution,
                                "resize": resize_rule(image, family.resolution),
                                "max": float(diff.max())})
