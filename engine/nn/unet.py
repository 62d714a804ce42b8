"""A small UNet for noise prediction: residual blocks, sinusoidal time embedding, self-attention at
chosen resolutions, and optional class conditioning (label index num_classes = "no label", for
classifier-free guidance)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.nn.blocks import Downsample, ResBlock, SelfAttention, Upsample, group_norm, timestep_embedding


class UNet(nn.Module):
    def __init__(self, *, in_channels: int, resolution: int, base_channels: int = 32,
                 channel_mults=(1, 2, 2), num_res_blocks: int = 1, attention_resolutions=(4,),
                 attention_heads: int = 4, dropout: float = 0.0, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        self.base = base_channels
        emb_dim = 4 * base_channels
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None

        self.stem = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips = [base_channels]
        ch, res = base_channels, resolution
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                out = base_channels * mult
                blocks = [ResBlock(ch, out, emb_dim, dropout)]
                if res in attention_resolutions:
                    blocks.append(SelfAttention(out, attention_heads))
                self.down.append(nn.ModuleList(blocks))
                ch = out
                skips.append(ch)
            if level != len(channel_mults) - 1:
                self.down.append(nn.ModuleList([Downsample(ch)]))
                skips.append(ch)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim, dropout), SelfAttention(ch, attention_heads),
                                  ResBlock(ch, ch, emb_dim, dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for i in range(num_res_blocks + 1):
                out = base_channels * mult
                blocks = [ResBlock(ch + skips.pop(), out, emb_dim, dropout)]
                if res in attention_resolutions:
                    blocks.append(SelfAttention(out, attention_heads))
                ch = out
                if level != 0 and i == num_res_blocks:
                    blocks.append(Upsample(ch))
                    res *= 2
                self.up.append(nn.ModuleList(blocks))
        self.out_norm = group_norm(ch)
        self.out_conv = nn.Conv2d(ch, in_channels, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    @staticmethod
    def _run(blocks, h, emb):
        for b in blocks:
            h = b(h, emb) if isinstance(b, ResBlock) else b(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, C, H, W) noisy images; t: (B,) timesteps; labels: (B,) with num_classes = "none"
        emb = self.time_mlp(timestep_embedding(t, self.base))
        if self.label_emb is not None:
            if labels is None:
                labels = torch.full((x.shape[0],), self.num_classes, device=x.device, dtype=torch.long)
            emb = emb + self.label_emb(labels)
        h = self.stem(x)
        hs = [h]
        for blocks in self.down:
            h = self._run(blocks, h, emb)
            hs.append(h)
        h = self._run(self.mid, h, emb)
        for blocks in self.up:
            h = self._run(blocks, torch.cat([h, hs.pop()], dim=1), emb)
        return self.out_conv(F.silu(self.out_norm(h)))
