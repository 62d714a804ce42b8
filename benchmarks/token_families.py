"""The discrete-token presets measured as a user would run them: each tokenizer (vqvae-digits, fsq-digits,
msrq-digits) and each prior on its default tokenizer (maskgit-digits and arprior-digits on vqvae-digits,
var-digits on msrq-digits) trains its whole preset as Train runs it, one run at a time, with a checkpoint
every `--every` steps and no evaluation passes or grids inside the run. Afterwards every checkpoint is read:

- a tokenizer: its reconstructions of the run's held-out digits — how often the digit classifier of
  time_to_digits.py reads the reconstruction as the digit it was (real held-out digits: printed alongside),
  the mean squared error in [-1, 1] units — and its codebook on those digits: the share of codes used and
  the perplexity of the code histogram (exp of its entropy; the number of equally used codes it equals);
- a prior: 100 samples with the preset's own sampling options, image i asking for digit i mod 10, and how
  often the classifier agrees with the asked digit.

"Recognisable" is the first checkpoint at which the classifier reads >= `--threshold` (0.9). The time is the
wall time from starting `genlab-engine train` to that checkpoint's event (the process's start included); a
prior's time does not include its tokenizer's run, which is reported in its own row. The last checkpoint of
each prior is scored by `genlab-engine eval --metrics fid,pr` (FD on the domain features on this CPU, and
precision / recall), and its sampling images/s is timed in this process (AR KV-cached, MaskGIT at K = 4, 8
and 16 without guidance, VAR with its preset options).

    python benchmarks/token_families.py [--every 100] [--threshold 0.9] [--steps-scale 1.0] [--eval-n 500]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_result
from time_to_digits import digit_classifier

import numpy as np

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
TOKENIZERS = ("vqvae-digits", "fsq-digits", "msrq-digits")
PRIORS = {"maskgit-digits": "vqvae-digits", "arprior-digits": "vqvae-digits", "var-digits": "msrq-digits"}


def train(preset: str, run: Path, every: int, steps: int | None, parent: Path | None = None) -> dict:
    """Run the preset to its end; the wall time of each checkpoint's event."""
    cmd = [sys.executable, "-m", "engine", "train", "--preset", preset, "--run-dir", str(run), "--no-stdin",
           "--set", "metrics.every=0", "--set", "training.sample_every=0",
           "--set", f"training.checkpoint_every={every}", "--set", "training.keep_checkpoints=0"]
    if steps:
        cmd += ["--steps", str(steps)]
    if parent is not None:
        cmd += ["--parent", str(parent)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    at, params, elapsed = {}, None, None
    for line in proc.stdout:
        ev = json.loads(line) if line.startswith("{") else {}
        if ev.get("event") == "checkpoint":
            at[int(ev["step"])] = round(time.perf_counter() - t0, 1)
        elif ev.get("event") == "started":
            params = ev.get("params")
        elif ev.get("event") == "metrics":
            elapsed = ev.get("elapsed_s")
    err = proc.stderr.read()
    proc.wait()
    if proc.returncode != 0:
        raise SystemExit(f"{preset}: training failed ({proc.returncode}): {err.strip().splitlines()[-1:]}")
    print(f"{preset}: {max(at)} steps in {time.perf_counter() - t0:.0f} s", flush=True)
    timing = {"checkpoint_wall_s": at, "params": params, "total_wall_s": round(time.perf_counter() - t0, 1),
              "engine_elapsed_s": elapsed, "load_average_after": round(os.getloadavg()[0], 2)}
    (run / "timing.json").write_text(json.dumps(timing))
    return timing


def trained(preset: str, run: Path, every: int, steps: int | None, parent: Path | None = None) -> dict:
    """The timing of a finished run of this preset in `run` (a rerun reads it back), else train it."""
    done = run / "timing.json"
    if done.is_file() and json.loads((run / "status.json").read_text()).get("state") == "finished":
        timing = json.loads(done.read_text())
        timing["checkpoint_wall_s"] = {int(k): v for k, v in timing["checkpoint_wall_s"].items()}
        print(f"{preset}: read back from {run}", flush=True)
        return timing
    return train(preset, run, every, steps, parent)


def checkpoints(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob("step_*.safetensors"))


def step_of(ckpt: Path) -> int:
    return int(ckpt.stem.split("_")[1])


def to_tiles(images) -> np.ndarray:
    """Images in [-1, 1] (N, 1, 16, 16) -> the classifier's rows in [0, 1]."""
    return ((images.float().clamp(-1, 1) + 1) / 2).reshape(images.shape[0], -1).numpy().astype(np.float64)


def heldout_digits(preset: str):
    """The run's own held-out split (the training loop's split, same fraction and seed)."""
    from engine.core.config import load_preset
    from engine.data import build_dataset
    cfg = load_preset(preset)
    _, held = build_dataset(cfg.data).split(cfg.data.holdout, cfg.data.seed)
    return held.images.float() / 127.5 - 1.0, held.labels.numpy()


def codebook_health(fam, images) -> dict:
    """Share of the codebook used on these images, and the perplexity of their code histogram."""
    import torch
    flat = fam.flatten_tokens(fam.encode_tokens(images)).reshape(-1)
    counts = torch.bincount(flat, minlength=fam.num_codes).double()
    p = counts[counts > 0] / counts.sum()
    return {"codes": fam.num_codes, "codes_used": int((counts > 0).sum()),
            "usage": round(float((counts > 0).double().mean()), 3),
            "perplexity": round(math.exp(float(-(p * p.log()).sum())), 1)}


def read_tokenizer(preset: str, run: Path, timing: dict, clf, threshold: float) -> dict:
    from engine.training.checkpoint import family_from_checkpoint
    images, labels = heldout_digits(preset)
    rows = []
    for ckpt in checkpoints(run):
        fam, _ = family_from_checkpoint(ckpt, "cpu")
        recon = fam.reconstruct(images)
        rows.append({"step": step_of(ckpt), "wall_s": timing["checkpoint_wall_s"].get(step_of(ckpt)),
                     "reconstructions_read": round(float((clf.predict(to_tiles(recon)) == labels).mean()), 3),
                     "mse": round(float((recon - images).pow(2).mean()), 5), **codebook_health(fam, images)})
        print(f"  {preset} step {rows[-1]['step']}: {rows[-1]}", flush=True)
    first = next((r for r in rows if r["reconstructions_read"] >= threshold), None)
    return {"preset": preset, "heldout_images": len(labels), **timing, "first_recognisable": first,
            "checkpoints": rows}


def read_prior(preset: str, run: Path, timing: dict, clf, threshold: float, eval_n: int) -> dict:
    from engine.training.checkpoint import family_from_checkpoint
    rows = []
    for ckpt in checkpoints(run):
        fam, _ = family_from_checkpoint(ckpt, "cpu")
        labels = fam.labels_for(100)
        x = fam.sample(100, seed=0, labels=labels)
        asked = np.asarray(labels) if labels is not None else None
        read = clf.predict(to_tiles(x))
        rows.append({"step": step_of(ckpt), "wall_s": timing["checkpoint_wall_s"].get(step_of(ckpt)),
                     "samples_agree": round(float((read == asked).mean()), 3) if asked is not None else None})
        print(f"  {preset} step {rows[-1]['step']}: {rows[-1]}", flush=True)
    first = next((r for r in rows if (r["samples_agree"] or 0) >= threshold), None)
    last = checkpoints(run)[-1]
    ev = subprocess.run([sys.executable, "-m", "engine", "eval", "--checkpoint", str(last), "--metrics", "fid,pr",
                         "--n", str(eval_n)], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=3600)
    res = [json.loads(l) for l in ev.stdout.splitlines() if '"result"' in l]
    if ev.returncode != 0 or not res:
        raise SystemExit(f"{preset}: eval failed: {ev.stderr.strip().splitlines()[-1:]}")
    scores = res[-1]
    quality = {k: round(float(v), 4) for k, v in scores.items() if k.split("_")[0] in ("fd", "fid", "precision", "recall")}
    quality["features"] = scores.get("extractor")
    if not any(k.startswith(("fd", "fid")) for k in quality):
        raise SystemExit(f"{preset}: eval gave no FD: {scores}")
    return {"preset": preset, **timing, "first_recognisable": first, "checkpoints": rows,
            "last_checkpoint_quality": quality, "eval_images": eval_n,
            "sampling_images_per_s": sampling_speed(preset, last)}


def sampling_speed(preset: str, ckpt: Path, n: int = 256, repeats: int = 3) -> dict:
    """Images/s in this process, the model loaded, one batch of n (best of `repeats` after a warm-up)."""
    import torch
    from token_priors_sampling import images_per_s
    from engine.training.checkpoint import family_from_checkpoint
    torch.set_num_threads(os.cpu_count() or 1)
    fam, _ = family_from_checkpoint(ckpt, "cpu")
    labels = fam.labels_for(n)
    with torch.no_grad():
        if preset.startswith("maskgit"):
            return {f"K={k}": round(images_per_s(lambda: fam.sample(n, seed=0, labels=labels, steps=k,
                                                                     guidance_scale=1.0), n, repeats), 1)
                    for k in (4, 8, 16)}
        return {"preset options": round(images_per_s(lambda: fam.sample(n, seed=0, labels=labels), n, repeats), 1),
                "network passes per image": fam.network_evaluations()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--every", type=int, default=100, help="checkpoint every this many steps")
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--steps", type=int, default=None, help="train each preset this many steps (default: its own)")
    p.add_argument("--eval-n", type=int, default=500)
    p.add_argument("--tokenizers", default=",".join(TOKENIZERS))
    p.add_argument("--priors", default=",".join(PRIORS))
    p.add_argument("--folder", default=None, help="runs go here; a preset already run to its end here is read back")
    a = p.parse_args()
    clf, real_acc, _ = digit_classifier()
    folder = Path(a.folder) if a.folder else Path(tempfile.mkdtemp(prefix="genlab-tokens-"))
    print(f"runs in {folder}", flush=True)
    tokenizers, priors = {}, []
    for name in filter(None, a.tokenizers.split(",")):
        load = os.getloadavg()[0]
        timing = trained(name, folder / name, a.every, a.steps)
        tokenizers[name] = {"load_average_before": round(load, 2),
                            **read_tokenizer(name, folder / name, timing, clf, a.threshold)}
    for name in filter(None, a.priors.split(",")):
        parent_preset = PRIORS[name]
        if parent_preset not in tokenizers:
            raise SystemExit(f"{name} needs its tokenizer {parent_preset} in --tokenizers")
        parent = checkpoints(folder / parent_preset)[-1]
        load = os.getloadavg()[0]
        timing = trained(name, folder / name, a.every, a.steps, parent)
        priors.append({"load_average_before": round(load, 2), "tokenizer": parent_preset,
                       **read_prior(name, folder / name, timing, clf, a.threshold, a.eval_n)})
    write_result("token_families", {"threshold": a.threshold, "real_heldout_digits_read": round(real_acc, 3),
                                    "runs": str(folder), "tokenizers": list(tokenizers.values()), "priors": priors})


if __name__ == "__main__":
    main()
