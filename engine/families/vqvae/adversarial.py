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
                    max_weight: float) -> torch.Tensor:
    """lambda = ||grad_{G_L} L_rec|| / (||grad_{G_L} L_GAN|| + delta), clamped to [0, max_weight] and
    detached (a weight, not a path for gradients); G_L is the decoder's last layer's weight. Both
    graphs are kept: the step's backward runs through them afterwards."""
    (g_rec,) = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)
    (g_gan,) = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)
    weight = g_rec.norm() / (g_gan.norm() + ADAPTIVE_EPS)
    return weight.clamp(0.0, max_weight).detach()


def feature_matching_loss(real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of the L1 distance between the discriminator's features of the real images
    (the target, no gradient) and of their reconstructions."""
    return torch.stack([F.l1_loss(f.float(), r.detach().float()) for r, f in zip(real_feats, fake_feats)]).mean()
