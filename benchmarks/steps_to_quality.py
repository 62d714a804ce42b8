"""Steps to quality, side by side with the recipe a user would pick instead (issue 24, "Quality per
CPU second"): FD-domain against training steps for diffusers' own unconditional recipe and GenLab's
diffusion and flow presets, at equal parameters, batch 64, on the built-in digits (unconditional).

diffusers' recipe is its examples/unconditional_image_generation/train_unconditional.py, written out:
UNet2DModel (common.diffusers_unet: the same graph and parameter count as ddpm-digits' UNet, without
the class embedding), DDPMScheduler with 1000 linear betas, ε-prediction MSE, AdamW at 1e-4 with the
example's betas (0.95, 0.999), weight decay 1e-6 and eps 1e-8, the cosine LR schedule with 500
warm-up steps (diffusers.optimization.get_scheduler), EMAModel 0.9999 with its warm-up (inv_gamma 1,
power 3/4); it samples with DDIMScheduler from the same config, 50 steps, on the EMA weights.

GenLab's recipes are its presets, made unconditional with batch 64 and trained by the engine's own
training loop (checkpoints at the measured steps, kept), each sampled with EMA weights:
    ddpm        ddpm-digits (ε, uniform weighting), DDIM-50
    ddpm-v      ddpm-digits with prediction v, DDIM-50
    ddpm-minsnr ddpm-digits with min-SNR-γ weighting, DDIM-50
    edm         edm-digits, its own solver (Heun) at the step count nearest 50 evaluations
    fm          fm-digits, its own solver (Euler) at 50 evaluations
    dit         dit-digits (the DiT backbone, as the preset sizes it: 1.27 M parameters against the
                UNet's 1.11 M), DDIM-50
Every checkpoint's --samples images are scored with the evaluator `genlab-engine eval --real --fake`
uses (engine.metrics.evaluate.Evaluator: the Fréchet distance in GenLab's domain features, as
"fd_domain", or FID where an Inception weight file is configured) against all the real digits.

Prints a table, writes results/steps_to_quality.json and results/steps_to_quality.png (FD against
step, one line per recipe). The full run trains for a long time on a CPU; smoke-test it with e.g.
    python benchmarks/steps_to_quality.py --steps 20 --samples 50 --recipes ddpm,diffusers

    python benchmarks/steps_to_quality.py [--recipes diffusers,ddpm,ddpm-v,ddpm-minsnr,edm,fm,dit]
                                          [--steps 250,500,1000,2000] [--samples 500] [--device cpu]
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from functools import reduce
from pathlib import Path

from common import RESULTS, diffusers_unet, write_result

import torch

BATCH = 64
NFE = 50   # the network evaluations each checkpoint is sampled with
# name -> (preset, [model] overlay, sampler: "ddim" or None for the preset's own)
GENLAB = {
    "ddpm": ("ddpm-digits", {}, "ddim"),
    "ddpm-v": ("ddpm-digits", {"prediction": "v"}, "ddim"),
    "ddpm-minsnr": ("ddpm-digits", {"loss_weighting": "min_snr"}, "ddim"),
    "edm": ("edm-digits", {}, None),
    "fm": ("fm-digits", {}, None),
    "dit": ("dit-digits", {}, "ddim"),
}
RECIPES = ("diffusers",) + tuple(GENLAB)


def step_list(text: str) -> list[int]:
    steps = sorted({int(s) for s in text.split(",") if s.strip()})
    if not steps or steps[0] < 1:
        raise argparse.ArgumentTypeError(f"--steps {text!r}: expected positive step counts, e.g. 250,500,1000")
    return steps


def recipe_list(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"--recipes: unknown {', '.join(unknown) or '(none)'}; "
                                         f"known: {', '.join(RECIPES)}")
    return names


def train_split():
    """The digits the presets train on (their data section's holdout split) and every real digit."""
    from engine.core.config import load_preset
    from engine.data import build_dataset
    data_cfg = load_preset("ddpm-digits").data
    real = build_dataset(data_cfg)
    train, _ = real.split(data_cfg.holdout, data_cfg.seed)
    return train, real


def nearest_steps(fam, sampler: str | None) -> tuple[str, int, int]:
    """(sampler, steps, NFE): the family's solver (or `sampler`) at the step count whose network
    evaluations are nearest NFE."""
    name = sampler or fam.sample_options().sampler
    best = min(range(1, 2 * NFE + 1), key=lambda k: (abs(fam.network_evaluations(
        fam.sample_options(sampler=name, steps=k)) - NFE), k))
    return name, best, fam.network_evaluations(fam.sample_options(sampler=name, steps=best))


# ---- GenLab ------------------------------------------------------------------------------------
def genlab_curve(name: str, steps: list[int], n: int, device: str, score) -> dict:
    from engine.core.config import load_preset
    from engine.runs.rundir import RunDir
    from engine.training import checkpoint as ck
    from engine.training.loop import train
    preset, overlay, sampler = GENLAB[name]
    every = reduce(math.gcd, steps)
    cfg = load_preset(preset).replace(
        model={"class_conditional": False, **overlay},
        training={"steps": steps[-1], "batch_size": BATCH, "checkpoint_every": every, "keep_checkpoints": 0,
                  "sample_every": 0, "device": device},
        metrics={"every": 0})
    run = Path(tempfile.mkdtemp(prefix=f"genlab-stq-{name}-")) / "run"
    t0 = time.perf_counter()
    res = train(cfg, run, emit=lambda e: None)
    train_s = time.perf_counter() - t0
    if res.state != "finished":
        raise SystemExit(f"{name}: training {res.state}: {res.message}")
    points, params, how = [], None, ""
    saved = dict(RunDir(run).checkpoints())
    for step in steps:
        fam, _ = ck.family_from_checkpoint(saved[step], device)
        params = sum(p.numel() for p in fam.networks.parameters())
        solver, k, nfe = nearest_steps(fam, sampler)
        how = f"{solver}-{k} ({nfe} NFE)"
        images = torch.cat([fam.sample(min(250, n - i), seed=10_000 + i, use_ema=True, sampler=solver, steps=k)
                            for i in range(0, n, 250)])
        points.append({"step": step, "fd": score(images)})
        print(f"  {name:12s} step {step:6d}  FD {points[-1]['fd']:8.3f}  ({how})", flush=True)
    return {"preset": preset, "overlay": overlay, "params": params, "sampling": how, "train_s": round(train_s, 1),
            "points": points}


# ---- diffusers ---------------------------------------------------------------------------------
def diffusers_curve(steps: list[int], n: int, device: str, score, train_images) -> dict:
    import diffusers
    import torch.nn.functional as F
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from engine.core.config import load_preset
    cfg = load_preset("ddpm-digits").replace(model={"class_conditional": False})
    torch.manual_seed(0)
    net = diffusers_unet(cfg, channels=1).to(device)
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8)
    lr = get_scheduler("cosine", optimizer=opt, num_warmup_steps=500, num_training_steps=steps[-1])
    ema = EMAModel(net.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=3 / 4,
                   model_cls=diffusers.UNet2DModel, model_config=net.config)
    ema.to(device)
    data = train_images.float().div(127.5).sub(1.0)
    g = torch.Generator().manual_seed(0)
    order, pos, points, train_s = torch.randperm(len(data), generator=g), 0, [], 0.0
    for step in range(1, steps[-1] + 1):
        t0 = time.perf_counter()
        if pos + BATCH > len(order):   # epochs of shuffled batches, the last partial one dropped
            order, pos = torch.randperm(len(data), generator=g), 0
        x0 = data[order[pos:pos + BATCH]].to(device)
        pos += BATCH
        noise = torch.randn(x0.shape, generator=g).to(device)
        t = torch.randint(0, sched.config.num_train_timesteps, (len(x0),), generator=g).to(device)
        loss = F.mse_loss(net(sched.add_noise(x0, noise, t), t).sample, noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)   # the example's accelerator.clip_grad_norm_
        opt.step()
        lr.step()
        opt.zero_grad()
        ema.step(net.parameters())
        train_s += time.perf_counter() - t0
        if step in steps:
            points.append({"step": step, "fd": score(diffusers_samples(net, ema, sched, n, device))})
            print(f"  {'diffusers':12s} step {step:6d}  FD {points[-1]['fd']:8.3f}  (DDIMScheduler-50)", flush=True)
    return {"recipe": "train_unconditional.py", "params": sum(p.numel() for p in net.parameters()),
            "sampling": f"DDIMScheduler-{NFE} ({NFE} NFE)", "train_s": round(train_s, 1), "points": points}


