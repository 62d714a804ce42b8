"""Sampling images/s of the ddpm-digits sampler against diffusers' scheduler loops, in one run,
interleaved: DDIM-50 against DDIMScheduler and DPM-Solver++(2M)-20 against
DPMSolverMultistepScheduler, on a UNet2DModel built to the same graph and parameter count
(common.diffusers_unet), the same batch and device, both under torch.inference_mode.

GenLab's side is the engine's own path: the family built from the preset (or loaded from
--checkpoint), sampled through Family.sample with the solver, steps and guidance given as sampling
options (EMA weights, per-seed starting noise, the solver's x̂0 clipping, the output clamped and
moved to the CPU). diffusers' side is the loop its docs show: scheduler.set_timesteps(n), then
model(x, t).sample -> scheduler.step(...).prev_sample, with the same cosine schedule
("squaredcos_cap_v2") and the same timestep spacing.

The preset is class-conditional, so both sides are measured twice: conditional at guidance scale 1
(one network pass per step, batch B) and with classifier-free guidance at the preset's scale (one
batched pass of 2B per step: the conditional and the null-label halves, combined as
u + s·(c - u)) — like for like.

    python benchmarks/diffusers_sampling.py [--preset ddpm-digits] [--checkpoint PATH] [--batch 50]
                                            [--rounds 3] [--threads N] [--device cpu] [--no-cfg]
"""
from __future__ import annotations

import argparse
import statistics
import time

from common import diffusers_unet, write_result

import torch

# (name, GenLab sampler, diffusers scheduler class, steps)
SOLVERS = (("DDIM-50", "ddim", "DDIMScheduler", 50),
           ("DPM-Solver++(2M)-20", "dpmpp_2m", "DPMSolverMultistepScheduler", 20))


def genlab_sampler(fam, batch: int, sampler: str, steps: int, guidance: float):
    """One call: `batch` images through the family's sampling API (labels cycling over the classes)."""
    labels = fam.labels_for(batch)

    def run(n_steps: int = steps):
        return fam.sample(batch, seed=0, labels=labels, use_ema=True, sampler=sampler, steps=n_steps,
                          guidance_scale=guidance)
    return run


def diffusers_sampler(net, cfg, scheduler_name: str, batch: int, steps: int, guidance: float, device):
    """One call: `batch` images from diffusers' scheduler loop, with the same labels and guidance."""
    import diffusers
    m, s = cfg.model, cfg.sampling
    kwargs = dict(num_train_timesteps=m.timesteps, beta_schedule="squaredcos_cap_v2", timestep_spacing=s.spacing)
    if scheduler_name == "DDIMScheduler":
        kwargs["clip_sample"] = True   # GenLab's solvers clip x̂0 to [-1, 1] too
    sched = getattr(diffusers, scheduler_name)(**kwargs)
    shape = (batch, 1, cfg.data.resolution, cfg.data.resolution)
    labels = torch.arange(batch, device=device) % 10
    null = torch.full_like(labels, 10)
    both = torch.cat([labels, null])

    def run(n_steps: int = steps):
        g = torch.Generator(device=device).manual_seed(0)
        sched.set_timesteps(n_steps, device=device)
        x = torch.randn(shape, generator=g, device=device) * sched.init_noise_sigma
        for t in sched.timesteps:
            xin = sched.scale_model_input(x, t)
            if guidance == 1.0:
                eps = net(xin, t, class_labels=labels).sample
            else:   # one batched pass for the conditional and unconditional predictions
                c, u = net(torch.cat([xin, xin]), t, class_labels=both).sample.chunk(2)
                eps = u + guidance * (c - u)
            x = sched.step(eps, t, x).prev_sample
        return x.clamp(-1, 1).cpu()
    sched.set_timesteps(steps, device=device)
    return run, len(sched.timesteps)


def timed(run, device, *steps: int) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of one call. On a CPU shared with other jobs the
    CPU seconds are the steadier measure (with one torch thread nothing spins): the wall clock also
    counts the time the scheduler gave to the other jobs."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        run(*steps)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0


