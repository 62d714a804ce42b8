"""The latent denoiser: an MLP with residual blocks over the parent's latent vector, conditioned
on the timestep (sinusoidal embedding) and the class (label num_classes = "no label", for
classifier-free guidance). A VAE's latent is a vector with no spatial layout, so a UNet's
convolutions would have nothing to slide over."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.nn.blocks import timestep_embedding


class ResidualMLPBlock(nn.Module):
    """h + W2·dropout(SiLU(W1·LN(h) + emb)): the conditioning enters every block."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.emb = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(self.dropout(F.silu(self.fc1(self.norm(h)) + self.emb(emb))))


class LatentDenoiser(nn.Module):
    """(B, D) noisy latents, (B,) timesteps, (B,) labels -> (B, D) predicted noise.

    Also keeps the latent scale factor (1/std of the parent's latents of the training data, set
    once before training) as a buffer, so every checkpoint carries the scale its samples need."""

    def __init__(self, latent_dim: int, width: int, depth: int, num_classes: int = 0, dropout: float = 0.0):
        super().__init__()
        self.width, self.num_classes = width, num_classes
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.label_emb = nn.Embedding(num_classes + 1, width) if num_classes else None
        self.inp = nn.Linear(latent_dim, width)
        self.blocks = nn.ModuleList(ResidualMLPBlock(width, dropout) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, latent_dim)
        nn.init.zeros_(self.out.weight)   # starts by predicting zero noise, as the UNet's last conv
        nn.init.zeros_(self.out.bias)
        self.register_buffer("latent_scale", torch.ones(()))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.width))
        if self.label_emb is not None:
            if labels is None:
                labels = torch.full((x.shape[0],), self.num_classes, device=x.device, dtype=torch.long)
            emb = emb + self.label_emb(labels)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(F.silu(self.out_norm(h)))


class SpatialLatentDenoiser(nn.Module):
    """A tokenizer's latent is a map (C, h, w), where convolutions and patches have something to slide
    over: the UNet or DiT backbone (engine/nn/backbones.py) on it, behind the flat (B, D) interface
    the family's diffusion and solvers use. Keeps the latent scale factor as LatentDenoiser does."""

    def __init__(self, net: nn.Module, latent_shape: tuple[int, int, int]):
        super().__init__()
        self.net = net
        self.latent_shape = tuple(latent_shape)
        self.register_buffer("latent_scale", torch.ones(()))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x.reshape(len(x), *self.latent_shape), t, labels).reshape(len(x), -1)