@torch.no_grad()
def diffusers_samples(net, ema, ddpm, n: int, device: str) -> torch.Tensor:
    """n images from the EMA weights with DDIMScheduler (the DDPM config's), 50 steps, as the
    example's DDPMPipeline would with a DDIM scheduler."""
    import diffusers
    ema.store(net.parameters())
    ema.copy_to(net.parameters())
    net.eval()
    try:
        ddim = diffusers.DDIMScheduler.from_config(ddpm.config)
        ddim.set_timesteps(NFE)
        out = []
        for i in range(0, n, 250):
            g = torch.Generator().manual_seed(10_000 + i)
            x = torch.randn((min(250, n - i), 1, 16, 16), generator=g).to(device)
            for t in ddim.timesteps:
                x = ddim.step(net(x, t).sample, t, x).prev_sample
            out.append(x.clamp(-1, 1).cpu())
        return torch.cat(out)
    finally:
        net.train()
        ema.restore(net.parameters())


# ---- the plot ----------------------------------------------------------------------------------
def render_png(curves: dict, metric: str) -> bytes:
    """FD against training step, one line per recipe, drawn with PIL (sweep_plot's colours)."""
    import io
    from PIL import Image, ImageDraw, ImageFont
    from engine.ops.sweep_plot import COLOURS, nice_ticks
    W, H, L, R, T, B = 720, 460, 70, 130, 40, 50
    img = Image.new("RGB", (W, H), "white")
    d, font = ImageDraw.Draw(img), ImageFont.load_default()
    pts = [p for c in curves.values() for p in c["points"] if math.isfinite(p["fd"])]
    steps = [p["step"] for p in pts] or [1]
    fds = [p["fd"] for p in pts] or [1.0]
    sx_lo, sx_hi = math.log2(min(steps)), math.log2(max(steps)) + (1e-9 if min(steps) == max(steps) else 0)
    ticks = nice_ticks(0.0, max(fds))
    x0, x1, y0, y1 = L, W - R, T, H - B
    X = lambda s: x0 + (math.log2(s) - sx_lo) / max(sx_hi - sx_lo, 1e-9) * (x1 - x0)  # noqa: E731
    Y = lambda v: y1 - v / ticks[-1] * (y1 - y0)  # noqa: E731
    d.rectangle([x0, y0, x1, y1], outline="black")
    for v in ticks:
        d.line([x0, Y(v), x1, Y(v)], fill=(230, 230, 230))
        d.text((x0 - 6 - d.textlength(f"{v:g}", font=font), Y(v) - 6), f"{v:g}", fill="black", font=font)
    for s in sorted(set(steps)):
        d.text((X(s) - d.textlength(str(s), font=font) / 2, y1 + 6), str(s), fill="black", font=font)
    label = "training steps (log scale)"
    d.text(((x0 + x1) / 2 - d.textlength(label, font=font) / 2, H - 20), label, fill="black", font=font)
    head = f"{metric} against training steps (batch {BATCH}, digits, unconditional; lower is better)"
    d.text(((x0 + x1) / 2 - d.textlength(head, font=font) / 2, 10), head, fill="black", font=font)
    for i, (name, c) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        xy = [(X(p["step"]), Y(p["fd"])) for p in c["points"] if math.isfinite(p["fd"])]
        if len(xy) > 1:
            d.line(xy, fill=colour, width=2)
        for x, y in xy:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        ly = y0 + 6 + 16 * i
        d.line([x1 + 8, ly + 6, x1 + 28, ly + 6], fill=colour, width=3)
        d.text((x1 + 34, ly), name, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", type=recipe_list, default=list(RECIPES), help=f"comma-separated: {', '.join(RECIPES)}")
    p.add_argument("--steps", type=step_list, default=[250, 500, 1000, 2000], help="checkpoints to score")
    p.add_argument("--samples", type=int, default=500, help="images generated per checkpoint")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    from engine.metrics.evaluate import Evaluator
    train, real = train_split()
    ev = Evaluator(real.images, real.labels, len(real.class_names), metrics=["fid"], device=a.device)
    metric = "fd_domain" if ev.domain else "fid"

    def score(images: torch.Tensor) -> float:
        return float(ev.score(images.float(), n_real=len(real.images))[metric])

    curves = {}
    for name in a.recipes:
        print(f"{name}: training {a.steps[-1]} steps", flush=True)
        curves[name] = (diffusers_curve(a.steps, a.samples, a.device, score, train.images) if name == "diffusers"
                        else genlab_curve(name, a.steps, a.samples, a.device, score))

    head = f"{'recipe':14s}{'params':>10s}  {'sampling':27s}" + "".join(f"{'step ' + str(s):>11s}" for s in a.steps)
    print(f"\n{metric} (lower is better), {a.samples} samples against {len(real.images)} real digits\n{head}")
    for name, c in curves.items():
        fds = {q["step"]: q["fd"] for q in c["points"]}
        print(f"{name:14s}{c['params']:>10,d}  {c['sampling']:27s}" + "".join(f"{fds[s]:11.3f}" for s in a.steps))
    path = write_result("steps_to_quality", {"metric": metric, "batch": BATCH, "samples": a.samples,
                                             "real_images": len(real.images), "steps": a.steps, "curves": curves})
    png = RESULTS / "steps_to_quality.png"
    png.write_bytes(render_png(curves, metric))
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    main()
