"""The reconstruction-error check, after AEROBLADE (Ricker, Lukovnikov & Fischer, CVPR 2024; training-free).

A latent model draws its images in its autoencoder's latent space and decodes them, so they lie on
the decoder's output manifold and go through encode -> decode almost unchanged; real images lose
detail on the way. The check sends the image through a GenLab autoencoder checkpoint (a VAE at its
posterior mean, a VQ tokenizer's codes; any family that reconstructs) and measures what came back.

The paper's distance is LPIPS (its second VGG layer); those weights are not available offline, so
the distance here is the mean squared error in [0, 1] pixel units over the model's input (an
autoencoder's own pixel loss, roughly), and the map is |x - recon| averaged over the channels. A
class-conditional autoencoder reconstructs under every class and keeps the closest (the paper's
minimum over autoencoders, over classes here). Lower error is more suspicious; there is no fixed
bound, since the error depends on the autoencoder: compare images through the same checkpoint."""
from __future__ import annotations

import numpy as np

from engine.detect.result import CheckResult


def reconstruction(family, x):
    """(the reconstruction (1, C, H, W) in [-1, 1], its squared error in [0, 1] units per sub-pixel
    (C, H, W), the class it was reconstructed under or None), the closest over the classes."""
    import torch
    classes = list(range(family.num_classes)) if getattr(family, "num_classes", 0) else [None]
    from engine.detect.trained import torch_threads
    with torch.no_grad(), torch_threads(1):   # small nets: one thread is faster on a busy CPU (trained.py)
        recon = family.reconstruct(x.expand(len(classes), -1, -1, -1).contiguous(),   # a class per row
                                   None if classes == [None] else classes).float().cpu().clamp(-1, 1)
    err = ((recon - x) / 2).pow(2)                                                # K, C, H, W
    k = int(err.flatten(1).mean(1).argmin())
    return recon[k:k + 1], err[k], classes[k]


def check(image: np.ndarray, context) -> CheckResult:
    from engine.detect.image import as_rgb
    from engine.detect.model_input import model_input, resized_words
    family = context.autoencoder_family() if context is not None else None
    if family is None:
        raise ValueError("the aeroblade check needs an autoencoder checkpoint (--autoencoder CKPT: a vae, hvae "
                         "or vqvae checkpoint, ideally the one the suspected latent model decodes through)")
    image = as_rgb(image)
    x = model_input(image, family.channels, family.resolution)
    _, err, label = reconstruction(family, x)
    mse = float(err.mean())
    rms = float(np.sqrt(mse))
    under = "" if label is None else f" (closest under class {family.class_names[label]!r})"
    sentence = (f"Through the autoencoder it comes back with a mean squared error of {mse:.5f} (RMS {rms:.1%} of "
                f"the pixel range){under}{resized_words(image, family.resolution)}; lower is more suspicious: "
                f"images its own decoder made come back almost unchanged.")
    return CheckResult("aeroblade", mse, sentence, map=err.sqrt().mean(0).numpy(),
                       map_title="reconstruction error |x - recon| (0-1 pixel units)",
                       details={"mse": mse, "rms": rms, "class": label, "model": str(context.autoencoder),
                                "resolution": int(family.resolution)})
