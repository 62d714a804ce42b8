"""Domain features: a small network GenLab trains on the dataset itself, for metrics when the FID
Inception weights are absent (and for data far from ImageNet, such as 16x16 digits). A classifier
where the data has labels, else an autoencoder; features are its 128-d bottleneck. Trained once per
dataset and cached, keyed by a hash of the images, labels and the extractor's settings."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save

from engine.core.util import atomic_write_bytes, atomic_write_json

FEATURE_DIM = 128
VERSION = 2


def input_size(resolution: int) -> int:
    """Small images are scored at 16x16, larger ones at 32x32 (cheap, and enough for features)."""
    return 16 if resolution <= 16 else 32


def cache_root() -> Path:
    base = os.environ.get("GENLAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "genlab")
    return Path(base) / "metrics"


class DomainNet(nn.Module):
    def __init__(self, channels: int, num_classes: int, size: int = 32):
        super().__init__()
        self.channels, self.num_classes, self.size = channels, num_classes, size

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.SiLU(), nn.AvgPool2d(2)]
        self.encoder = nn.Sequential(nn.Conv2d(channels, 32, 3, padding=1), nn.SiLU(), *block(32, 48),
                                     *block(48, 96), nn.Conv2d(96, 128, 3, padding=1), nn.SiLU(),
                                     nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(128 * 4, FEATURE_DIM))
        # features are standardised with the real data's per-dimension mean and std (set after
        # training), so distances and KID's polynomial kernel see unit-scale features
        self.register_buffer("feat_mean", torch.zeros(FEATURE_DIM))
        self.register_buffer("feat_std", torch.ones(FEATURE_DIM))
        if num_classes > 1:
            self.head = nn.Sequential(nn.SiLU(), nn.Dropout(0.2), nn.Linear(FEATURE_DIM, num_classes))
        else:
            q = size // 4
            self.decoder = nn.Sequential(nn.Linear(FEATURE_DIM, 64 * q * q), nn.Unflatten(1, (64, q, q)),
                                         nn.Upsample(scale_factor=2), nn.Conv2d(64, 32, 3, padding=1), nn.SiLU(),
                                         nn.Upsample(scale_factor=2), nn.Conv2d(32, channels, 3, padding=1))

    @property
    def is_classifier(self) -> bool:
        return self.num_classes > 1

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        s = self.size
        if x.shape[-1] != s or x.shape[-2] != s:
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=x.shape[-1] > s)
        return x

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        f = self.encoder(x)
        return f, (self.head(f) if self.is_classifier else None)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x in [-1, 1] -> (standardised features, logits or None). Unlike the FID Inception, the
        logits keep the head's bias: it is part of the classifier GenLab trained (cross-entropy with
        the bias), so it belongs to p(y|x); leaving out the bias in Inception only reproduces the
        reference IS code, and IS-domain is never compared with published numbers."""
        f, logits = self.raw(self.prepare(x))
        return (f - self.feat_mean) / self.feat_std, logits


def data_key(images: torch.Tensor, labels: torch.Tensor, settings: dict) -> str:
    h = hashlib.sha256()
    h.update(str(tuple(images.shape)).encode())
    h.update(images.contiguous().numpy().tobytes())
    h.update(labels.contiguous().numpy().tobytes())
    h.update(json.dumps({**settings, "version": VERSION}, sort_keys=True).encode())
    return h.hexdigest()[:20]


def train_domain_net(images: torch.Tensor, labels: torch.Tensor, num_classes: int, *, steps: int = 300,
                     batch: int = 128, seed: int = 0, device: torch.device | str = "cpu",
                     progress: Callable[[int, int], None] | None = None) -> tuple[DomainNet, dict]:
    """images: uint8 (N, C, H, W). Returns the trained net and a small report."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = DomainNet(images.shape[1], num_classes, input_size(images.shape[-1])).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    n = len(images)
    x_all = net.prepare(images.float().div(127.5).sub(1.0)).to(device)
    y_all = labels.to(device)
    t0 = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, n, (min(batch, n),), generator=g).to(device)
        x = x_all[idx]
        # light augmentation (small shifts) so features do not memorise pixels
        dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        f, logits = net.raw(x)
        if net.is_classifier:
            loss = F.cross_entropy(logits, y_all[idx])
        else:
            loss = F.mse_loss(net.decoder(f), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress and (step % 25 == 0 or step == steps - 1):
            progress(step + 1, steps)
    net.eval()
    with torch.no_grad():
        outs = [net.raw(x_all[i:i + 512]) for i in range(0, n, 512)]
        feats = torch.cat([f for f, _ in outs])
        net.feat_mean.copy_(feats.mean(0))
        net.feat_std.copy_(feats.std(0).clamp(min=1e-6))
    report = {"kind": "classifier" if net.is_classifier else "autoencoder", "steps": steps,
              "final_loss": float(loss.detach()), "seconds": round(time.perf_counter() - t0, 2)}
    if net.is_classifier:
        pred = torch.cat([l.argmax(1) for _, l in outs])
        report["train_accuracy"] = float((pred == y_all).float().mean())
    return net, report


def load_or_train(images: torch.Tensor, labels: torch.Tensor, num_classes: int, *, steps: int = 300,
                  device: torch.device | str = "cpu", cache: Path | None = None,
                  progress: Callable[[int, int], None] | None = None) -> tuple[DomainNet, Path, bool]:
    """The cached extractor for this data, training it the first time. Returns (net, its folder,
    whether it was trained now)."""
    size = input_size(images.shape[-1])
    settings = {"steps": steps, "num_classes": num_classes, "size": size, "dim": FEATURE_DIM}
    folder = (cache or cache_root()) / data_key(images, labels, settings)
    weights, meta = folder / "domain.safetensors", folder / "domain.json"
    if weights.is_file() and meta.is_file():
        net = DomainNet(images.shape[1], num_classes, size)
        net.load_state_dict(load_file(str(weights)))
        return net.to(device).eval(), folder, False
    net, report = train_domain_net(images, labels, num_classes, steps=steps, device=device, progress=progress)
    atomic_write_bytes(weights, save({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}))
    atomic_write_json(meta, {"settings": settings, "report": report, "images": len(images),
                             "channels": images.shape[1], "version": VERSION})
    return net, folder, True
