"""VQGAN-lite's losses (Esser et al. 2021, "Taming Transformers"): hinge losses for D and the
decoder, the adaptive weight that balances the adversarial gradient against the reconstruction
gradient at the decoder's last layer, and feature matching in the discriminator's own features."""
from __future__ import annotations

import torch
import torch.nn.functional as F

ADAPTIVE_EPS = 1e-4     # the paper's delta: keeps the weight finite when the GAN gradient vanishes


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """D's hinge loss on patch scores: E[relu(1 - D(x))] + E[relu(1 + D(x_rec))]."""
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """The decoder's side of the hinge game: -E[D(x_rec)]."""
    return -fake.mean()


def adaptive_weight(rec_loss: torch.Tensor, gan_loss: torch.Tensor, last_layer: torch.Tensor,
                    max_weight: float, scale: float = 1.0) -> torch.Tensor:
    """lambda = ||grad_{G_L} L_rec|| / (||grad_{G_L} L_GAN|| + delta), clamped to [0, max_weight] and
    detached (a weight, not a path for gradients); G_L is the decoder's last layer's weight. Both
    graphs are kept: the step's backward runs through them afterwards. `scale` (fp16's loss scale)
    multiplies both losses and delta, so small gradients do not underflow and lambda is unchanged;
    a gradient that overflows anyway gives no adversarial term (0) rather than a NaN."""
    (g_rec,) = torch.autograd.grad(rec_loss * scale, last_layer, retain_graph=True)
    (g_gan,) = torch.autograd.grad(gan_loss * scale, last_layer, retain_graph=True)
    weight = g_rec.float().norm() / (g_gan.float().norm() + ADAPTIVE_EPS * scale)
    return torch.nan_to_num(weight, nan=0.0).clamp(0.0, max_weight).detach()


def feature_matching_loss(real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of the L1 distance between the discriminator's features of the real images
    (the target, no gradient) and of their reconstructions."""
    return torch.stack([F.l1_loss(f.float(), r.detach().float()) for r, f in zip(real_feats, fake_feats)]).mean()