def main():
    from engine.core.config import load_preset
    from engine.family.base import build_family
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="ddpm-digits")
    p.add_argument("--checkpoint", help="a ddpm checkpoint to sample instead of the preset's fresh model")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0: torch's default); 1 on a shared, loaded machine, where two "
                        "OpenMP threads spin against other jobs")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-cfg", action="store_true", help="skip the classifier-free guidance rows")
    a = p.parse_args()
    device = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.checkpoint:
        from engine.training.checkpoint import family_from_checkpoint
        fam, ckpt = family_from_checkpoint(a.checkpoint, a.device)
        cfg = ckpt.config
    else:
        cfg = load_preset(a.preset)
        fam = build_family(cfg, 1, cfg.data.resolution, [str(i) for i in range(10)]).to(device)
    if cfg.model.family != "ddpm":
        raise SystemExit(f"{a.checkpoint or a.preset}: a {cfg.model.family} model; this compares DDPM samplers")
    net = diffusers_unet(cfg).to(device).eval()
    n_theirs = sum(q.numel() for q in net.parameters())

    guidances = [1.0] + ([float(cfg.sampling.guidance_scale)]
                         if fam.is_conditional and not a.no_cfg and cfg.sampling.guidance_scale != 1.0 else [])
    cases = []
    for name, sampler, sched_name, steps in SOLVERS:
        for gs in guidances:
            ours = genlab_sampler(fam, a.batch, sampler, steps, gs)
            theirs, their_nfe = diffusers_sampler(net, cfg, sched_name, a.batch, steps, gs, device)
            nfe = fam.network_evaluations(fam.sample_options(sampler=sampler, steps=steps, guidance_scale=gs))
            cases.append({"solver": name, "guidance_scale": gs, "ours": ours, "theirs": theirs,
                          "nfe_genlab": nfe, "calls_diffusers": their_nfe, "t_ours": [], "t_theirs": []})
    for c in cases:   # warm-up: a short call each (oneDNN primitive caches, lazy scheduler state)
        timed(c["ours"], device, 3)
        timed(c["theirs"], device, 3)
    for r in range(a.rounds):   # interleaved, the order swapped every round, so load drifts hit both alike
        for c in cases:
            pair = (("t_ours", c["ours"]), ("t_theirs", c["theirs"]))
            for key, run in (pair if r % 2 == 0 else pair[::-1]):
                c[key].append(timed(run, device))
        print(f"round {r + 1}/{a.rounds} done", flush=True)

    rows = []
    print(f"\n{'solver':22} {'guidance':>8} {'GenLab img/s':>12} {'diffusers img/s':>15} {'ratio':>6} "
          f"{'img/CPU-s':>10} {'diffusers':>10} {'ratio':>6}")
    for c in cases:
        row = {"solver": c["solver"], "guidance_scale": c["guidance_scale"],
               "network_evaluations_per_image_genlab": c["nfe_genlab"],
               "scheduler_steps_diffusers": c["calls_diffusers"]}
        for k, clock in ((0, "wall"), (1, "cpu")):
            ours, theirs = [v[k] for v in c["t_ours"]], [v[k] for v in c["t_theirs"]]
            o, t = a.batch / statistics.median(ours), a.batch / statistics.median(theirs)
            row[clock] = {"genlab_img_per_s": round(o, 2), "diffusers_img_per_s": round(t, 2),
                          "ratio_genlab_over_diffusers": round(o / t, 3),
                          "ratio_per_round": [round(b / a_, 3) for a_, b in zip(ours, theirs)],   # time ratio = speed ratio
                          "genlab_s": [round(v, 3) for v in ours], "diffusers_s": [round(v, 3) for v in theirs]}
        rows.append(row)
        w, cp = row["wall"], row["cpu"]
        print(f"{c['solver']:22} {c['guidance_scale']:8.1f} {w['genlab_img_per_s']:12.2f} {w['diffusers_img_per_s']:15.2f} "
              f"{w['ratio_genlab_over_diffusers']:6.3f} {cp['genlab_img_per_s']:10.2f} {cp['diffusers_img_per_s']:10.2f} "
              f"{cp['ratio_genlab_over_diffusers']:6.3f}  rounds wall {w['ratio_per_round']} cpu {cp['ratio_per_round']}")
    write_result(f"diffusers_sampling_{device.type}", {
        "preset": a.preset, "checkpoint": a.checkpoint, "batch": a.batch, "resolution": cfg.data.resolution,
        "rounds": a.rounds, "threads": torch.get_num_threads(), "spacing": cfg.sampling.spacing, "params_genlab": fam.num_parameters(),
        "params_diffusers": n_theirs, "rows": rows})


if __name__ == "__main__":
    main()
