"""Sampling speed of the token priors on one tokenizer, in one run: images/s of the AR prior
(KV-cached, and uncached for contrast) and of MaskGIT at K = 4, 8, 16 decoding steps (the speed
argument of MaskGIT: K passes instead of one per token). The tokenizer (vqvae-digits) and both
priors (the arprior-digits / maskgit-digits architectures) are trained briefly first: speed does
not depend on how well they are trained. Guidance is off for MaskGIT, so each step is one pass.

    python benchmarks/token_priors_sampling.py [--n 256] [--tokenizer-steps 200] [--prior-steps 50]
                                               [--device cpu] [--repeats 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import write_result


def trained(preset: str, root: Path, steps: int, device: str, **model) -> Path:
    from engine.core.config import load_preset
    from engine.training.loop import train
    cfg = load_preset(preset).replace(training={"steps": steps, "device": device, "sample_every": 0,
                                                "checkpoint_every": 0}, model=model)
    t0 = time.perf_counter()
    res = train(cfg, root / preset, emit=lambda e: None)
    print(f"{preset}: {steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)
    if res.state != "finished":
        raise SystemExit(f"{preset}: {res.state}: {res.message}")
    return res.last_checkpoint


def images_per_s(fn, n: int, repeats: int) -> float:
    fn()   # warm-up (allocations, kernel choice)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="images per sampling call (one batch)")
    ap.add_argument("--tokenizer-steps", type=int, default=200)
    ap.add_argument("--prior-steps", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch
    from engine.training import checkpoint as ck
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tok = trained("vqvae-digits", root, args.tokenizer_steps, args.device)
        fams = {name: ck.family_from_checkpoint(trained(f"{name}-digits", root, args.prior_steps, args.device,
                                                        parent=str(tok)), args.device)[0]
                for name in ("arprior", "maskgit")}
        ar, mg = fams["arprior"], fams["maskgit"]
        n, labels = args.n, ar.labels_for(args.n)
        seeds = list(range(n))
        rows = {}
        with torch.no_grad():
            opts = ar.sample_options()
            rows["ar_cached"] = images_per_s(lambda: ar.sample(n, seed=0, labels=labels), n, args.repeats)
            rows["ar_uncached_tokens_only"] = images_per_s(
                lambda: ar.sample_tokens(seeds, labels, opts, use_ema=True, cached=False), n, args.repeats)
            rows["ar_cached_tokens_only"] = images_per_s(
                lambda: ar.sample_tokens(seeds, labels, opts, use_ema=True), n, args.repeats)
            print({k: round(v, 1) for k, v in rows.items()}, flush=True)
            for k in (4, 8, 16):
                rows[f"maskgit_k{k}"] = images_per_s(
                    lambda: mg.sample(n, seed=0, labels=labels, steps=k, guidance_scale=1.0), n, args.repeats)
                print(f"maskgit K={k}: {rows[f'maskgit_k{k}']:.1f} images/s", flush=True)
        result = {"tokens_per_image": ar.length, "codes": ar.num_codes, "n": n, "device": args.device,
                  "images_per_s": {k: round(v, 1) for k, v in rows.items()},
                  "network_passes_per_image": {"ar": ar.network_evaluations(),
                                               **{f"maskgit_k{k}": mg.network_evaluations(
                                                   {"steps": k, "guidance_scale": 1.0}) for k in (4, 8, 16)}}}
        write_result("token_priors_sampling", result)


if __name__ == "__main__":
    main()
