"""VAR, next-scale prediction (Tian et al. 2024): a transformer over the token maps of a frozen
multi-scale residual tokenizer (the vqvae parent, quantizer = "msrq"), all scales in one sequence
with block-causal attention (engine/families/var/layers.py). Training is teacher-forced: scale k's
input is the parent's code vectors of the true coarser maps, upsampled to the token grid, summed
and brought down to scale k's size (the map the tokenizer quantized scale k's residual against),
and the loss is the cross-entropy of every position's code. The dataset's token maps are encoded
once before training (cached in the run folder's encoded/, reused on resume).

Sampling draws one scale at a time, all its tokens in parallel (temperature, top-k, top-p;
classifier-free guidance on the logits with label dropout's null class), through a KV cache across
scales, then the parent decodes the maps: as many network passes as scales (twice under guidance).
Latent walks run in the parent's pre-quantization space (parent_tokens.TokenizerLatents): a seed's
latent is the sum over scales of its drawn maps' upsampled code vectors."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.core.schema import ConfigError
from engine.family.base import Batch, StepContext
from engine.family.interfaces import Conditional
from engine.family.parent import Parent
from engine.family.parent_tokens import TokenizedFamily, TokenizerLatents
from engine.family.progress import check_cancel
from engine.family.token_prior import filter_logits as filter_scaled_logits
from engine.families.var import SPEC
from engine.families.var.layers import NextScaleTransformer, accumulate, next_scale_inputs, scale_input

SAMPLE_BATCH = 256      # images per sampling pass


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Logits (..., V) with the codes outside the top k, and outside the smallest set whose
    probability reaches top_p (the most likely code always stays), set to -inf (the token priors'
    filter: sample_maps applies the temperature before)."""
    return filter_scaled_logits(logits, 1.0, top_k, top_p)


