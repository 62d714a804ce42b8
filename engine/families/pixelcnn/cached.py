"""Incremental evaluation of a GatedPixelCNN for raster-order sampling, after Ramachandran et al.
2017, "Fast generation for convolutional autoregressive models": each layer's activations of the
finished rows and columns are cached, and a new pixel recomputes only the one output position per
layer that it feeds.

- Vertical stack: once a row r is final, every layer computes its output row r alone from its
  cached input rows r-k//2..r (zero rows above the image); the link into the horizontal stack for
  row r+1 is that output row through the 1x1 v_to_h. So the vertical stack costs one row per row.
- Horizontal stack: per pixel (i, j), every layer computes column j alone from its cached input
  columns j-k//2..j of row i (zero columns to the left), so a pixel costs one column per layer.

Every convolution runs on exactly the taps, weights and operand order of the full network's (the
masked weights are the modules' weight * mask), so the outputs match the uncached sampler's and
the same seeds draw the same pixels (tests/engine/test_pixelcnn.py checks it)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.families.pixelcnn.layers import GatedPixelCNN, gate


class _LayerWeights:
    """One gated layer's weights ready for single-row and single-column convolutions."""

    def __init__(self, layer, labels: torch.Tensor | None):
        v = layer.vertical
        self.v_weight, self.v_bias, self.v_pad = v.conv.weight, v.conv.bias, v.pad   # pad: left, right, top, bottom
        self.v_rows = v.conv.weight.shape[2]
        hz = layer.horizontal
        self.h_weight, self.h_bias = hz.conv.weight * hz.mask, hz.conv.bias
        self.h_width = hz.conv.weight.shape[3]
        self.out_weight, self.out_bias = layer.h_out.conv.weight * layer.h_out.mask, layer.h_out.conv.bias
        self.v_to_h = layer.v_to_h
        self.label_v, self.label_h = layer.label_biases(labels)
        self.residual = layer.residual


class CachedPixelCNN:
    """The network's outputs for one pixel at a time of a batch x (N, C, H, W) that is filled in
    raster order. finish_row(r) after row r is final (rows in order); pixel(i, j) after rows < i
    are finished and columns < j of row i were passed through pixel() (or skip-filled by it)."""

    def __init__(self, net: GatedPixelCNN, x: torch.Tensor, labels: torch.Tensor | None):
        self.net, self.x = net, x
        n, _, h, w = x.shape
        self.layers = [_LayerWeights(layer, labels) for layer in net.layers]
        opts = {"device": x.device, "dtype": x.dtype}
        # each layer's vertical input, zero-padded as VerticalConv pads it (top and both sides)
        self.v_in = [torch.zeros(n, lw.v_weight.shape[1], h + lw.v_pad[2], w + lw.v_pad[0] + lw.v_pad[1], **opts)
                     for lw in self.layers]
        # the link of row 0 sees only the zero row that shift_down puts above the image
        zero_row = torch.zeros(n, self.layers[0].v_weight.shape[0], 1, w, **opts)
        self.links = [lw.v_to_h(zero_row) for lw in self.layers]   # the current row's, (N, 2F, 1, W)
        self.rows_done = 0
        # each layer's horizontal input on the current row, zero-padded on the left
        self.h_in = [torch.zeros(n, lw.h_weight.shape[1], 1, w + lw.h_width - 1, **opts) for lw in self.layers]
        self.row = -1

    def finish_row(self, r: int) -> None:
        """Row r of x is final: run the vertical stack over it, giving the links into row r + 1."""
        if r != self.rows_done:
            raise ValueError(f"rows must be finished in order: row {r} after {self.rows_done} rows")
        v = self.x[:, :, r:r + 1]
        for l, lw in enumerate(self.layers):
            left, top = lw.v_pad[0], lw.v_pad[2]
            self.v_in[l][:, :, r + top:r + top + 1, left:left + v.shape[3]] = v
            window = self.v_in[l][:, :, r + top + 1 - lw.v_rows:r + top + 1]            # rows r-k//2..r
            v_feat = F.conv2d(window, lw.v_weight, lw.v_bias)                           # N, 2F, 1, W
            self.links[l] = lw.v_to_h(v_feat)                                           # row r + 1's link
            v = gate(v_feat + lw.label_v)
        self.rows_done = r + 1

    def pixel(self, i: int, j: int) -> torch.Tensor:
        """The outputs (N, C, params) of pixel (i, j) given x's rows < i and row i's columns <= j
        (those of pixel (i, j) itself only through the colour masks); caches column j of every layer."""
        if i != self.rows_done:
            raise ValueError(f"pixel of row {i} asked with {self.rows_done} rows finished")
        if i != self.row:
            for h_in in self.h_in:
                h_in.zero_()
            self.row = i
        # the image's columns of the first layer's window, as drawn by now (pixel (i, j) partly)
        first = max(0, j + 1 - self.layers[0].h_width)
        h = self.x[:, :, i:i + 1, first:j + 1]
        for l, lw in enumerate(self.layers):
            at = j + lw.h_width - 1                                                     # column j, padded
            self.h_in[l][:, :, :, at + 1 - h.shape[3]:at + 1] = h
            window = self.h_in[l][:, :, :, j:at + 1]                                    # columns j-k//2..j
            feat = F.conv2d(window, lw.h_weight, lw.h_bias) + self.links[l][:, :, :, j:j + 1] + lw.label_h
            h_new = F.conv2d(gate(feat), lw.out_weight, lw.out_bias)                    # N, F, 1, 1
            h = h + h_new if lw.residual else h_new
        # the 1x1 head through the modules themselves (the same operations as the full network's), so a
        # hook on the output layer sees one call per sub-pixel: the network evaluations counted
        out = self.net.out(F.relu(self.net.head(F.relu(h))))
        return out.view(out.shape[0], self.net.colours, self.net.params)
