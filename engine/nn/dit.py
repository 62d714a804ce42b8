"""A Diffusion Transformer (DiT, Peebles & Xie 2023) for noise (or velocity, or x0) prediction: the
image cut into p×p patches, each a token with a 2D position embedding, transformer blocks
conditioned on the time (and class) by adaLN-Zero, a final adaptive layer and the tokens put back
into an image. The call is the UNet's (engine/nn/unet.py), so a family can switch:
DiT(in_channels=, resolution=, ..., num_classes=)(x, t, labels) with label index num_classes =
"no label" (classifier-free guidance's null class).

norm="tdln" swaps adaLN for the time-dependent layer norm of DiMR (Liu et al. 2024): see
TimeDependentLayerNorm."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.nn.backbones import DIT_NORMS as NORMS, DIT_POS_EMBEDS as POS_EMBEDS
from engine.nn.blocks import timestep_embedding
TIME_FREQUENCIES = 256   # size of the sinusoidal time features fed to the time MLP (as in DiT)


# ---- tokens <-> image ----------------------------------------------------------------------------
def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, p*p*C): row-major patches, each flattened as (p, p, C)."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(tokens: torch.Tensor, p: int, channels: int, height: int) -> torch.Tensor:
    """The inverse of patchify for a (height × width) image: (B, N, p*p*C) -> (B, C, H, W)."""
    b, n, _ = tokens.shape
    gh = height // p
    gw = n // gh
    x = tokens.reshape(b, gh, gw, p, p, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, gh * p, gw * p)


def sincos_1d(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) positions -> (N, dim): sines and cosines at geometric frequencies (the Transformer's)."""
    half = dim // 2
    omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64) / max(half, 1))
    args = pos.double()[:, None] * omega[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, dim - 2 * half)).float()


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """(grid*grid, dim) fixed position embedding of a square token grid, row-major: half the
    channels encode the row, half the column (as in MAE and DiT)."""
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    d_row = dim // 2
    return torch.cat([sincos_1d(rows.reshape(-1), d_row), sincos_1d(cols.reshape(-1), dim - d_row)], dim=1)


# ---- conditioning -----------------------------------------------------------------------------------
def as_batch_times(t, batch: int, device) -> torch.Tensor:
    """t as a (B,) tensor: integer steps (DDPM) or continuous times (flow matching, EDM's c_noise),
    a tensor or a plain number, one per image or one for all."""
    t = torch.as_tensor(t, device=device).reshape(-1)
    return t.expand(batch) if t.numel() == 1 else t.reshape(batch)


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of t (integer or fractional) through a two-layer MLP."""

    def __init__(self, width: int, frequencies: int = TIME_FREQUENCIES):
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(nn.Linear(frequencies, width), nn.SiLU(), nn.Linear(width, width))
        for lin in (self.mlp[0], self.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.frequencies))


class TimeDependentParameter(nn.Module):
    """A parameter vector that depends on the time τ: s ⊙ p0 + (1 − s) ⊙ p1 with s = sigmoid(w ⊙ τ + b)
    per channel (DiMR's TimeDependentParameter). p0 and p1 start equal, so at initialisation it is a
    plain parameter; w starts at 1 and b at 0."""

    def __init__(self, dim: int, value: float):
        super().__init__()
        self.p0 = nn.Parameter(torch.full((dim,), value))
        self.p1 = nn.Parameter(torch.full((dim,), value))
        self.w = nn.Parameter(torch.ones(dim))
        self.b = nn.Parameter(torch.zeros(dim))

    def forward(self, tau: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(tau[:, None] * self.w + self.b)          # (B, dim)
        return s * self.p0 + (1 - s) * self.p1


class TimeDependentLayerNorm(nn.Module):
    """TD-LN (Liu et al. 2024, "Alleviating distortion in image generation via multi-resolution
    diffusion models", DiMR): a LayerNorm whose gain γ and bias β are functions of the time, each a
    learned interpolation between two parameter sets (TimeDependentParameter above). What is
    implemented: γ(τ) and β(τ) per channel as in DiMR's released code, τ being the family's time
    mapped linearly onto [-4, 4] (DiMR feeds log-SNR / 4, which spans about that much). Eight
    vectors of `width` per norm instead of adaLN's width × 6·width matrix per block; no gate, so a
    block's residual branches are zero-initialised instead to start as the identity."""

    def __init__(self, width: int, eps: float = 1e-6):
        super().__init__()
        self.width, self.eps = width, eps
        self.gain = TimeDependentParameter(width, 1.0)
        self.bias = TimeDependentParameter(width, 0.0)

    def forward(self, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        h = F.layer_norm(x, (self.width,), eps=self.eps)
        return h * self.gain(tau)[:, None] + self.bias(tau)[:, None]


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


# ---- the transformer -------------------------------------------------------------------------------
class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)              # (B, heads, N, C/heads)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class DiTBlock(nn.Module):
    """Pre-norm attention and MLP, each residual branch conditioned on the time (and class).
    adaLN-Zero: shift, scale and gate of both branches from the conditioning vector c, the
    projection zero-initialised, so gates start at 0 and the block is the identity. TD-LN: the
    norms take the time τ; the branches' last layers start at zero for the same reason."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, norm: str):
        super().__init__()
        self.tdln = norm == "tdln"
        if self.tdln:
            self.norm1, self.norm2 = TimeDependentLayerNorm(width), TimeDependentLayerNorm(width)
        else:
            self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
            self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
            self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        self.attn = Attention(width, heads)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        zeroed = [self.attn.proj, self.mlp[2]] if self.tdln else [self.modulation[1]]
        for lin in zeroed:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None, tau: torch.Tensor | None) -> torch.Tensor:
        if self.tdln:
            x = x + self.attn(self.norm1(x, tau))
            return x + self.mlp(self.norm2(x, tau))
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=1)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    """Norm (adaptive or time-dependent), then a zero-initialised projection to p*p*C per token:
    the network's output starts at exactly zero."""

    def __init__(self, width: int, patch_values: int, norm: str):
        super().__init__()
        self.tdln = norm == "tdln"
        if self.tdln:
            self.norm = TimeDependentLayerNorm(width)
        else:
            self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
            self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
            nn.init.zeros_(self.modulation[1].weight)
            nn.init.zeros_(self.modulation[1].bias)
        self.linear = nn.Linear(width, patch_values)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None, tau: torch.Tensor | None) -> torch.Tensor:
        if self.tdln:
            return self.linear(self.norm(x, tau))
        shift, scale = self.modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm(x), shift, scale))


