"""The tokenizer's bottlenecks, one class each, with one small contract (as lucidrains'
vector-quantize-pytorch: quantized map, indices, auxiliary loss):

  quantizer(z, update=...) -> Quantized(z_q, tokens, loss, scales)   z: (B, D, h, w) encoder output
  quantizer.decode_tokens(tokens) -> (B, D, h, w)                     what z_q is for those tokens

z_q carries straight-through gradients (its value is the quantized map, its gradient w.r.t. z the
identity), so the decoder's gradient reaches the encoder. Tokens are (B, h, w) int64 code indices;
the multi-scale quantizer's are a list, one (B, s, s) map per scale, coarse to fine.

  VectorQuantizer           a learned codebook updated by EMA (van den Oord et al. 2017, appendix;
                            Razavi et al. 2019), commitment loss, dead-code restarts from recent
                            encoder outputs, optional l2-normalised and factorised (low-dim) codes
  FiniteScalarQuantizer     FSQ (Mentzer et al. 2023): each of a few bounded dims rounded to L_i
                            levels; the codebook is implicit (prod L_i codes); no loss, no restarts
  MultiScaleResidualQuantizer  VAR's quant.py idea (Tian et al. 2024): one shared VQ codebook
                            quantizes the residual at scales 1x1, 2x2, ... up to the token grid

Codebook state (codes, EMA statistics, the step each code was last used, the restart pool) lives in
buffers, so it is in every checkpoint and a resumed run continues bit for bit. Updates happen only
when the caller passes update=True (the family's training step), never on evaluation passes.

Under torchrun each rank sees its share of the global batch; `collectives` (StepContext's: sum_ and
broadcast_) keep the state equal on every rank: the EMA's counts and sums and the codes used are
summed over ranks, and the random choices (the pool's new rows, the restart vectors) are rank 0's,
so restarts are decided from the same statistics everywhere and the codebooks never diverge. Counts
and usage are then those of the global batch, as in one process; the pool takes rank 0's share of
it (one process: a subset of the whole batch), so a run with restarts matches one process up to
the vectors the restarts draw."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Quantized:
    z_q: torch.Tensor                   # (B, D, h, w), straight-through
    tokens: torch.Tensor | list         # (B, h, w) int64, or one map per scale (multi-scale)
    loss: torch.Tensor                  # the quantizer's own loss term (commitment; 0 for FSQ)
    logs: dict = field(default_factory=dict)   # codebook readings for the log (codebook/…)
    scales: list = field(default_factory=list)  # multi-scale only: each scale's upsampled contribution


def perplexity(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """exp(entropy) of the codes' frequencies in `indices`: the effective number of codes in use
    (num_codes when all are used equally, 1 when one code takes everything)."""
    p = torch.bincount(indices.flatten(), minlength=num_codes).float()
    p = p / p.sum().clamp(min=1)
    return torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum())


def to_rows(z: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) -> (B*h*w, D): one vector per token position."""
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def from_rows(x: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
    """(B*h*w, D) -> (B, D, h, w)."""
    return x.reshape(b, h, w, -1).permute(0, 3, 1, 2)


class CodeUsage(nn.Module):
    """Which codes were used recently: the update step each code was last chosen (-1 = never).
    Usage is the fraction of codes chosen within the last `window` updates."""

    def __init__(self, num_codes: int, window: int):
        super().__init__()
        self.num_codes, self.window = num_codes, window
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("last_used", torch.full((num_codes,), -1, dtype=torch.long))

    @torch.no_grad()
    def observe(self, indices: torch.Tensor, collectives=None) -> None:
        """One update step whose tokens are `indices` (this rank's; every rank's with collectives)."""
        used = torch.bincount(indices.flatten(), minlength=self.num_codes)
        self.observe_used((collectives.sum_(used) if collectives is not None else used) > 0)

    @torch.no_grad()
    def observe_used(self, used: torch.Tensor) -> None:
        """One update step in which the codes where `used` (num_codes,) is true were chosen."""
        self.step += 1
        self.last_used.copy_(torch.where(used, self.step, self.last_used))

    def fraction_used(self) -> torch.Tensor:
        recent = (self.last_used >= 0) & (self.step - self.last_used < self.window)
        return recent.float().mean()

    def readings(self, indices: torch.Tensor) -> dict:
        return {"codebook/usage": self.fraction_used(), "codebook/perplexity": perplexity(indices, self.num_codes)}


class VectorQuantizer(nn.Module):
    """Nearest-code lookup in a codebook of `num_codes` vectors, the codebook moved by an
    exponential moving average of the encoder vectors assigned to each code:

        N_k <- decay N_k + (1 - decay) n_k                 (n_k: vectors assigned to code k now)
        m_k <- decay m_k + (1 - decay) sum of those vectors
        e_k  = m_k / N~_k,   N~_k = (N_k + eps) / (sum N + K eps) * sum N   (Laplace smoothing)

    Loss: beta * ||z - sg(e)||^2 (commitment; the codebook needs no loss term, the EMA moves it).
    Codes unused for `dead_after` updates are re-seeded from a pool of recent encoder vectors.
    `code_dim` < dim: factorised codes (Yu et al. 2022, ViT-VQGAN): vectors are projected to
    code_dim for the lookup and back; `l2`: vectors and codes are l2-normalised (cosine lookup)."""

    def __init__(self, dim: int, num_codes: int, *, code_dim: int = 0, decay: float = 0.99, eps: float = 1e-5,
                 beta: float = 0.25, dead_after: int = 100, pool_size: int = 1024, l2: bool = False,
                 usage_window: int = 100):
        super().__init__()
        c = code_dim or dim
        self.dim, self.code_dim, self.num_codes = dim, c, num_codes
        self.decay, self.eps, self.beta, self.dead_after, self.l2 = decay, eps, beta, dead_after, l2
        self.project_in = nn.Linear(dim, c) if c != dim else nn.Identity()
        self.project_out = nn.Linear(c, dim) if c != dim else nn.Identity()
        codes = torch.randn(num_codes, c)
        codes = F.normalize(codes, dim=1) if l2 else codes
        self.register_buffer("codebook", codes)
        # as if each code had been assigned once to itself: an unused code stays where it is
        # (its sum and count decay alike) instead of dividing by a count of zero
        self.register_buffer("cluster_size", torch.ones(num_codes))
        self.register_buffer("embed_sum", codes.clone())
        self.register_buffer("pool", torch.zeros(pool_size, c))       # recent encoder vectors
        self.register_buffer("pool_filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("pool_next", torch.zeros((), dtype=torch.long))
        # the update step each code was last restarted at: its grace period (not counted as use)
        self.register_buffer("restarted_at", torch.zeros(num_codes, dtype=torch.long))
        self.usage = CodeUsage(num_codes, usage_window)

    # ---- lookup ------------------------------------------------------------------------------------
    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder vectors (N, dim) -> the space codes live in (N, code_dim)."""
        x = self.project_in(x)
        return F.normalize(x, dim=1) if self.l2 else x

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of x (N, code_dim), by squared distance."""
        cb = self.codebook
        d = x.pow(2).sum(1, keepdim=True) - 2 * x @ cb.t() + cb.pow(2).sum(1)[None]
        return d.argmin(1)

    def forward(self, z: torch.Tensor, *, update: bool = False, generator: torch.Generator | None = None,
                collectives=None) -> Quantized:
        b, _, h, w = z.shape
        x = self.prepare(to_rows(z.float()))
        idx = self.nearest(x.detach())
        q = self.codebook[idx]
        commit = self.beta * F.mse_loss(x, q)          # the codebook is a buffer: this moves x only
        logs = {}
        if update:
            logs = self.update(x.detach(), idx, generator, collectives)
        q = x + (q - x).detach()                         # straight-through: d q / d x = identity
        return Quantized(from_rows(self.project_out(q), b, h, w), idx.view(b, h, w), commit, logs)

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, h, w) code indices -> their vectors (B, dim, h, w)."""
        b, h, w = tokens.shape
        return from_rows(self.project_out(self.codebook[tokens.flatten()]), b, h, w)

    def vectors_of(self, x: torch.Tensor) -> torch.Tensor:
        """Each row of (N, code_dim) snapped to its nearest code, back in the encoder's space (N, dim)."""
        return self.project_out(self.codebook[self.nearest(x)])

    # ---- codebook updates ----------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, x: torch.Tensor, idx: torch.Tensor, generator: torch.Generator | None = None,
               collectives=None) -> dict:
        """One EMA step on vectors x (N, code_dim) assigned to codes idx (N,), then restarts of dead
        codes; returns the codebook readings for the log. With collectives (torchrun), x and idx
        are this rank's share and every rank makes the same update (the module docstring)."""
        counts, sums = self.batch_statistics(x, idx, collectives)
        self.ema_update(counts, sums)
        self.usage.observe_used(counts > 0)
        self.remember(x, generator, collectives)
        restarted = self.restart_dead_codes(generator, collectives)
        return {**self.usage.readings(idx), "codebook/restarts": restarted.float()}

    def batch_statistics(self, x: torch.Tensor, idx: torch.Tensor, collectives=None):
        """How many vectors each code was assigned (K,) and their sum (K, code_dim), over every
        rank's share with collectives (one all-reduce)."""
        k = self.num_codes
        counts = torch.bincount(idx, minlength=k).to(x.dtype)
        sums = torch.zeros_like(self.embed_sum).index_add_(0, idx, x)
        if collectives is None:
            return counts, sums
        both = collectives.sum_(torch.cat([counts[:, None], sums], 1))
        return both[:, 0].contiguous(), both[:, 1:].contiguous()

    @torch.no_grad()
    def ema_update(self, counts: torch.Tensor, sums: torch.Tensor) -> None:
        """The EMA step on a batch's statistics (batch_statistics)."""
        k, g = self.num_codes, self.decay
        self.cluster_size.mul_(g).add_(counts, alpha=1 - g)
        self.embed_sum.mul_(g).add_(sums, alpha=1 - g)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + k * self.eps) * n
        codes = self.embed_sum / smoothed[:, None]
        self.codebook.copy_(F.normalize(codes, dim=1) if self.l2 else codes)

    @torch.no_grad()
    def remember(self, x: torch.Tensor, generator: torch.Generator | None, collectives=None) -> None:
        """Put a random subset of this batch's vectors into the restart pool (a ring); with
        collectives, rank 0's (every rank's share has the same size)."""
        size = self.pool.shape[0]
        take = min(size, x.shape[0])
        pick = torch.randperm(x.shape[0], generator=generator, device=_gen_device(generator))[:take].to(x.device)
        rows = x[pick].contiguous()
        if collectives is not None:
            collectives.broadcast_(rows)
        at = (self.pool_next + torch.arange(take, device=x.device)) % size
        self.pool[at] = rows
        self.pool_next.copy_((self.pool_next + take) % size)
        self.pool_filled.add_(take).clamp_(max=size)

    @torch.no_grad()
    def restart_dead_codes(self, generator: torch.Generator | None, collectives=None) -> torch.Tensor:
        """Codes unused for dead_after updates become random vectors of the pool (with a fresh
        count of 1 and a fresh grace period); with collectives, rank 0's draw of them. Returns how
        many were restarted (a tensor: no sync)."""
        if self.dead_after <= 0:
            return torch.zeros((), device=self.codebook.device)
        idle = self.usage.step - torch.maximum(self.usage.last_used, self.restarted_at)
        dead = idle >= self.dead_after
        # always draw (a fixed number of random values per step), so the stream does not depend on the data
        choice = torch.randint(0, 2 ** 62, (self.num_codes,), generator=generator,
                               device=_gen_device(generator)).to(self.pool.device) % self.pool_filled.clamp(min=1)
        if collectives is not None:
            collectives.broadcast_(choice)
        fresh = self.pool[choice]
        fresh = F.normalize(fresh, dim=1) if self.l2 else fresh
        d = dead[:, None]
        self.codebook.copy_(torch.where(d, fresh, self.codebook))
        self.embed_sum.copy_(torch.where(d, fresh, self.embed_sum))
        self.cluster_size.copy_(torch.where(dead, torch.ones_like(self.cluster_size), self.cluster_size))
        self.restarted_at.copy_(torch.where(dead, self.usage.step, self.restarted_at))
        return dead.sum()


