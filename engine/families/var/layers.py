"""VAR's transformer (Tian et al. 2024, models/var.py, written anew): one sequence holding every
scale's token map, coarse to fine (1x1, 2x2, ... : L = sum of s^2 positions), with a block-causal
attention mask (a position sees its own scale and every coarser one, nothing finer), a learned
position and a level (scale) embedding added to each input, and one head giving the logits of
the code at every position. Scale 0's inputs are the start token (the class's embedding; an
unconditional model has one class); scale k's are the tokenizer's summed code vectors of the
coarser scales, brought to scale k's size (`next_scale_inputs`).

Sampling runs one scale at a time through `step`, each block keeping the keys and values of the
scales already drawn (a KV cache): a scale's queries attend to the cache plus themselves, which
is exactly what the block-causal mask lets them see in a full pass."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


def scale_levels(sizes: list[int]) -> torch.Tensor:
    """(L,) the scale index of each position of the concatenated maps."""
    return torch.cat([torch.full((s * s,), k, dtype=torch.long) for k, s in enumerate(sizes)])


def block_causal_mask(sizes: list[int]) -> torch.Tensor:
    """(L, L) bool, True where query i may attend to key j: scale(j) <= scale(i)."""
    lv = scale_levels(sizes)
    return lv[None, :] <= lv[:, None]


def resize(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """As the tokenizer's MultiScaleResidualQuantizer.resize (bicubic up, area down)."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))


def accumulate(f_hat: torch.Tensor, code_vectors: torch.Tensor) -> torch.Tensor:
    """f_hat (B, D, g, g) plus one scale's code vectors (B, D, s, s) upsampled (bicubic) to the grid:
    the tokenizer's reconstruction of the encoder's map so far."""
    return f_hat + resize(code_vectors, f_hat.shape[-1], "bicubic")


def scale_input(f_hat: torch.Tensor, size: int) -> torch.Tensor:
    """The input rows of a scale of side `size`: f_hat brought down to it (area), (B, size^2, D); the
    map the tokenizer's residual at that scale was quantized from is the encoder's minus this."""
    return resize(f_hat, size, "area").flatten(2).transpose(1, 2)


def next_scale_inputs(maps: list[torch.Tensor], embed: Callable[[torch.Tensor], torch.Tensor],
                      sizes: list[int]) -> torch.Tensor:
    """Teacher forcing: the inputs of scales 1.. given the true maps (B, s, s) of all scales, as
    (B, L - sizes[0]^2, D). `embed(map)` is the tokenizer's frozen codebook lookup, (B, D, s, s)."""
    grid = sizes[-1]
    first = embed(maps[0])
    f_hat = torch.zeros(first.shape[0], first.shape[1], grid, grid, device=first.device, dtype=first.dtype)
    rows = []
    for k in range(len(sizes) - 1):
        f_hat = accumulate(f_hat, first if k == 0 else embed(maps[k]))
        rows.append(scale_input(f_hat, sizes[k + 1]))
    return torch.cat(rows, 1)


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, cache: list | None = None) -> torch.Tensor:
        """x (B, n, W). With a cache ([] at first, then [keys, values] of earlier scales), the keys
        and values of x are appended to it and x attends to all of them (no mask: a new scale sees
        every cached, coarser one and itself)."""
        b, n, w = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            if cache:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache[:] = [k, v]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, n, w))


class Block(nn.Module):
    """Pre-norm transformer block: attention, then an MLP, each added back."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        hidden = max(1, int(width * mlp_ratio))
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width), nn.Dropout(dropout))

    def forward(self, x, mask=None, cache=None):
        x = x + self.attn(self.norm1(x), mask, cache)
        return x + self.mlp(self.norm2(x))


class NextScaleTransformer(nn.Module):
    """Logits (B, n, num_codes) of the first n positions of the scale sequence."""

    def __init__(self, sizes: list[int], num_codes: int, code_dim: int, width: int, depth: int, heads: int,
                 mlp_ratio: float, dropout: float, num_classes: int):
        super().__init__()
        self.sizes = list(sizes)
        self.starts = [0]
        for s in self.sizes:
            self.starts.append(self.starts[-1] + s * s)
        length = self.starts[-1]
        self.class_embed = nn.Embedding(num_classes + 1, width)   # the last row: "no class" (label dropout)
        self.word_embed = nn.Linear(code_dim, width)
        self.pos = nn.Parameter(torch.randn(length, width) * 0.02)
        self.level_embed = nn.Embedding(len(self.sizes), width)
        nn.init.normal_(self.level_embed.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_codes)
        # not saved: both follow from the sizes
        self.register_buffer("levels", scale_levels(self.sizes), persistent=False)
        self.register_buffer("mask", block_causal_mask(self.sizes), persistent=False)

    @property
    def length(self) -> int:
        return self.starts[-1]

    def embed(self, labels: torch.Tensor, inputs: torch.Tensor | None, first: int, n: int) -> torch.Tensor:
        """Positions first .. first+n of the sequence: the start token over scale 0's positions, the
        projected scale inputs (B, rows, D) after them, plus positions and levels."""
        parts = []
        s0 = self.starts[1]
        if first < s0:
            parts.append(self.class_embed(labels)[:, None, :].expand(-1, min(s0, first + n) - first, -1))
        if inputs is not None and inputs.shape[1]:
            parts.append(self.word_embed(inputs))
        x = torch.cat(parts, 1)
        return x + self.pos[first:first + n] + self.level_embed(self.levels[first:first + n])

    def forward(self, labels: torch.Tensor, inputs: torch.Tensor | None, n: int | None = None) -> torch.Tensor:
        """The full (uncached) pass over the first n positions (all by default): inputs (B, n - s0^2, D)
        are the scale inputs of scales 1.. (next_scale_inputs) up to position n."""
        n = self.length if n is None else n
        x = self.embed(labels, inputs, 0, n)
        mask = self.mask[:n, :n]
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.norm(x))

    def step(self, k: int, labels: torch.Tensor, inputs: torch.Tensor | None, cache: list[list]) -> torch.Tensor:
        """Scale k alone, attending to the scales before it through `cache` (one list per block,
        filled by the calls for scales 0 .. k-1): its logits (B, s_k^2, num_codes)."""
        x = self.embed(labels, inputs, self.starts[k], self.starts[k + 1] - self.starts[k])
        for block, c in zip(self.blocks, cache):
            x = block(x, None, c)
        return self.head(self.norm(x))
