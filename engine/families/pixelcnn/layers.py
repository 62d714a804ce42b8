"""Gated PixelCNN's network and output distributions (van den Oord et al. 2016, "Conditional Image
Generation with PixelCNN Decoders"; the mixture output from PixelCNN++, Salimans et al. 2017).

Causality, the one thing every layer here must get right: the prediction for sub-pixel (c, i, j)
may depend only on pixels of earlier rows, on earlier pixels of row i, and on the channels before c
of pixel (i, j) itself.
- The vertical stack's output at row i sees rows <= i (a (k//2+1) x k filter padded at the top). It
  reaches the horizontal stack only shifted down one row, so there it carries rows < i, from
  k//2 columns left to k//2 columns right of j on every layer: no blind spot above-right.
- The horizontal stack's filter is 1 x (k//2+1), over columns j-k//2..j of the same row. Its tap at
  column j, and every 1x1 convolution after it, is masked across colour groups: features are split
  into one contiguous group per image channel, and group c at pixel (i, j) may read input groups < c
  in the first layer (mask A: for grayscale the pixel itself is not seen) and groups <= c after it
  (mask B), so R is predicted first, G from R, B from R and G.
- So sampling is cheap per pixel: for row i the vertical stack runs once (on rows 0..i-1; its
  links into the horizontal stack are kept), then for each column j only the horizontal stack and
  the head run, on row i, columns 0..j (nothing pads on the right or the bottom).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.nn.likelihood import discretized_logistic_log_prob, to_levels

LEVELS = 256
MIN_LOG_SCALE = -7.0   # PixelCNN++'s floor on a logistic's log scale (a bin is 2/255 wide: ~e^-4.8)


def channel_groups(n: int, colours: int) -> torch.Tensor:
    """The colour group of each of n channels: contiguous blocks of n // colours. (n,) long."""
    return torch.arange(n) // (n // colours)


def colour_mask(out_groups: torch.Tensor, in_groups: torch.Tensor, include_own: bool) -> torch.Tensor:
    """(out, in) 1 where an output channel may read an input channel of the same pixel: an earlier
    colour group, and its own group when include_own (mask B) but not otherwise (mask A)."""
    out_g, in_g = out_groups[:, None], in_groups[None, :]
    return ((out_g > in_g) | (include_own & (out_g == in_g))).float()


def gate(x: torch.Tensor) -> torch.Tensor:
    """Gated activation tanh(a) * sigmoid(b) of the two halves of the channels. (N, 2F, H, W) -> (N, F, H, W)."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def shift_down(x: torch.Tensor) -> torch.Tensor:
    """Move every row down one (row 0 gets zeros): row i then carries only what rows < i saw."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


