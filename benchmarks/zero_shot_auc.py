"""How well the `zeroshot` check (engine/detect/zero_shot.py) tells a likelihood model's own samples
from real images it never trained on: the z-score of each image's coding cost against the model's
expected entropy, for N samples of the checkpoint (seeds 0..N-1, the checkpoint's own sampling
options, classes cycled) and N of the run's held-out real images, and the AUC of "sample" against
"real" with lower z = more suspicious (the check's direction); with --other, the same for N samples of
each other generator (any family at the model's size: ZED's actual claim is about images of *other*
generators, which a coder trained on real images finds too easy; its own samples are typical for it
by construction: z ~ N(0, 1)).

    python benchmarks/zero_shot_auc.py --checkpoint RUN/checkpoints/step_003000.safetensors --n 100 \
        --other DDPM_CKPT GAN_CKPT
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from common import write_result


def auc_lower_is_positive(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores lower than a negative), ties counted half: the AUC of 'lower = positive'."""
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float((pos < neg).mean() + 0.5 * (pos == neg).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--other", nargs="*", default=[], help="checkpoints of other generators to score")
    args = ap.parse_args()

    import torch

    from engine.data import build_dataset
    from engine.detect.models import load_family
    from engine.detect.zero_shot import coding_costs
    from engine.family.interfaces import PixelPredictor
    fam = load_family(args.checkpoint, PixelPredictor, "per-pixel level distributions", "zeroshot")
    cfg = fam.cfg
    _, held = build_dataset(cfg.data).split(cfg.data.holdout, cfg.data.seed)
    if held is None or len(held) < args.n:
        raise SystemExit(f"{args.checkpoint}: the run kept {0 if held is None else len(held)} images out; "
                         f"asked for {args.n}")
    real = held.float_batch(torch.arange(args.n))

    t0 = time.time()
    labels = fam.labels_for(args.n, None)
    samples = fam.sample(args.n, seed=0, labels=labels)
    sample_s = time.time() - t0

    def z_of(x) -> float:
        s, h, v = coding_costs(fam, x.unsqueeze(0))
        return float((s - h).sum() / np.sqrt(v.sum()))

    t0 = time.time()
    z_real = np.array([z_of(x) for x in real])
    z_fake = np.array([z_of(x) for x in samples])
    score_s = time.time() - t0
    result = {"checkpoint": args.checkpoint, "n": args.n,
              "z_real": {"mean": float(z_real.mean()), "std": float(z_real.std())},
              "z_samples": {"mean": float(z_fake.mean()), "std": float(z_fake.std())},
              "auc_samples_lower": auc_lower_is_positive(z_fake, z_real),
              "sampling_s": round(sample_s, 1), "scoring_s_per_image": round(score_s / (2 * args.n), 3),
              "other": {}}
    from engine.detect.model_input import model_input, to_uint8
    from engine.training.checkpoint import family_from_checkpoint
    for ckpt in args.other:     # through 8 bits and the checks' resize rule, as a dropped PNG would come
        other, _ = family_from_checkpoint(ckpt, "cpu")
        imgs = to_uint8(other.sample(args.n, seed=0, labels=other.labels_for(args.n, None)))
        z = np.array([z_of(model_input(im, fam.channels, fam.resolution)[0]) for im in imgs])
        result["other"][ckpt] = {"family": other.name, "z": {"mean": float(z.mean()), "std": float(z.std())},
                                 "auc_lower_than_real": auc_lower_is_positive(z, z_real)}
    write_result("zero_shot_auc", result)


if __name__ == "__main__":
    main()
