"""The invertible layers of Glow (Kingma & Dhariwal 2018) and RealNVP (Dinh et al. 2017).

Every layer maps (N, C, H, W) to the same shape: `forward(x) -> (y, logdet)`, with logdet (N,) the
log |det dy/dx| of each image, and `reverse(y) -> x` its exact inverse."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

LOG_SIGMOID_2 = math.log(1 / (1 + math.exp(-2.0)))   # log sigmoid(2): an affine coupling's scale at init


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 4C, H/2, W/2): each 2x2 block becomes 4 channels (volume-preserving)."""
    n, c, h, w = x.shape
    x = x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(n, c * 4, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """The inverse of squeeze: (N, 4C, H, W) -> (N, C, 2H, 2W)."""
    n, c, h, w = x.shape
    x = x.view(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(n, c // 4, h * 2, w * 2)


class ActNorm(nn.Module):
    """Per-channel scale and bias (Glow §3.1), initialised from data so that the first batch comes
    out with zero mean and unit variance per channel. The `initialized` buffer is saved with the
    weights, so a resumed run does not initialise again."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))
        self.init_from_data = False   # set by Glow.data_init for one forward pass

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = (x - mean).pow(2).mean(dim=(0, 2, 3), keepdim=True).sqrt()   # biased: exactly unit variance
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + 1e-6))
        self.initialized.fill_(True)

    def forward(self, x):
        if self.init_from_data:
            self.initialize(x)
        y = (x + self.bias) * self.log_scale.exp()
        return y, self.log_scale.sum() * x.shape[2] * x.shape[3] * x.new_ones(x.shape[0])

    def reverse(self, y):
        return y * torch.exp(-self.log_scale) - self.bias


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution (Glow §3.2): a learned C x C channel mixing, initialised to a
    random rotation. With `lu`, W = P L (U + diag(sign(s) exp(log|s|))) with P fixed, so the
    log-determinant is sum(log|s|) instead of a slogdet of W."""

    def __init__(self, channels: int, lu: bool = True):
        super().__init__()
        self.lu = lu
        w = torch.linalg.qr(torch.randn(channels, channels))[0]   # C, C orthogonal: |det| = 1
        if not lu:
            self.weight = nn.Parameter(w)
            return
        p, lower, upper = torch.linalg.lu(w)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(s.abs()))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1), persistent=False)
        self.register_buffer("eye", torch.eye(channels), persistent=False)

    def weight_and_logdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        """W (C, C) and log |det W|."""
        if not self.lu:
            return self.weight, torch.linalg.slogdet(self.weight)[1]
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * self.log_s.exp())
        return self.perm @ lower @ upper, self.log_s.sum()

    def forward(self, x):
        w, logdet = self.weight_and_logdet()
        y = F.conv2d(x, w.view(*w.shape, 1, 1))
        return y, logdet * x.shape[2] * x.shape[3] * x.new_ones(x.shape[0])

    def reverse(self, y):
        w, _ = self.weight_and_logdet()
        w_inv = torch.linalg.inv(w)
        return F.conv2d(y, w_inv.view(*w_inv.shape, 1, 1))


class ZeroConv2d(nn.Module):
    """3x3 convolution initialised to output zeros, with a learned per-channel output scale
    exp(3 * logs) (Glow's Conv2dZeros): the last layer of coupling networks and priors, so that
    every coupling starts as the identity and every prior as N(0, I)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.logs = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x):
        return self.conv(x) * torch.exp(self.logs * 3)


class CouplingNet(nn.Sequential):
    """The coupling's CNN (Glow's NN()): 3x3 conv, ReLU, 1x1 conv, ReLU, zero-initialised 3x3 conv."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int):
        super().__init__(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(hidden, hidden, 1), nn.ReLU(), ZeroConv2d(hidden, out_channels))