class DiT(nn.Module):
    """Patchify -> + position embedding -> blocks -> final layer -> unpatchify.

    Conditioning: adaLN-Zero (DiT) sums the time embedding and the class embedding into one vector
    that modulates every block. TD-LN has no such vector: the time reaches only the norms, and the
    class (when conditional) enters as one extra token prepended to the sequence (DiT's "in-context"
    conditioning), dropped before the final layer. `time_range` is the span of t the family feeds
    (DDPM: 0 … T-1; flow matching: 0 … 1), which TD-LN maps onto τ in [-4, 4]."""

    def __init__(self, *, in_channels: int, resolution: int, patch_size: int = 2, width: int = 128,
                 depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0, pos_embed: str = "sincos",
                 norm: str = "adaln-zero", num_classes: int = 0, time_range: tuple[float, float] = (0.0, 1.0)):
        super().__init__()
        if resolution % patch_size:
            raise ValueError(f"DiT: resolution {resolution} is not divisible by the patch size {patch_size}")
        if width % heads:
            raise ValueError(f"DiT: width {width} is not divisible by the number of heads {heads}")
        if norm not in NORMS or pos_embed not in POS_EMBEDS:
            raise ValueError(f"DiT: norm must be one of {NORMS} and pos_embed one of {POS_EMBEDS}")
        self.in_channels, self.resolution, self.patch = in_channels, resolution, patch_size
        self.num_classes, self.norm = num_classes, norm
        self.time_range = (float(time_range[0]), float(time_range[1]))
        grid = resolution // patch_size

        self.embed = nn.Linear(patch_size * patch_size * in_channels, width)   # a p×p, stride-p conv
        nn.init.xavier_uniform_(self.embed.weight)
        nn.init.zeros_(self.embed.bias)
        fixed = sincos_2d(grid, width)[None]
        if pos_embed == "learned":  # starts at the fixed embedding, then learns
            self.pos = nn.Parameter(fixed.clone())
        else:                       # recomputed from the shape, so not stored in checkpoints
            self.register_buffer("pos", fixed, persistent=False)

        self.time_embed = TimestepEmbedder(width) if norm == "adaln-zero" else None
        self.label_emb = nn.Embedding(num_classes + 1, width) if num_classes else None  # + the null class
        if self.label_emb is not None:
            nn.init.normal_(self.label_emb.weight, std=0.02)
        self.blocks = nn.ModuleList(DiTBlock(width, heads, mlp_ratio, norm) for _ in range(depth))
        self.final = FinalLayer(width, patch_size * patch_size * in_channels, norm)

    def tau(self, t: torch.Tensor) -> torch.Tensor:
        """The family's time mapped linearly from time_range onto [-4, 4] (TD-LN's input)."""
        lo, hi = self.time_range
        return (t.float() - lo) / max(hi - lo, 1e-12) * 8.0 - 4.0

    def forward(self, x: torch.Tensor, t, labels: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, C, H, W) noisy images; t: (B,) integer steps or float times; labels: (B,), num_classes = "none"
        b = x.shape[0]
        t = as_batch_times(t, b, x.device)
        h = self.embed(patchify(x, self.patch)) + self.pos
        label_vec = None
        if self.label_emb is not None:
            if labels is None:
                labels = torch.full((b,), self.num_classes, device=x.device, dtype=torch.long)
            label_vec = self.label_emb(labels)
        c = tau = None
        if self.norm == "tdln":
            tau = self.tau(t)
            if label_vec is not None:
                h = torch.cat([label_vec[:, None], h], dim=1)
        else:
            c = self.time_embed(t)
            if label_vec is not None:
                c = c + label_vec
        for block in self.blocks:
            h = block(h, c, tau)
        if self.norm == "tdln" and label_vec is not None:
            h = h[:, 1:]
        return unpatchify(self.final(h, c, tau), self.patch, self.in_channels, self.resolution)