class VerticalConv(nn.Module):
    """The vertical stack's convolution: output row i sees input rows i-k//2..i and columns
    j-k//2..j+k//2 (a (k//2+1) x k filter, padded at the top and the sides)."""

    def __init__(self, in_channels: int, out_channels: int, k: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, (k // 2 + 1, k))
        self.pad = (k // 2, k // 2, k // 2, 0)   # left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad))


class ColourMaskedConv(nn.Module):
    """A convolution over the same row, columns j-(width-1)..j (padded on the left only), whose tap
    at column j (the pixel itself) is masked across colour groups; width 1 is a masked 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, width: int, in_groups: torch.Tensor,
                 out_groups: torch.Tensor, include_own: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, (1, width))
        mask = torch.ones(out_channels, in_channels, 1, width)
        mask[:, :, 0, -1] = colour_mask(out_groups, in_groups, include_own)
        self.register_buffer("mask", mask, persistent=False)   # derived from the shape: not in checkpoints
        self.pad = (width - 1, 0, 0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, self.pad), self.conv.weight * self.mask, self.conv.bias)


class GatedLayer(nn.Module):
    """One gated layer of both stacks (the paper's Fig. 2): vertical k x k (causal) conv to 2F
    features, a 1x1 link from them (shifted down) into the horizontal stack's 1 x k conv, the class
    as a learned bias on both, gated units, and a masked 1x1 conv with a residual on the horizontal
    stack (except in the first layer, whose input is the image)."""

    def __init__(self, in_channels: int, features: int, k: int, colours: int, num_classes: int, first: bool):
        super().__init__()
        in_groups = channel_groups(in_channels, colours)
        feat_groups = channel_groups(features, colours)
        gate_groups = torch.cat([feat_groups, feat_groups])   # both halves of 2F keep the group layout
        self.vertical = VerticalConv(in_channels, 2 * features, k)
        self.horizontal = ColourMaskedConv(in_channels, 2 * features, k // 2 + 1, in_groups, gate_groups,
                                           include_own=not first)
        self.v_to_h = nn.Conv2d(2 * features, 2 * features, 1)   # carries rows above only: needs no mask
        self.h_out = ColourMaskedConv(features, features, 1, feat_groups, feat_groups, include_own=True)
        self.label_bias = nn.Embedding(num_classes, 4 * features) if num_classes else None
        self.residual = not first

    def label_biases(self, labels: torch.Tensor | None):
        """(vertical, horizontal) per-class biases, each (N, 2F, 1, 1), or (0, 0) without classes."""
        if self.label_bias is None:
            return 0.0, 0.0
        return self.label_bias(labels)[:, :, None, None].chunk(2, dim=1)

    def vertical_pass(self, v: torch.Tensor, labels: torch.Tensor | None):
        """The vertical stack's step: (its next input (N, F, H, W), the link into the horizontal
        stack (N, 2F, H, W), which at row i carries only rows < i)."""
        v_feat = self.vertical(v)                                            # N, 2F, H, W
        link = self.v_to_h(shift_down(v_feat))
        return gate(v_feat + self.label_biases(labels)[0]), link

    def horizontal_pass(self, h: torch.Tensor, link: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The horizontal stack's step, given the link from the vertical stack: (N, F, H, W)."""
        h_feat = self.horizontal(h) + link + self.label_biases(labels)[1]   # N, 2F, H, W
        h_new = self.h_out(gate(h_feat))                                     # N, F, H, W
        return h + h_new if self.residual else h_new


class GatedPixelCNN(nn.Module):
    """Gated PixelCNN (van den Oord et al. 2016): a first gated layer reading the image with mask A,
    `layers - 1` more with mask B, then a two-layer masked 1x1 head giving `params` numbers per
    sub-pixel (256 logits, or a logistic mixture's parameters)."""

    def __init__(self, colours: int, features: int, layers: int, kernel_size: int, first_kernel_size: int,
                 params: int, num_classes: int = 0):
        super().__init__()
        if features % colours:
            raise ValueError(f"features ({features}) must be divisible by the image channels ({colours})")
        self.colours, self.params = colours, params
        self.layers = nn.ModuleList(
            GatedLayer(colours if i == 0 else features, features, first_kernel_size if i == 0 else kernel_size,
                       colours, num_classes, first=i == 0) for i in range(layers))
        feat_groups = channel_groups(features, colours)
        self.head = ColourMaskedConv(features, features, 1, feat_groups, feat_groups, include_own=True)
        self.out = ColourMaskedConv(features, colours * params, 1, feat_groups,
                                    channel_groups(colours * params, colours), include_own=True)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, C, H, W) in [-1, 1] -> (N, C, params, H, W)."""
        return self.horizontal_stack(x, self.links(x, labels), labels)

    def links(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The vertical stack's input to the horizontal stack, per layer (N, 2F, H, W): at row i it
        depends on rows < i only, so a sampler computes it once per row."""
        out, v = [], x
        for layer in self.layers:
            v, link = layer.vertical_pass(v, labels)
            out.append(link)
        return out

    def horizontal_stack(self, x: torch.Tensor, links: list[torch.Tensor],
                         labels: torch.Tensor | None = None) -> torch.Tensor:
        """The horizontal stack and the head over x (N, C, H', W') given the links cut to the same
        rows and columns -> (N, C, params, H', W'). It sees its own row up to the current column,
        so a sampler runs it on one row, columns 0..j."""
        h = x
        for layer, link in zip(self.layers, links):
            h = layer.horizontal_pass(h, link, labels)
        out = self.out(F.relu(self.head(F.relu(h))))
        n, _, hh, ww = out.shape
        return out.view(n, self.colours, self.params, hh, ww)


# ---- output distributions over the 256 levels of a sub-pixel --------------------------------
class SoftmaxOutput:
    """A free categorical over the 256 levels: 256 logits per sub-pixel (PixelCNN, van den Oord 2016)."""

    params = LEVELS

    def init_bias(self, bias: torch.Tensor) -> None:
        bias.data.zero_()   # with zeroed weights: uniform over the levels, exactly 8 bits/dim

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log P(x's level) for out (N, C, 256, H, W) and x (N, C, H, W) on the level grid -> (N, C, H, W)."""
        return F.log_softmax(out, dim=2).gather(2, to_levels(x).unsqueeze(2)).squeeze(2)

    def level_log_probs(self, out: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """log P of every level, (..., 256) from out (..., 256); the logits are divided by the temperature."""
        return F.log_softmax(out / temperature, dim=-1)


class LogisticMixtureOutput:
    """A mixture of K logistics binned to the 256 levels (PixelCNN++, Salimans et al. 2017): per
    sub-pixel K mixture logits, K means and K log scales, in that order."""

    def __init__(self, components: int):
        self.k = components
        self.params = 3 * components

    def init_bias(self, bias: torch.Tensor) -> None:
        """Spread the means over [-1, 1] with narrow scales: with zeroed weights the components start
        different (identical ones would get identical gradients and stay identical)."""
        k = self.k
        b = bias.data.view(-1, 3, k)   # (C, [logits, means, log scales], K)
        b[:, 0] = 0.0
        b[:, 1] = torch.linspace(-1 + 1 / k, 1 - 1 / k, k)
        b[:, 2] = math.log(1.0 / k)

    def split(self, out: torch.Tensor, dim: int):
        logits, means, log_scales = out.chunk(3, dim=dim)
        return F.log_softmax(logits, dim=dim), means, log_scales.clamp(min=MIN_LOG_SCALE)

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log P(x's level) = logsumexp_k(log w_k + log P_k(level)), out (N, C, 3K, H, W) -> (N, C, H, W)."""
        log_w, means, log_scales = self.split(out, dim=2)                   # each N, C, K, H, W
        per_component = discretized_logistic_log_prob(x.unsqueeze(2), means, log_scales)
        return torch.logsumexp(log_w + per_component, dim=2)

    def level_log_probs(self, out: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """log P of every level, (..., 256) from out (..., 3K); the temperature scales the logistics' scales."""
        log_w, means, log_scales = self.split(out, dim=-1)                  # each ..., K
        levels = torch.arange(LEVELS, device=out.device, dtype=out.dtype) / 127.5 - 1
        per_component = discretized_logistic_log_prob(levels, means.unsqueeze(-1),
                                                      (log_scales + math.log(temperature)).unsqueeze(-1))
        return torch.logsumexp(log_w.unsqueeze(-1) + per_component, dim=-2)  # ..., 256


def output_distribution(kind: str, components: int):
    return SoftmaxOutput() if kind == "softmax" else LogisticMixtureOutput(components)
