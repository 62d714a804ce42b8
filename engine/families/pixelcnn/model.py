"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders"):
an autoregressive model that gives every sub-pixel a distribution over its 256 levels given all
the sub-pixels before it in raster order, so the likelihood is exact.

Sampling is slow by nature: one network evaluation per pixel (per sub-pixel for colour). The
sampler caches every layer's finished rows and columns (cached.py, Ramachandran et al. 2017), so a
row costs one row of the vertical stack and a pixel one column of the horizontal stack, and draws
a mixture's level from its CDF at the bin edges (levels.py); both give exactly the pixels of the
uncached loop (uncached_draw_rows, kept as the reference). Measured for the pixelcnn-digits
architecture, batch of 50, one PyTorch thread, on a 2-core CPU shared with other jobs
(benchmarks/pixelcnn_sampling.py): 2.3-2.8x the uncached images/s in interleaved rounds. What is
left is the per-call cost of ~14 tiny oneDNN convolutions per pixel (60 % of the time) and the
level draws (30 %). A matmul route is 3.6x cheaper for the network but rounds differently (~1e-6);
guarding the draws against that sends ~10 % of sub-pixels back to the exact convolutions, nearly
every pixel of a batch, which measured slower (benchmarks/README.md, "Cached PixelCNN sampling")."""
from __future__ import annotations

import contextlib
from contextlib import contextmanager
from typing import Callable

import torch

from engine.nn.likelihood import bpd_discrete, dims, to_levels
from engine.family.base import Batch, Family, StepContext
from engine.family.interfaces import Conditional, Inpainter, Likelihood, PixelPredictor
from engine.families.pixelcnn.cached import CachedPixelCNN
from engine.families.pixelcnn.layers import GatedPixelCNN, output_distribution
from engine.families.pixelcnn.levels import draw_levels, inverse_cdf_levels
from engine.family.progress import Cancelled
from engine.family.noise import seeded_uniform_rows
from engine.core.schema import ConfigError
from engine.families.pixelcnn import SPEC

BPD_BATCH = 256   # images per forward pass when scoring bits/dim


@contextmanager
def one_thread():
    """Run PyTorch on one thread for a while: sampling makes thousands of passes too small to gain
    from a second thread, and handing each over costs more than it saves, far more when the cores
    are busy with other work (measured: 50 digits in 1.8 s on one thread, 28 s on two, on a 2-core
    CPU with two other jobs running)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class PixelCNNFamily(Family, Conditional, Likelihood, Inpainter, PixelPredictor):
    """Gated PixelCNN (van den Oord et al. 2016) with optional class conditioning (a learned
    per-class bias on every gate), a 256-way softmax or a discretized logistic mixture (PixelCNN++)
    per sub-pixel; exact bits/dim; raster-order sampling with a temperature; and completion of
    partly given images (Inpainter). Colour images are predicted R, then G given R, then B given
    R and G, through masks over colour groups of the features (pixelcnn_layers).

    Completion draws the masked sub-pixels in raster order, each from the model given everything
    before it: known pixels come from the image. Known pixels AFTER a masked one are kept in the
    result but cannot inform it (a PixelCNN sees only the past), so completion works best when the
    known part comes first, e.g. the rows above a line."""

    name = SPEC.name
    inpaint_methods = SPEC.inpaint_methods
    cached_sampling = True   # False: the uncached reference sampler (same pixels, several times slower)

    def __init__(self, cfg, channels, resolution, class_names):
        super().__init__(cfg, channels, resolution, class_names)
        m = cfg.model
        if m.hidden_channels % channels:
            raise ConfigError(f"model.hidden_channels = {m.hidden_channels} must be divisible by the image's "
                              f"{channels} channels (each colour channel gets its own share of the features)")
        self.num_classes = len(class_names) if (m.class_conditional and len(class_names) > 1) else 0
        self.dist = output_distribution(m.output, m.mixture_components)
        net = GatedPixelCNN(channels, m.hidden_channels, m.layers, m.kernel_size, m.first_kernel_size,
                            self.dist.params, self.num_classes)
        # zero last layer: every sub-pixel starts with the same distribution (uniform for the softmax)
        net.out.conv.weight.data.zero_()
        self.dist.init_bias(net.out.conv.bias)
        self.networks["pixelcnn"] = net
        self.init_ema()

    # ---- likelihood -----------------------------------------------------------------------------
    def nll(self, net, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """-log P(x) in nats per image, (N,), for x (N, C, H, W) on the 8-bit level grid."""
        out = net(x, labels).float()                          # N, C, params, H, W
        return -self.dist.log_prob(out, x).sum(dim=(1, 2, 3))

    @torch.no_grad()
    def bits_per_dim(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """Exact -log2 P(levels) per sub-pixel, averaged over the images, under the EMA weights."""
        net = self.nets(True)["pixelcnn"]
        was = net.training
        net.eval()
        try:
            x = to_levels(images).float().div(127.5).sub(1).to(self.device)
            lab = self._labels(labels, x.shape[0])
            nll = torch.cat([self.nll(net, x[i:i + BPD_BATCH], None if lab is None else lab[i:i + BPD_BATCH])
                             for i in range(0, x.shape[0], BPD_BATCH)])
        finally:
            net.train(was)
        return float(bpd_discrete(nll, dims(x)).mean())

    @torch.no_grad()
    def level_log_probs(self, images: torch.Tensor, labels=None) -> torch.Tensor:
        """log P of all 256 levels of every sub-pixel given those before it (PixelPredictor), under
        the EMA weights: (N, C, H, W, 256) on the CPU."""
        net = self.nets(True)["pixelcnn"]
        was = net.training
        net.eval()
        try:
            x = to_levels(images).float().div(127.5).sub(1).to(self.device)
            out = net(x, self._labels(labels, x.shape[0])).float()          # N, C, params, H, W
            return self.dist.level_log_probs(out.permute(0, 1, 3, 4, 2)).cpu()
        finally:
            net.train(was)

    def _labels(self, labels, n: int) -> torch.Tensor | None:
        if torch.is_tensor(labels):
            labels = labels.tolist()
        return self.label_tensor(labels, n)

    # ---- training -------------------------------------------------------------------------------
    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        x = batch.images
        labels = batch.labels if self.num_classes else None
        with ctx.autocast():
            nll = self.nll(self.networks["pixelcnn"], x, labels)
        loss = bpd_discrete(nll, dims(x)).mean()   # bits/dim of this batch: the loss is the likelihood
        ctx.optimize("pixelcnn", loss)
        return {"loss/bpd": loss}

    # ---- sampling and completion ------------------------------------------------------------------
    def network_evaluations(self, options=None) -> int:
        """One pass per sub-pixel, H x W x C: each is drawn given all before it (a pass is the
        horizontal stack on the pixel's row; the vertical stack runs once per row besides)."""
        return self.resolution * self.resolution * self.channels

    def generate(self, n, *, seed, labels, use_ema, options, progress, cancel) -> torch.Tensor:
        x = torch.zeros(n, self.channels, self.resolution, self.resolution, device=self.device)
        todo = torch.ones(n, 1, self.resolution, self.resolution, dtype=torch.bool, device=self.device)
        uniforms = seeded_uniform_rows(list(range(int(seed), int(seed) + n)), tuple(x.shape[1:]))
        return self._draw(x, todo, labels, options, uniforms=uniforms, use_ema=use_ema, progress=progress,
                          cancel=cancel)

    def inpaint(self, images: torch.Tensor, mask: torch.Tensor, *, seeds: list[int], labels=None, options=None,
                inpaint_options=None, method: str | None = None, progress=None, cancel=None) -> torch.Tensor:
        """Raster-order completion: images (N, C, H, W) in [-1, 1], mask (N or 1, 1, H, W), pixels
        >= 0.5 drawn anew (a sub-pixel cannot be half drawn; the caller's composite blends a soft
        edge). Unmasked pixels come back exactly as given; image i draws with seeds[i]."""
        self.check_inpaint_method(method)
        self.inpaint_options_for(inpaint_options)
        opts = self.sample_options(options)
        images = images.float().cpu()
        if len(seeds) != images.shape[0]:
            raise ValueError(f"inpaint: {len(seeds)} seeds for {images.shape[0]} images")
        todo = (mask.float() >= 0.5).expand(images.shape[0], 1, *images.shape[2:]).to(self.device)
        uniforms = seeded_uniform_rows(seeds, tuple(images.shape[1:]))
        drawn = self._draw(images.to(self.device).clone(), todo, labels, opts, uniforms=uniforms, use_ema=True,
                           progress=progress, cancel=cancel)
        return torch.where(todo.cpu(), drawn, images)

    @torch.no_grad()
    def _draw(self, x: torch.Tensor, todo: torch.Tensor, labels, options, *, uniforms: torch.Tensor, use_ema: bool,
              progress: Callable[[int, int], None] | None, cancel: Callable[[], bool] | None) -> torch.Tensor:
        """Draw the sub-pixels of x (N, C, H, W) where todo (N, 1, H, W) is set, in raster order and
        R, G, B within a pixel, each given all before it. Returns the images on the CPU in [-1, 1]."""
        net = self.nets(use_ema)["pixelcnn"]
        was = net.training
        net.eval()
        try:
            with one_thread() if self.device.type == "cpu" else contextlib.nullcontext():
                self._draw_rows(net, x, todo, self._labels(labels, x.shape[0]), uniforms,
                                float(options.temperature), progress, cancel)
        finally:
            net.train(was)
        return x.float().clamp(-1, 1).cpu()

    def _draw_rows(self, net, x, todo, lab, uniforms, temperature, progress, cancel) -> None:
        """_draw's loop, filling x in place; progress after each row, cancel checked before each.
        Each layer's finished rows and columns are cached (CachedPixelCNN), so a pixel costs one
        column per layer; uncached_draw_rows is the same loop re-running the stacks, kept as the
        reference that gives the same pixels (cached_sampling = False selects it)."""
        if not self.cached_sampling:
            self.uncached_draw_rows(net, x, todo, lab, uniforms, temperature, progress, cancel)
            return
        _, c, h, w = x.shape
        rows = [i for i in range(h) if todo[:, :, i].any()]
        cache = CachedPixelCNN(net, x, lab)
        for done, i in enumerate(rows):
            if cancel is not None and cancel():
                raise Cancelled()
            while cache.rows_done < i:                       # rows above are final: their vertical stack
                cache.finish_row(cache.rows_done)
            last = int(todo[:, 0, i].any(0).nonzero().max())  # no column after the last drawn one is needed
            for j in range(last + 1):
                which = todo[:, 0, i, j].nonzero().squeeze(1)
                if which.numel() == 0:
                    cache.pixel(i, j)                        # given pixel: only fills the caches
                    continue
                for ch in range(c):
                    self._draw_subpixel(x, cache.pixel(i, j)[which, ch].float(), which, ch, i, j, uniforms,
                                        temperature, quick=True)
            if progress is not None:
                progress(done + 1, len(rows))

    def uncached_draw_rows(self, net, x, todo, lab, uniforms, temperature, progress, cancel) -> None:
        """The reference loop: per row the vertical stack over all rows so far, per sub-pixel the
        horizontal stack over the row's columns 0..j."""
        _, c, h, w = x.shape
        rows = [i for i in range(h) if todo[:, :, i].any()]
        for done, i in enumerate(rows):
            if cancel is not None and cancel():
                raise Cancelled()
            # the vertical stack's links into row i depend on rows < i only: once per row
            links = [link[:, :, i:i + 1] for link in net.links(x[:, :, :i + 1], lab)]   # N, 2F, 1, W each
            for j in range(w):
                which = todo[:, 0, i, j].nonzero().squeeze(1)   # the images that draw this pixel
                if which.numel() == 0:
                    continue
                sub_lab = None if lab is None else lab[which]
                row_links = [link[which, :, :, :j + 1] for link in links]
                for ch in range(c):
                    # the horizontal stack on row i, columns 0..j: all that pixel (i, j) needs
                    out = net.horizontal_stack(x[which, :, i:i + 1, :j + 1], row_links, sub_lab)
                    self._draw_subpixel(x, out[:, ch, :, 0, j].float(), which, ch, i, j, uniforms, temperature,
                                        quick=False)
            if progress is not None:
                progress(done + 1, len(rows))

    def _draw_subpixel(self, x, out, which, ch, i, j, uniforms, temperature, quick: bool) -> None:
        """Draw sub-pixel (ch, i, j) of the images `which` from their outputs out (k, params) by the
        inverse CDF at their seeded uniforms (levels.py; quick: its faster route to the same level),
        writing the level into x."""
        u = uniforms[which.cpu(), ch, i, j]
        level = (draw_levels if quick else inverse_cdf_levels)(self.dist, out, u, temperature)
        x[which, ch, i, j] = (level.float() / 127.5 - 1).to(x.device)
