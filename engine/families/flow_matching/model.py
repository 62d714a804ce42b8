"""Flow matching (Lipman et al. 2023) / rectified flow (Liu et al. 2022) on a UNet: the network
regresses the velocity of the path in path.py at a random t, and sampling integrates the ODE from
noise at t = 1 to the data at t = 0 over FlowTimes with any registered solver (ddim is the Euler
step here). Class conditioning with label dropout gives classifier-free guidance; the latent space
is the noise at t = 1, which images reach by running the Euler ODE backwards.

With model.reflow (Liu et al. 2022) the run has a flow_matching parent: prepare_data draws its
(noise, sample) pairs once (reflow.py), the network starts from the parent's weights, and training
regresses z - x0 on the straight line between a pair's ends instead of a data batch; the
straightness of the parent and, every STRAIGHTNESS_EVERY steps, of the child is logged."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.diffusion.denoise import Denoiser
from engine.diffusion.family import DiffusionFamily
from engine.family.base import Batch, StepContext
from engine.family.parent import Parent
from engine.families.flow_matching import SPEC
from engine.families.flow_matching.path import flow_levels, interpolate, sample_times, velocity
from engine.families.flow_matching.reflow import cached_pairs, start_from_parent
from engine.families.flow_matching.straightness import straightness
from engine.inpainting.classical import classical_fill
from engine.nn.backbones import build_backbone

STRAIGHTNESS_EVERY = 50   # steps between the child's straightness readings
STRAIGHTNESS_PAIRS = 16   # noises of the estimate (the first pairs')
STRAIGHTNESS_STEPS = 8    # Euler steps of the estimate


class FlowMatchingFamily(DiffusionFamily):
    name = SPEC.name
    prediction = "flow"
    time_scale = 1000.0   # t in [0, 1] embedded like DDPM's timesteps 0..999
    latent_title = "x_1 (ODE noise)"
    inpaint_methods = SPEC.inpaint_methods
    hole_fill = staticmethod(classical_fill)
    parent_families = ("flow_matching",)
    parent_switch = "reflow"   # a reflow run has a parent, a plain run none

    def __init__(self, cfg, channels, resolution, class_names, *, parent: Parent | None = None):
        super().__init__(cfg, channels, resolution, class_names)
        m = cfg.model
        self.setup_labels(m.class_conditional)
        self.sigma_min = float(m.sigma_min)
        self.networks["unet"] = build_backbone(m, channels=channels, resolution=resolution,
                                               num_classes=self.num_classes, time_range=(0.0, self.time_scale))
        self.parent = parent
        if parent is not None and m.reflow_init == "parent":
            start_from_parent(self.networks, parent)   # a resumed run's checkpoint replaces these
        self.init_ema()
        self.pairs: dict[str, torch.Tensor] | None = None   # reflow: prepare_data's (noise, sample, labels)
        self.pairs_from_cache: bool | None = None
        self.parent_straightness: float | None = None

    def to(self, device):
        super().to(device)
        if self.parent is not None:
            self.parent.family.to(self.device)
        if self.pairs is not None:
            self.pairs = {k: v.to(self.device) for k, v in self.pairs.items()}
        return self

    # ---- reflow ----------------------------------------------------------------------------------
    def prepare_data(self, images, labels, *, cache_dir, data_config, hflip, say) -> None:
        """Reflow: the parent's pairs, drawn once (cached under the parent's hash and the options;
        a resumed run reads the file), and the parent's straightness on them."""
        if self.parent is None:
            return
        m = self.cfg.model
        pairs, cached, key = cached_pairs(self.parent, cache_dir, data_config, int(m.reflow_pairs),
                                          int(m.reflow_steps), say)
        self.pairs = {k: v.to(self.device) for k, v in pairs.items()}
        self.pairs_from_cache = cached
        self.parent_straightness = self.straightness_of(self.parent.family.nets(True)["unet"])
        say(f"{len(pairs['noise'])} reflow pairs {'read from' if cached else 'drawn into'} "
            f"{cache_dir}/{key}.safetensors; the parent's straightness is {self.parent_straightness:.4g}")

    def straightness_of(self, net) -> float:
        """Liu et al.'s straightness of a network's field (straightness.py) from the first pairs' noise,
        with their labels (guidance off: the field itself)."""
        z = self.pairs["noise"][:STRAIGHTNESS_PAIRS]
        lab = self._pair_labels(self.pairs["labels"][:STRAIGHTNESS_PAIRS])
        was = net.training
        net.eval()
        try:
            fn = self.network_fn(net, lab, 1.0)
            return straightness(fn, z, STRAIGHTNESS_STEPS)
        finally:
            net.train(was)

    def _pair_labels(self, labels: torch.Tensor) -> torch.Tensor | None:
        """The pairs' labels for this network: -1 (an unconditional parent's) is "no class"."""
        if not self.num_classes:
            return None
        return torch.where(labels < 0, torch.full_like(labels, self.num_classes), labels)

    def noise_levels(self):
        return flow_levels(self.sigma_min)

    def denoiser_for(self, fn) -> Denoiser:
        if self.sigma_min == 0:
            return Denoiser(fn, prediction="flow")
        # on the sigma_min path x0 = x_t - t·u exactly (path.py); Denoiser's "flow" assumes sigma_min 0
        return Denoiser(lambda x, t: x - t.view(-1, 1, 1, 1) * fn(x, t), prediction="x0")

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        m = self.cfg.model
        b, dev, g = batch.images.shape[0], batch.images.device, ctx.generator
        if self.pairs is not None:   # reflow: the parent's pairs, not the data
            idx = torch.randint(0, len(self.pairs["noise"]), (b,), generator=g, device=dev)
            x0, eps = self.pairs["sample"][idx], self.pairs["noise"][idx]
            class_labels = self.pairs["labels"][idx].clamp(min=0)
        else:
            x0, class_labels = batch.images, batch.labels
            eps = torch.randn(x0.shape, generator=g, device=dev)
        t = sample_times(b, kind=m.time_sampling, generator=g, device=dev, mean=m.logit_mean, std=m.logit_std)
        x_t = interpolate(x0, eps, t, self.sigma_min)
        labels = self.dropped_labels(class_labels, g, m.label_dropout)
        if labels is not None and self.pairs is not None:
            labels = torch.where(self.pairs["labels"][idx] < 0, self.num_classes, labels)
        with ctx.autocast():
            pred = self.networks["unet"](x_t, t * self.time_scale, labels)
        loss = F.mse_loss(pred.float(), velocity(x0, eps, self.sigma_min))
        ctx.optimize("unet", loss)
        out = {"loss/flow": loss}
        if self.pairs is not None and ctx.step % STRAIGHTNESS_EVERY == 0:
            out["reflow/straightness"] = torch.tensor(self.straightness_of(self.networks["unet"]))
            out["reflow/straightness_parent"] = torch.tensor(float(self.parent_straightness))
        return out
