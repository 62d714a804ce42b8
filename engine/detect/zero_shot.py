"""The zero-shot check, in the spirit of ZED (Cozzolino et al., ECCV 2024): no generated images needed.

A likelihood model trained on real images alone (a GenLab autoregressive pixel model: it predicts
every sub-pixel's 256 levels given the ones before it) is a lossless coder. For each sub-pixel i:
    coding cost      s_i = -log2 P(x_i | x_<i)               (what this image costs to code)
    expected entropy h_i = -sum_k P(k | x_<i) log2 P(k | x_<i) (what the model expects it to cost)
    its variance     v_i = sum_k P(k | x_<i) (log2 P(k | x_<i))^2 - h_i^2
Given the past, s_i - h_i has mean 0 and variance v_i under the model itself, and the terms are
uncorrelated (a martingale difference sequence), so on images the model could have drawn
    z = sum_i (s_i - h_i) / sqrt(sum_i v_i)
is about N(0, 1). ZED's finding on photographs: images of other generators are "too easy" (z far
below 0). Measured here on digits (benchmarks/zero_shot_auc.py, pixelcnn-digits after its 3,000
steps): held-out real digits z -1.8 +- 1.8, the model's own samples -0.05 +- 0.86, and samples of
four other GenLab generators z +27 to +156 (they leave the 17 grey levels the digits have): far
above, not below. So the check is two-sided: the score is |z|, higher is more suspicious, and the
sentence says which way; z itself is in the details. The map is s_i - h_i summed over a pixel's
channels (bits), the surprisal map.

A class-conditional model is used as the unconditional mixture over its classes with a uniform
prior (the training set's class shares are not recorded): P(x_i | x_<i) = sum_c P(c | x_<i) P(x_i |
x_<i, c), P(c | x_<i) from the classes' likelihoods of the sub-pixels before i, which is exact for
that mixture and costs one pass per class. Images are brought to the model's size and colour by
engine/detect/models.py's rule; the result is about the resized image."""
from __future__ import annotations

import math

import numpy as np

from engine.detect.result import CheckResult

LN2 = math.log(2.0)
EASY_Z, HARD_Z = -2.0, 2.0   # z under / over which the sentence calls the image easier / harder than the model's own


def coding_costs(family, x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(s, h, v) per sub-pixel, each (C, H, W) in bits (v in bits^2), for x (1, C, H, W) in [-1, 1]
    under a PixelPredictor family (the classes marginalised for a conditional model)."""
    from engine.detect.trained import torch_threads
    with torch_threads(1):      # small tensors, many ops: a second thread costs more than it gives (trained.py)
        return _coding_costs(family, x)


def _coding_costs(family, x):
    import torch

    from engine.nn.likelihood import to_levels
    c, hh, ww = x.shape[1:]
    levels = to_levels(x)[0].permute(1, 2, 0).reshape(-1)                 # D, in coding order (row, column, channel)
    classes = list(range(family.num_classes)) if getattr(family, "num_classes", 0) else [None]
    lp = family.level_log_probs(x.expand(len(classes), -1, -1, -1),       # one pass, a class per row
                                None if classes == [None] else classes)   # K, C, H, W, 256
    lp = lp.permute(0, 2, 3, 1, 4).reshape(len(classes), -1, lp.shape[-1]).double()   # K, D, 256
    if len(classes) > 1:
        own = lp.gather(2, levels.view(1, -1, 1).expand(len(classes), -1, 1)).squeeze(2)   # K, D
        before = torch.cumsum(own, dim=1) - own                                # log P(x_<i | c)
        log_post = torch.log_softmax(before, dim=0)                            # uniform prior: P(c | x_<i)
        lp = torch.logsumexp(log_post.unsqueeze(2) + lp, dim=0)                # D, 256
    else:
        lp = lp[0]
    p = lp.exp()
    s = -lp.gather(1, levels.view(-1, 1)).squeeze(1) / LN2
    lp2 = torch.where(p > 0, lp, torch.zeros_like(lp)) / LN2                  # 0 log 0 = 0
    h = -(p * lp2).sum(1)
    v = ((p * lp2 * lp2).sum(1) - h * h).clamp(min=0)

    def grid(t):
        return t.view(hh, ww, c).permute(2, 0, 1).numpy()
    return grid(s), grid(h), grid(v)


def check(image: np.ndarray, context) -> CheckResult:
    from engine.detect.image import as_rgb
    from engine.detect.model_input import model_input, resized_words
    family = context.likelihood_family() if context is not None else None
    if family is None:
        raise ValueError("the zeroshot check needs a likelihood model trained on real images "
                         "(--likelihood-model CKPT: a pixelcnn checkpoint)")
    image = as_rgb(image)
    x = model_input(image, family.channels, family.resolution)
    s, h, v = coding_costs(family, x)
    d = s.size
    gap = s - h
    z = float(gap.sum() / max(math.sqrt(float(v.sum())), 1e-12))
    cost, expected = float(s.mean()), float(h.mean())
    if z < EASY_Z:
        verdict = ("easier to code than the model expects even of its own samples (\"too easy\", ZED's sign of "
                   "another generator on photographs; a briefly trained model finds real images easy too)")
    elif z > HARD_Z:
        verdict = ("harder to code than the model expects of its own samples: unlike the real images it learned "
                   "(on digits, every other generator's samples land here)")
    else:
        verdict = "about as hard to code as the model's own samples"
    sentence = (f"Coding cost {cost:.3f} bits/dim against the {expected:.3f} the model expects (gap "
                f"{cost - expected:+.3f} bits/dim, z {z:+.1f}): {verdict}{resized_words(image, family.resolution)}.")
    return CheckResult("zeroshot", abs(z), sentence, map=gap.sum(0),
                       map_title="surprisal: coding cost minus expected entropy per pixel (bits)",
                       details={"coding_cost_bpd": cost, "expected_entropy_bpd": expected,
                                "gap_bpd": cost - expected, "z": z, "subpixels": int(d),
                                "model": str(context.likelihood_model), "resolution": int(family.resolution)})
