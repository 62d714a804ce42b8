"""Training throughput (images/s) of the ddpm-digits UNet vs diffusers' UNet2DModel + DDPMScheduler
at the same parameter count, batch, resolution, optimizer and loss, in one run, interleaved.

    python benchmarks/train_throughput.py [--preset ddpm-digits] [--steps 40] [--rounds 3] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import time

from common import diffusers_unet, write_result

import torch
import torch.nn.functional as F


def ours(cfg, device):
    from engine.family.base import StepContext, Batch, build_family
    fam = build_family(cfg, 1 if cfg.data.dataset in ("digits", "faces") else 3, cfg.data.resolution,
                       [str(i) for i in range(10)]).to(device)
    opts = fam.make_optimizers()
    ctx = StepContext(device, torch.Generator(device=device).manual_seed(0), opts, grad_clip=cfg.training.grad_clip)

    def step(x, y):
        fam.training_step(Batch(x, y), ctx)
    return step, fam.num_parameters()


def theirs(cfg, device):
    from diffusers import DDPMScheduler
    m = cfg.model
    net = diffusers_unet(cfg).to(device)
    sched = DDPMScheduler(num_train_timesteps=m.timesteps, beta_schedule="squaredcos_cap_v2")
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.training.lr, weight_decay=0.0)
    g = torch.Generator(device=device).manual_seed(0)

    def step(x, y):
        t = torch.randint(0, m.timesteps, (x.shape[0],), generator=g, device=device)
        noise = torch.randn(x.shape, generator=g, device=device)
        xt = sched.add_noise(x, noise, t)
        drop = torch.rand(x.shape[0], generator=g, device=device) < m.label_dropout
        labels = torch.where(drop, torch.full_like(y, 10), y)
        loss = F.mse_loss(net(xt, t, class_labels=labels).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.training.grad_clip)
        opt.step()
    return step, sum(p.numel() for p in net.parameters())


def timed(step, x, y, steps, device):
    for _ in range(3):
        step(x, y)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * x.shape[0] / (time.perf_counter() - t0)


def main():
    from engine.core.config import load_preset
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="ddpm-digits")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    cfg = load_preset(a.preset)
    device = torch.device(a.device)
    torch.manual_seed(0)
    bs, res = cfg.training.batch_size, cfg.data.resolution
    x = torch.randn(bs, 1, res, res, device=device).clamp(-1, 1)
    y = torch.randint(0, 10, (bs,), device=device)
    s_ours, n_ours = ours(cfg, device)
    s_theirs, n_theirs = theirs(cfg, device)
    ro, rt = [], []
    for _ in range(a.rounds):  # interleaved, so drifts in machine load hit both alike
        ro.append(timed(s_ours, x, y, a.steps, device))
        rt.append(timed(s_theirs, x, y, a.steps, device))
    o, t = statistics.median(ro), statistics.median(rt)
    write_result(f"train_throughput_{device.type}", {
        "preset": a.preset, "batch": bs, "resolution": res, "steps_per_round": a.steps, "rounds": a.rounds,
        "genlab": {"params": n_ours, "img_per_s": round(o, 1), "rounds": [round(v, 1) for v in ro]},
        "diffusers_UNet2DModel": {"params": n_theirs, "img_per_s": round(t, 1), "rounds": [round(v, 1) for v in rt]},
        "ratio_genlab_over_diffusers": round(o / t, 3)})


if __name__ == "__main__":
    main()