def _gen_device(generator: torch.Generator | None):
    return generator.device if generator is not None else "cpu"


class FiniteScalarQuantizer(nn.Module):
    """FSQ (Mentzer et al. 2023). The vector is projected to len(levels) dims, each bounded by a
    tanh to (about) L_i values and rounded (straight-through), then scaled to [-1, 1]. For an even
    L the bound is shifted by half a level (the paper's / lucidrains' offset), so the L integer
    values -L/2 .. L/2 - 1 are all reachable. Code index = mixed-radix number of the per-dim levels."""

    def __init__(self, dim: int, levels: list[int], *, usage_window: int = 100):
        super().__init__()
        self.dim, self.levels = dim, list(levels)
        d = len(levels)
        self.num_codes = int(torch.tensor(levels).prod())
        self.project_in = nn.Linear(dim, d) if d != dim else nn.Identity()
        self.project_out = nn.Linear(d, dim) if d != dim else nn.Identity()
        lv = torch.tensor(levels, dtype=torch.float32)
        self.register_buffer("_levels", lv, persistent=False)
        self.register_buffer("_basis", torch.cumprod(torch.tensor([1] + levels[:-1]), 0), persistent=False)
        self.register_buffer("_half_width", torch.div(lv, 2, rounding_mode="floor"), persistent=False)
        self.usage = CodeUsage(self.num_codes, usage_window)

    def bound(self, z: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
        """Each dim squashed into (-L/2 - offset, L/2 - offset) so rounding gives L values."""
        half_l = (self._levels - 1) * (1 + eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """(..., len(levels)) -> the rounded values scaled to [-1, 1], straight-through."""
        b = self.bound(z)
        return (b + (torch.round(b) - b).detach()) / self._half_width

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., len(levels)) quantized values in [-1, 1] -> (...) int64 indices in [0, prod L)."""
        digits = torch.round(codes * self._half_width + self._half_width).long()
        return (digits * self._basis).sum(-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """(...) int64 indices -> (..., len(levels)) quantized values in [-1, 1]."""
        digits = (indices[..., None] // self._basis) % self._levels.long()
        return (digits.float() - self._half_width) / self._half_width

    def level_values(self, i: int) -> torch.Tensor:
        """The values dim i can take after quantization (L_i of them, in [-1, 1])."""
        return (torch.arange(self.levels[i]).float() - self._half_width[i].cpu()) / self._half_width[i].cpu()

    def forward(self, z: torch.Tensor, *, update: bool = False, generator: torch.Generator | None = None,
                collectives=None) -> Quantized:
        b, _, h, w = z.shape
        codes = self.quantize(self.project_in(to_rows(z.float())))
        idx = self.codes_to_indices(codes.detach())
        logs = {}
        if update:
            self.usage.observe(idx, collectives)
            logs = self.usage.readings(idx)
        return Quantized(from_rows(self.project_out(codes), b, h, w), idx.view(b, h, w),
                         torch.zeros((), device=z.device), logs)

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        b, h, w = tokens.shape
        return from_rows(self.project_out(self.indices_to_codes(tokens.flatten())), b, h, w)


def default_scales(grid: int) -> list[int]:
    """1, 2, 4, ... doubling, then the token grid itself: the multi-scale quantizer's default."""
    out = [1]
    while out[-1] * 2 < grid:
        out.append(out[-1] * 2)
    return out + [grid] if out[-1] != grid else out


class MultiScaleResidualQuantizer(nn.Module):
    """VAR's multi-scale residual quantization (Tian et al. 2024, models/quant.py): for each scale
    s (coarse to fine), the residual r is area-downsampled to s x s, quantized with the shared
    codebook, upsampled back (bicubic) and subtracted:

        r_0 = z;  q_s = up(VQ(down_s(r_s)));  r_{s+1} = r_s - q_s;  z_hat = sum_s q_s

    One EMA codebook serves every scale (its update sees the vectors of all scales); the
    commitment loss is on z_hat. Tokens: one (B, s, s) map per scale, what a next-scale prior predicts."""

    def __init__(self, vq: VectorQuantizer, scales: list[int]):
        super().__init__()
        if vq.code_dim != vq.dim or vq.l2:
            raise ValueError("multi-scale residual quantization takes plain codes (code_dim 0, l2_codes off): "
                             "residuals are summed in the encoder's space")
        self.vq, self.scale_sizes = vq, list(scales)
        self.num_codes = vq.num_codes

    @property
    def usage(self) -> CodeUsage:
        return self.vq.usage   # not a second registration: a checkpoint holds each buffer once

    @staticmethod
    def resize(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
        if x.shape[-1] == size:
            return x
        return F.interpolate(x, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))

    def forward(self, z: torch.Tensor, *, update: bool = False, generator: torch.Generator | None = None,
                collectives=None) -> Quantized:
        z = z.float()
        b, _, h, w = z.shape
        rest, z_hat = z.detach(), torch.zeros_like(z)
        tokens, parts, rows, picked = [], [], [], []
        for s in self.scale_sizes:
            x = to_rows(self.resize(rest, s, "area"))
            idx = self.vq.nearest(x)
            q = self.resize(from_rows(self.vq.codebook[idx], b, s, s), h, "bicubic")
            parts.append(q)
            z_hat = z_hat + q
            rest = rest - q
            tokens.append(idx.view(b, s, s))
            rows.append(x)
            picked.append(idx)
        loss = self.vq.beta * F.mse_loss(z, z_hat)
        logs = {}
        if update:
            logs = self.vq.update(torch.cat(rows), torch.cat(picked), generator, collectives)   # perplexity: all scales' tokens
        return Quantized(z + (z_hat - z).detach(), tokens, loss, logs, parts)

    def decode_tokens(self, tokens: list) -> torch.Tensor:
        """One (B, s, s) map per scale -> the summed, upsampled code vectors (B, dim, h, w)."""
        h = tokens[-1].shape[-1]
        return sum(self.resize(self.vq.decode_tokens(t), h, "bicubic") for t in tokens)