def draw(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """One code per position from probs (B, n, V), row i by inverse CDF on uniforms of generators[i]
    alone (so an image does not depend on its batch)."""
    cdf = probs.double().cpu().cumsum(-1)
    u = torch.stack([torch.rand(probs.shape[1], generator=g, dtype=torch.float64) for g in generators])
    # right=True: u lands in [cdf[j-1], cdf[j]), empty for a code of probability 0
    idx = torch.searchsorted(cdf, (u * cdf[..., -1]).unsqueeze(-1), right=True).squeeze(-1)
    return idx.clamp_(max=probs.shape[-1] - 1).to(probs.device)


class VARFamily(TokenizedFamily, Conditional, TokenizerLatents):
    name = SPEC.name

    def __init__(self, cfg, channels, resolution, class_names, *, parent: Parent):
        super().__init__(cfg, channels, resolution, class_names, parent=parent)
        tok = parent.family
        if not getattr(tok, "multi_scale", False):
            raise ConfigError(f"{parent.path}: a var model needs a multi-scale residual tokenizer (a vqvae with "
                              f"quantizer = 'msrq'); this one has quantizer = {tok.cfg.model.quantizer!r}")
        m = cfg.model
        self.sizes = [h for h, _ in tok.token_shapes]
        self.num_codes = tok.num_codes
        self.num_classes = len(class_names) if (m.class_conditional and len(class_names) > 1) else 0
        self.guidance = self.num_classes > 0 and m.label_dropout > 0
        code_dim = self.quantizer.vq.dim
        self.networks["transformer"] = NextScaleTransformer(self.sizes, self.num_codes, code_dim, m.width, m.depth,
                                                            m.heads, m.mlp_ratio, m.dropout, self.num_classes)
        self.init_ema()

    # ---- the parent's tokens and codebook --------------------------------------------------------
    @property
    def quantizer(self):
        """The parent's multi-scale quantizer (its averaged copy, which encode_tokens uses too)."""
        return self.parent.family.nets(True)["quantizer"]

    def embed_codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """A map of codes (B, s, s) -> their vectors (B, D, s, s), from the frozen codebook."""
        with torch.no_grad():
            return self.quantizer.vq.decode_tokens(tokens.to(self.device)).float()

    def split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """(B, L) -> one (B, s, s) map per scale."""
        return [flat[:, a:b].reshape(-1, s, s) for a, b, s in
                zip(self.transformer_starts[:-1], self.transformer_starts[1:], self.sizes)]

    @property
    def transformer_starts(self) -> list[int]:
        return self.networks["transformer"].starts

    @torch.no_grad()
    def encode_flat(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [-1, 1] -> the parent's token maps, flat (N, L), on the CPU."""
        return self.parent.family.flatten_tokens(self.parent.family.encode_tokens(images))

    def encode_to_tokens(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_flat(images).to(self.device)

    def dataset_tokens(self, images: torch.Tensor, flip: bool) -> torch.Tensor:
        x = images.float().div(127.5).sub(1.0)
        return self.encode_flat(x.flip(-1) if flip else x)

    def prepare_data(self, images, labels, *, cache_dir, data_config, hflip, say) -> None:
        key = self.encode_dataset(images, cache_dir=cache_dir, data_config=data_config, hflip=hflip,
                                  what="msrq-tokens")
        say(f"token maps of {len(images)} images ({self.tokens.shape[1]} tokens each, scales "
            f"{'x'.join(map(str, self.sizes))}) {'read from' if self.encoded_from_cache else 'encoded into'} "
            f"{cache_dir}/{key}.safetensors")

    def teacher_inputs(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Scales 1..'s inputs (B, L - s0^2, D) from the true maps (layers.next_scale_inputs)."""
        return next_scale_inputs(maps, self.embed_codes, self.sizes)

    # ---- labels: the label-dropout class is "no class" ---------------------------------------
    def null_label(self) -> int | None:
        return self.num_classes if self.guidance else None

    def unlabelled(self, n: int):
        return None if self.guidance else super().unlabelled(n)

    def _labels(self, labels, n: int) -> torch.Tensor:
        """The start-token index of each image: its class, or the null class (also the one class of
        an unconditional model)."""
        lab = self.label_tensor(labels, n)
        return lab if lab is not None else torch.full((n,), self.num_classes, dtype=torch.long, device=self.device)

    # ---- training --------------------------------------------------------------------------------
    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        flat = self.batch_tokens(batch)
        b, dev, g = flat.shape[0], flat.device, ctx.generator
        labels = torch.full((b,), self.num_classes, dtype=torch.long, device=dev)
        if self.num_classes:
            labels = batch.labels.to(dev)
            if self.guidance:
                drop = torch.rand(b, generator=g, device=dev) < self.cfg.model.label_dropout
                labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        inputs = self.teacher_inputs(self.split(flat))
        with ctx.autocast():
            logits = self.networks["transformer"](labels, inputs)
        loss = F.cross_entropy(logits.float().reshape(-1, self.num_codes), flat.reshape(-1))
        ctx.optimize("transformer", loss)
        return {"loss/ce": loss}

    # ---- sampling --------------------------------------------------------------------------------
    def network_evaluations(self, options=None) -> int:
        """One transformer pass per scale (a KV cache keeps the coarser scales), two under guidance."""
        opts = self.sample_options(options)
        guided = self.guidance and float(opts.guidance_scale) != 1.0
        return len(self.sizes) * (2 if guided else 1)

    @torch.no_grad()
    def sample_maps(self, net, labels: torch.Tensor, options, generators: list[torch.Generator], *,
                    cached: bool = True, progress=None, cancel=None) -> list[torch.Tensor]:
        """Draw the token maps of len(labels) images scale by scale: [(B, s, s)] coarse to fine.
        cached=False recomputes the whole prefix at every scale (the reference the cache must equal)."""
        b = labels.shape[0]
        null = torch.full_like(labels, self.num_classes)
        g = float(options.guidance_scale)
        guided = self.guidance and g != 1.0 and bool((labels != null).any())
        lab = torch.cat([labels, null]) if guided else labels
        caches = [[] for _ in net.blocks]
        f_hat, inputs, maps = None, [], []
        for k, s in enumerate(self.sizes):
            check_cancel(cancel)
            new = inputs[-1].repeat(2, 1, 1) if (guided and k) else (inputs[-1] if k else None)
            if cached:
                logits = net.step(k, lab, new, caches)
            else:
                prefix = torch.cat(inputs, 1) if inputs else None
                prefix = prefix.repeat(2, 1, 1) if (guided and prefix is not None) else prefix
                logits = net(lab, prefix, net.starts[k + 1])[:, net.starts[k]:]
            logits = logits.float()
            if guided:
                cond, uncond = logits.chunk(2)
                logits = torch.where((labels != null).view(-1, 1, 1), uncond + g * (cond - uncond), uncond)
            logits = filter_logits(logits / float(options.temperature), int(options.top_k), float(options.top_p))
            idx = draw(logits.softmax(-1), generators).view(b, s, s)
            maps.append(idx)
            if k + 1 < len(self.sizes):
                if f_hat is None:
                    grid = self.sizes[-1]
                    f_hat = torch.zeros(b, self.quantizer.vq.dim, grid, grid, device=self.device)
                f_hat = accumulate(f_hat, self.embed_codes(idx))
                inputs.append(scale_input(f_hat, self.sizes[k + 1]))
            if progress is not None:
                progress(k + 1)
        return maps

    @torch.no_grad()
    def seed_tokens(self, seeds: list[int], labels=None, use_ema: bool = True) -> torch.Tensor:
        """The maps drawn for each seed (image i from seeds[i], as generate draws it), flat (N, L)."""
        net = self.nets(use_ema)["transformer"]
        was_training = net.training
        net.eval()
        try:
            gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
            maps = self.sample_maps(net, self._labels(labels, len(seeds)), self.cfg.sampling, gens)
        finally:
            net.train(was_training)
        return self.parent.family.flatten_tokens(maps)

    @torch.no_grad()
    def generate(self, n, *, seed, labels, use_ema, options, progress, cancel) -> torch.Tensor:
        net = self.nets(use_ema)["transformer"]
        was_training = net.training
        net.eval()
        lab_all = self._labels(labels, n)
        total = len(self.sizes) * ((n + SAMPLE_BATCH - 1) // SAMPLE_BATCH)
        parts = []
        try:
            for i in range(0, n, SAMPLE_BATCH):
                k = min(SAMPLE_BATCH, n - i)
                gens = [torch.Generator().manual_seed(int(seed) + j) for j in range(i, i + k)]
                done = len(self.sizes) * (i // SAMPLE_BATCH)
                report = (lambda d, done=done: progress(done + d, total)) if progress is not None else None
                maps = self.sample_maps(net, lab_all[i:i + k], options, gens, progress=report, cancel=cancel)
                parts.append(self.parent.family.decode_tokens(maps))
        finally:
            net.train(was_training)
        return torch.cat(parts).float().clamp(-1, 1)