class Coupling(nn.Module):
    """Affine (Glow, RealNVP) or additive (NICE) coupling: one half of the values passes unchanged
    and sets a shift t and a scale s for the other half, y_b = (x_b + t) * s. The halves are split
    by channel (Glow) or by a checkerboard of pixels (RealNVP); `parity` swaps the halves, so that
    consecutive couplings change different values. The scale is Glow's sigmoid(h + 2), divided by
    sigmoid(2) so that the zero-initialised network makes the layer exactly the identity."""

    def __init__(self, channels: int, hidden: int, *, mask: str = "channel", parity: int = 0, additive: bool = False):
        super().__init__()
        self.mask_kind, self.parity, self.additive = mask, parity, additive
        self.half = channels // 2
        if mask == "channel":
            n_in, n_out = self.half, channels - self.half
        else:  # checkerboard: the net sees every channel with the changing pixels zeroed
            n_in, n_out = channels, channels
        self.net = CouplingNet(n_in, n_out if additive else 2 * n_out, hidden)

    def _checkerboard(self, x: torch.Tensor) -> torch.Tensor:
        """1 where values pass unchanged: (1, 1, H, W)."""
        h, w = x.shape[2:]
        ij = torch.arange(h, device=x.device).view(-1, 1) + torch.arange(w, device=x.device).view(1, -1)
        return ((ij + self.parity) % 2 == 0).to(x.dtype).view(1, 1, h, w)

    def _shift_log_scale(self, x_kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.net(x_kept)
        if self.additive:
            return h, None
        shift, raw = h[:, 0::2], h[:, 1::2]
        return shift, F.logsigmoid(raw + 2.0) - LOG_SIGMOID_2

    def forward(self, x):
        if self.mask_kind == "channel":
            a, b = self._halves(x)
            shift, log_s = self._shift_log_scale(a)
            if log_s is None:
                return self._join(a, b + shift), x.new_zeros(x.shape[0])
            return self._join(a, (b + shift) * log_s.exp()), log_s.flatten(1).sum(1)
        keep = self._checkerboard(x)
        shift, log_s = self._shift_log_scale(x * keep)
        if log_s is None:
            return x + (1 - keep) * shift, x.new_zeros(x.shape[0])
        log_s = log_s * (1 - keep)   # kept pixels: scale 1
        return keep * x + (1 - keep) * (x + shift) * log_s.exp(), log_s.flatten(1).sum(1)

    def reverse(self, y):
        if self.mask_kind == "channel":
            a, b = self._halves(y)
            shift, log_s = self._shift_log_scale(a)
            return self._join(a, (b if log_s is None else b * torch.exp(-log_s)) - shift)
        keep = self._checkerboard(y)
        shift, log_s = self._shift_log_scale(y * keep)
        if log_s is None:
            return y - (1 - keep) * shift
        return keep * y + (1 - keep) * (y * torch.exp(-log_s) - shift)

    def _halves(self, x):
        a, b = x[:, :self.half], x[:, self.half:]
        return (b, a) if self.parity else (a, b)   # (kept, changed)

    def _join(self, kept, changed):
        return torch.cat([changed, kept] if self.parity else [kept, changed], dim=1)


class FlowStep(nn.Module):
    """One step of flow: ActNorm, then channel mixing (invertible 1x1 conv, or none for RealNVP),
    then a coupling."""

    def __init__(self, channels: int, hidden: int, *, invertible_conv: str = "lu", mask: str = "channel",
                 parity: int = 0, additive: bool = False):
        super().__init__()
        layers = [ActNorm(channels)]
        if invertible_conv != "none":
            layers.append(InvConv1x1(channels, lu=invertible_conv == "lu"))
        layers.append(Coupling(channels, hidden, mask=mask, parity=parity, additive=additive))
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def reverse(self, y):
        for layer in reversed(self.layers):
            y = layer.reverse(y)
        return y


def gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, exp(log_std)^2) summed over each image's values: (N,)."""
    lp = -0.5 * math.log(2 * math.pi) - log_std - 0.5 * ((z - mean) * torch.exp(-log_std)) ** 2
    return lp.flatten(1).sum(1)


class LearnedPrior(nn.Module):
    """A diagonal Gaussian prior over one scale's latents (C, H, W). Split priors (Glow §3.3's
    multi-scale split) take mean and log-std from the half that stays in the flow, through a
    zero-initialised conv; the top prior learns them per position. With classes, a learned
    per-class offset for every position (zero at init) is added to both: unlike Glow's per-channel
    offset, it can place a class's strokes, which a short run needs. At init every prior is N(0, I)."""

    def __init__(self, channels: int, size: int, *, cond_channels: int = 0, num_classes: int = 0):
        super().__init__()
        self.channels = channels
        if cond_channels:
            self.conv = ZeroConv2d(cond_channels, 2 * channels)
        else:
            self.top = nn.Parameter(torch.zeros(1, 2 * channels, size, size))
        if num_classes:
            self.class_offset = nn.Parameter(torch.zeros(num_classes, 2 * channels, size, size))

    def forward(self, n: int, cond: torch.Tensor | None, labels: torch.Tensor | None):
        """(mean, log_std), each (n, C, H, W)."""
        h = self.conv(cond) if hasattr(self, "conv") else self.top.expand(n, -1, -1, -1)
        if labels is not None and hasattr(self, "class_offset"):
            h = h + self.class_offset[labels]
        return h[:, :self.channels], h[:, self.channels:]
