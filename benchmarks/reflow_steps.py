"""Reflow's promise, measured: a flow_matching parent and its reflow child sampled with 1, 2 and 4
Euler steps, each scored by FD on GenLab's domain features (engine/metrics/domain.py: a small
network trained on the dataset itself) against the real images. Straighter paths should keep the
child's FD low at few steps where the parent's grows.

    python benchmarks/reflow_steps.py --parent RUN_OR_CKPT --child RUN_OR_CKPT [--samples 500]

The runs come from `genlab-engine train --preset fm-digits` and `--preset fm-reflow-digits --parent
<that run>`. `fd_by_steps` is what tests/engine/test_reflow.py runs on tiny checkpoints."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import write_result  # noqa: E402

STEPS = (1, 2, 4)


def fd_by_steps(checkpoints: dict[str, str | Path], *, steps=STEPS, samples: int = 500, device: str = "cpu",
                domain_steps: int = 300, cache: Path | None = None) -> dict[str, dict[int, float]]:
    """{name: {steps: FD-domain}} of each checkpoint's EMA samples drawn with the Euler step at each
    step count (the same seeds and cycled classes for every model), against the data of the first
    checkpoint's run."""
    import torch

    from engine.data import build_dataset
    from engine.metrics import domain
    from engine.metrics.stats import feature_stats, frechet_distance
    from engine.training import checkpoint as ck
    from engine.training.parent import resolve_parent

    models = {name: ck.family_from_checkpoint(resolve_parent(path), device)[0] for name, path in checkpoints.items()}
    first = next(iter(models.values()))
    data = build_dataset(first.cfg.data)
    net, _, _ = domain.load_or_train(data.images, data.labels, len(data.class_names), steps=domain_steps,
                                     device=device, cache=cache)

    @torch.no_grad()
    def features(x: torch.Tensor):
        return torch.cat([net(x[i:i + 250].to(device).float())[0].double().cpu() for i in range(0, len(x), 250)]).numpy()

    idx = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(0))[:samples]
    mu_r, sigma_r = feature_stats(features(data.images[idx].float().div(127.5).sub(1.0)))
    out: dict[str, dict[int, float]] = {}
    for name, fam in models.items():
        out[name] = {}
        for k in steps:
            x = fam.sample(samples, seed=0, labels=fam.labels_for(samples), steps=k, sampler="euler")
            out[name][k] = float(frechet_distance(*feature_stats(features(x)), mu_r, sigma_r))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parent", required=True, help="the flow_matching run (or checkpoint)")
    ap.add_argument("--child", required=True, help="its reflow run (or checkpoint)")
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    scores = fd_by_steps({"parent": a.parent, "child": a.child}, samples=a.samples, device=a.device)
    write_result("reflow_steps", {"samples": a.samples, "fd_domain_by_euler_steps": scores})


if __name__ == "__main__":
    main()
