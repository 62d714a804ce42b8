"""The hierarchical VAE's parts (VDVAE-lite, after Child 2021, "Very Deep VAEs"): a bottleneck residual
block, a bottom-up encoder that keeps its activations at every resolution, and a top-down decoder
whose blocks each hold one latent group: a prior p(z | above) and a posterior q(z | x, above), both
diagonal Gaussians, with z projected into the residual stream.

Stability at depth comes from the initialisation: the last layer of every residual branch (and the
projection of z) is scaled by sqrt(1 / blocks), and each prior's last layer starts at zero, so at
step 0 every prior is N(0, 1) and the stream is close to its input."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)
LOGSTD_MIN, LOGSTD_MAX = -15.0, 10.0   # only a guard against overflow of exp(); never reached in practice


def conv(in_ch: int, out_ch: int, k: int) -> nn.Conv2d:
    """A k x k convolution keeping the size, default weights and a zero bias (as in VDVAE)."""
    c = nn.Conv2d(in_ch, out_ch, k, padding=k // 2)
    nn.init.zeros_(c.bias)
    return c


class Block(nn.Module):
    """GELU -> 1x1 -> GELU -> 3x3 -> GELU -> 3x3 -> GELU -> 1x1, the 3x3s becoming 1x1s on maps of
    2x2 or less; added to the input when `residual`. The last layer's weights are multiplied by
    `out_scale` after the default init (0 = a branch that starts switched off)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, *, residual: bool, size: int, out_scale: float = 1.0):
        super().__init__()
        k = 3 if size > 2 else 1
        self.residual = residual
        self.c1, self.c2, self.c3 = conv(in_ch, mid_ch, 1), conv(mid_ch, mid_ch, k), conv(mid_ch, mid_ch, k)
        self.c4 = conv(mid_ch, out_ch, 1)
        with torch.no_grad():
            self.c4.weight.mul_(out_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c4(F.gelu(self.c3(F.gelu(self.c2(F.gelu(self.c1(F.gelu(x))))))))
        return x + h if self.residual else h


def mid_width(width: int, bottleneck: float) -> int:
    return max(1, int(round(width * bottleneck)))


class Encoder(nn.Module):
    """x (B, C, H, W) -> {size: activation (B, width, size, size)} at every resolution of the hierarchy:
    a 3x3 stem, then per resolution (image size first) its residual blocks, then average pooling down
    to the next size."""

    def __init__(self, in_ch: int, width: int, bottleneck: float, sizes: list[int], blocks: list[int]):
        """sizes and blocks from the top (smallest) down, as in the config."""
        super().__init__()
        self.sizes = list(sizes)
        total = sum(blocks)
        self.stem = conv(in_ch, width, 3)
        mid = mid_width(width, bottleneck)
        self.levels = nn.ModuleList(
            nn.Sequential(*[Block(width, mid, width, residual=True, size=s, out_scale=math.sqrt(1 / total))
                            for _ in range(n)]) for s, n in zip(sizes, blocks))

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        h = self.stem(x)
        acts = {}
        for i in reversed(range(len(self.sizes))):          # image size first
            s = self.sizes[i]
            if h.shape[-1] != s:
                r = h.shape[-1] // s                         # the sizes divide (halvings, or 4x4 -> 1x1)
                h = F.avg_pool2d(h, kernel_size=r, stride=r)
            h = self.levels[i](h)
            acts[s] = h
        return acts


def gaussian_kl(mu_q, logstd_q, mu_p, logstd_p) -> torch.Tensor:
    """KL(N(mu_q, e^logstd_q) || N(mu_p, e^logstd_p)) elementwise, in closed form (nats)."""
    return logstd_p - logstd_q - 0.5 + 0.5 * (torch.exp(2 * logstd_q) + (mu_q - mu_p) ** 2) * torch.exp(-2 * logstd_p)


def gaussian_log_prob(z, mu, logstd) -> torch.Tensor:
    """log N(z; mu, e^logstd) elementwise (nats)."""
    return -0.5 * LOG_2PI - logstd - 0.5 * ((z - mu) * torch.exp(-logstd)) ** 2


class GroupStats:
    """What one latent group did in a top-down pass: its KL (B,) nats in closed form, its
    log p(z) - log q(z|x) (B,) for the importance weights, or z standardised by its prior,
    (z - prior mean) / prior std (B, zdim, s, s); None for what was not asked."""

    def __init__(self, kl=None, log_ratio=None, standardised=None):
        self.kl, self.log_ratio, self.standardised = kl, log_ratio, standardised


class DecoderBlock(nn.Module):
    """One latent group: from the stream x, the prior's (mean, log std) and a correction to x
    (a residual block whose last layer starts at zero); with the encoder's activation, the posterior's;
    z from the posterior (training, the bound) or the prior (sampling), projected by a 1x1 conv and
    added to x; then a residual block."""

    def __init__(self, width: int, bottleneck: float, zdim: int, size: int, total_groups: int):
        super().__init__()
        mid = mid_width(width, bottleneck)
        scale = math.sqrt(1 / total_groups)
        self.zdim, self.size = zdim, size
        self.posterior = Block(2 * width, mid, 2 * zdim, residual=False, size=size)
        self.prior = Block(width, mid, 2 * zdim + width, residual=False, size=size, out_scale=0.0)
        self.z_proj = conv(zdim, width, 1)
        with torch.no_grad():
            self.z_proj.weight.mul_(scale)
        self.resnet = Block(width, mid, width, residual=True, size=size, out_scale=scale)

    def prior_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.prior(x)
        pm, plogstd, dx = f[:, :self.zdim], f[:, self.zdim:2 * self.zdim], f[:, 2 * self.zdim:]
        return pm, plogstd.clamp(LOGSTD_MIN, LOGSTD_MAX), dx

    def posterior_params(self, x: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        qm, qlogstd = self.posterior(torch.cat([x, act], dim=1)).chunk(2, dim=1)
        return qm, qlogstd.clamp(LOGSTD_MIN, LOGSTD_MAX)

    def forward(self, x: torch.Tensor, act: torch.Tensor | None, eps: torch.Tensor | None, temperature: float = 1.0,
                stats: str = "") -> tuple[torch.Tensor, GroupStats]:
        """x: the stream (B, width, s, s); act: the encoder's activation at this size, or None to
        sample from the prior; eps: standard-normal noise (B, zdim, s, s), or None for the mean.
        Prior sampling draws z = mean + temperature * std * eps. stats: "kl" (closed form) or
        "log_ratio" (log p(z) - log q(z|x) of the drawn z), with act only; "standardised": z's
        (z - prior mean) / prior std."""
        pm, plogstd, dx = self.prior_params(x)
        st = GroupStats()
        if act is not None:
            qm, qlogstd = self.posterior_params(x, act)
            z = qm if eps is None else qm + torch.exp(qlogstd) * eps
            if stats == "kl":
                st.kl = gaussian_kl(qm, qlogstd, pm, plogstd).flatten(1).sum(1)
            elif stats == "log_ratio":
                st.log_ratio = (gaussian_log_prob(z, pm, plogstd) - gaussian_log_prob(z, qm, qlogstd)).flatten(1).sum(1)
        else:
            z = pm if (eps is None or temperature == 0) else pm + torch.exp(plogstd) * (eps * temperature)
        if stats == "standardised":
            st.standardised = (z - pm) * torch.exp(-plogstd)
        x = x + dx
        x = x + self.z_proj(z)
        return self.resnet(x), st


class TopDownDecoder(nn.Module):
    """The generative path: at each resolution (top first) the stream starts from a learned bias
    (plus a class embedding, for a conditional model) plus the previous resolution's stream
    up-sampled by nearest neighbour; then that resolution's latent groups; at the image size a
    gain and bias and a 1x1 conv give the pixel distribution's parameters."""

    def __init__(self, out_ch: int, width: int, bottleneck: float, zdim: int, sizes: list[int], groups: list[int],
                 num_classes: int = 0):
        super().__init__()
        self.sizes, self.zdim, self.width = list(sizes), zdim, width
        total = sum(groups)
        self.group_sizes = [s for s, n in zip(sizes, groups) for _ in range(n)]
        self.blocks = nn.ModuleList(DecoderBlock(width, bottleneck, zdim, s, total) for s in self.group_sizes)
        self.bias = nn.ParameterList(nn.Parameter(torch.zeros(1, width, s, s)) for s in sizes)
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, width * len(sizes)) if num_classes else None
        self.gain = nn.Parameter(torch.ones(1, width, 1, 1))
        self.shift = nn.Parameter(torch.zeros(1, width, 1, 1))
        self.out = conv(width, out_ch, 1)

    @property
    def num_groups(self) -> int:
        return len(self.blocks)

    def group_shape(self, g: int) -> tuple[int, int, int]:
        s = self.group_sizes[g]
        return self.zdim, s, s

    def group_dims(self) -> list[int]:
        return [self.zdim * s * s for s in self.group_sizes]

    def level_start(self, level: int, n: int, labels: torch.Tensor | None, below: torch.Tensor | None,
                    ref: torch.Tensor) -> torch.Tensor:
        s = self.sizes[level]
        x = self.bias[level].to(ref.dtype).expand(n, -1, -1, -1)
        if self.embed is not None and labels is not None:
            e = self.embed(labels).to(ref.dtype).view(n, len(self.sizes), self.width)[:, level]
            x = x + e[:, :, None, None]
        if below is not None:
            x = x + F.interpolate(below, size=(s, s), mode="nearest")
        return x

    def forward(self, n: int, labels: torch.Tensor | None = None, acts: dict[int, torch.Tensor] | None = None,
                noise: list | None = None, temperatures: list[float] | None = None, stats: str = "",
                groups: int | None = None) -> tuple[torch.Tensor | None, list[GroupStats]]:
        """(pixel-distribution parameters (n, out_ch, H, W), one GroupStats per group). acts: the
        encoder's activations (posterior mode) or None (prior mode); noise: one standard-normal
        tensor per group or None entries (the mean); temperatures: per group, prior mode only.
        groups: stop after this many groups and return (the stream, stats) (for the top's posterior)."""
        ref = self.gain
        x, below, level, out_stats = None, None, -1, []
        for g, block in enumerate(self.blocks):
            if groups is not None and g == groups:
                return x, out_stats
            s = self.group_sizes[g]
            if level < 0 or self.sizes[level] != s:
                below = x
                level = self.sizes.index(s)
                x = self.level_start(level, n, labels, below, ref)
            eps = noise[g] if noise is not None else None
            t = temperatures[g] if temperatures is not None else 1.0
            x, st = block(x, acts[s] if acts is not None else None, eps, t, stats)
            out_stats.append(st)
        return self.out(x * self.gain + self.shift), out_stats
