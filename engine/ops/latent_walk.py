"""Latent interpolation, generic over families implementing LatentModel
(engine/family/interfaces.py): each says what latent a seed stands for (seed_latents), how images
enter the space (encode_images: projection for GANs, DDIM inversion for diffusion) and how latents
become images (decode_latents). This module walks between endpoints and writes strips and animations."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engine.family.progress import Cancelled

MODES = ("lerp", "slerp")
OUTPUT_SUFFIXES = (".png", ".gif", ".mp4")   # a strip, or an animation


def check_output(path: str | Path) -> None:
    if Path(path).suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"{path}: unknown output type {Path(path).suffix.lower()!r}; use .png, .gif or .mp4")


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation of each item (flattened), with the norm interpolated linearly; falls
    back to lerp for (nearly) parallel vectors."""
    fa, fb = a.reshape(a.shape[0], -1).double(), b.reshape(b.shape[0], -1).double()
    na, nb = fa.norm(dim=1, keepdim=True), fb.norm(dim=1, keepdim=True)
    ua, ub = fa / na.clamp(min=eps), fb / nb.clamp(min=eps)
    omega = torch.acos((ua * ub).sum(1, keepdim=True).clamp(-1, 1))
    so = torch.sin(omega)
    direction = torch.where(so > 1e-4, (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so.clamp(min=eps),
                            lerp(ua, ub, t))
    out = direction * lerp(na, nb, t)
    return out.to(a.dtype).reshape(a.shape)


def path(latents: torch.Tensor, steps: int, mode: str = "slerp") -> torch.Tensor:
    """`steps` latents walking through the K endpoints in order (the first and last frames are the
    first and last endpoints), evenly spaced along the legs."""
    if mode not in MODES:
        raise ValueError(f"unknown interpolation mode {mode!r}; choose lerp or slerp")
    k = latents.shape[0]
    if k < 2:
        raise ValueError("interpolation needs at least two endpoints")
    if steps < 2:
        raise ValueError(f"steps = {steps}: an interpolation needs at least 2 frames")
    f = slerp if mode == "slerp" else lerp
    out = []
    for pos in np.linspace(0, k - 1, steps):
        leg = min(int(pos), k - 2)
        out.append(f(latents[leg:leg + 1], latents[leg + 1:leg + 2], float(pos - leg)))
    return torch.cat(out)


def parse_endpoint(spec) -> int | Path:
    """A seed (an integer) or an image path."""
    if isinstance(spec, int):
        return spec
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    p = Path(text)
    if not p.is_file():
        raise ValueError(f"{text}: neither a seed (an integer) nor an image file")
    return p


def load_endpoint_image(family, path: Path) -> torch.Tensor:
    """An image file as (C, H, W) in [-1, 1] at the model's resolution and channel count."""
    from engine.data.folder import load_image
    try:
        arr, _ = load_image(Path(path), family.resolution)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float().div(127.5).sub(1.0)
    return x.mean(0, keepdim=True) if family.channels == 1 else x


class EndpointCache:
    """Latents of endpoints: seeds are cheap; images are encoded once per model (projection or
    inversion takes seconds) and remembered by path, modification time, class and the option
    values the family's encoding depends on (`encoding_key`: none for a GAN's projection, the
    steps, spacing and guidance for DDIM inversion), so a later request reuses it when it can."""

    def __init__(self):
        self._images: dict[tuple, torch.Tensor] = {}

    def latent(self, family, spec, labels=None, *, encode_steps: int = 200, options=None, use_ema: bool = True,
               progress: Callable[[int, int], None] | None = None,
               cancel: Callable[[], bool] | None = None) -> torch.Tensor:
        ep = parse_endpoint(spec)
        if isinstance(ep, int):
            return family.seed_latents([ep], labels, use_ema)
        key = (id(family), str(ep.resolve()), ep.stat().st_mtime_ns, str(labels), family.encoding_key(options))
        if key not in self._images:
            img = load_endpoint_image(family, ep)
            self._images[key] = family.encode_images(img.unsqueeze(0), labels, steps=encode_steps, options=options,
                                                     progress=progress, cancel=cancel)
        return self._images[key]


def interpolate(family, endpoints: list, frames: int = 16, mode: str = "slerp", *, labels=None,
                cache: EndpointCache | None = None, encode_steps: int | None = None, options=None,
                batch: int = 16, progress: Callable[[str, int, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> torch.Tensor:
    """`frames` images (frames, C, H, W) in [-1, 1] walking through the endpoints (seeds or image
    paths), rendered with `options` (the family's sample options; for diffusion, `steps` are DDIM
    steps). `labels`: a one-item list for a conditional model, or None."""
    cache = cache or EndpointCache()
    encode_steps = encode_steps or family.default_encode_steps(options)
    report = progress or (lambda stage, done, total: None)
    lats = []
    for i, spec in enumerate(endpoints):
        lats.append(cache.latent(family, spec, labels, encode_steps=encode_steps, options=options, cancel=cancel,
                                 progress=lambda d, t, i=i: report(f"encoding endpoint {i + 1}", d, t)))
    walk = path(torch.cat(lats), frames, mode)
    out = []
    for i in range(0, frames, batch):
        if cancel is not None and cancel():
            raise Cancelled()
        sub = walk[i:i + batch]
        out.append(family.decode_latents(sub, None if labels is None else labels * len(sub), options=options,
                                         cancel=cancel))
        report("rendering", min(frames, i + batch), frames)
    return torch.cat(out)


def save_animation(frames: torch.Tensor, path: str | Path, fps: float = 12.0, scale: int = 4,
                   bounce: bool = False) -> Path:
    """Write frames ((N, C, H, W) in [-1, 1]) as a GIF, an MP4 or a one-row strip PNG, by suffix."""
    from PIL import Image
    from engine.family.grid import make_grid, save_png, to_uint8
    path = Path(path)
    check_output(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        save_png(make_grid(frames, ncol=len(frames), scale=scale), path)
        return path
    arr = to_uint8(frames)
    if bounce:
        arr = np.concatenate([arr, arr[-2:0:-1]])
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    arr = arr.repeat(scale, axis=1).repeat(scale, axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp" + suffix)
    if suffix == ".gif":
        imgs = [Image.fromarray(a) for a in arr]
        imgs[0].save(tmp, format="GIF", save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)
    elif suffix == ".mp4":
        import cv2
        h, w = arr.shape[1:3]
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
        if not writer.isOpened():
            raise ValueError(f"{path}: this OpenCV build cannot write MP4; export a .gif instead")
        for a in arr:
            writer.write(np.ascontiguousarray(a[..., ::-1]))  # OpenCV wants BGR
        writer.release()
    tmp.replace(path)  # whole file or nothing
    return path
