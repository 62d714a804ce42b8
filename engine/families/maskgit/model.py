"""MaskGIT (Chang et al. 2022) over a frozen vqvae tokenizer's token grid: a bidirectional
transformer with a [MASK] token, learned positions and (class-conditional) a class token first,
label dropout for classifier-free guidance. Training masks ceil(cos(pi r / 2) * N) tokens at a
uniform ratio r and takes the cross-entropy on the masked positions; sampling decodes in K parallel
steps (schedule.py) and the tokens decode through the parent. Inpainting: a token is unknown when
any of its pixels is masked; the others are the image's own tokens and never change. Latent walks
run in the parent's pre-quantization space (parent_tokens.TokenizerLatents)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.family.base import Batch, StepContext
from engine.family.interfaces import Inpainter
from engine.family.noise import STEP_NOISE_SEED_OFFSET, RowGenerators
from engine.family.parent_tokens import TokenizerLatents
from engine.family.token_prior import TokenPrior
from engine.families.maskgit import SPEC
from engine.families.maskgit.schedule import decode, decoding_steps, training_mask
from engine.nn.token_transformer import TokenTransformer

# the confidence noise has its own stream, apart from the token draws of the same seed
CONFIDENCE_SEED_OFFSET = 2 * STEP_NOISE_SEED_OFFSET


class MaskGITFamily(TokenPrior, TokenizerLatents, Inpainter):
    name = SPEC.name
    inpaint_methods = SPEC.inpaint_methods

    def __init__(self, cfg, channels, resolution, class_names, *, parent):
        super().__init__(cfg, channels, resolution, class_names, parent=parent)
        m = cfg.model
        self.mask_id = self.num_codes
        self.guidance = self.num_classes > 0
        self.networks["transformer"] = TokenTransformer(
            self.num_codes + 1, self.num_codes, self.length, m.width, m.depth, m.heads,
            prefixes=self.num_classes + 1 if self.num_classes else 0, causal=False, dropout=m.dropout)
        self.init_ema()

    def logits(self, net, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """(B, L) tokens (mask_id where masked) -> (B, L, num_codes), the class token's output dropped."""
        out = net(x, labels)
        return out[:, 1:] if labels is not None else out

    # ---- training --------------------------------------------------------------------------------
    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        tokens = self.batch_tokens(batch)
        b, g = tokens.shape[0], ctx.generator
        ratios = torch.rand(b, generator=g, device=tokens.device)
        mask = training_mask(ratios, self.length, g)
        x = torch.where(mask, torch.full_like(tokens, self.mask_id), tokens)
        labels = self.dropped_labels(batch.labels, g)
        with ctx.autocast():
            logits = self.logits(self.networks["transformer"], x, labels)
        loss = F.cross_entropy(logits[mask].float(), tokens[mask])
        ctx.optimize("transformer", loss)
        return {"loss/ce": loss}

    # ---- sampling --------------------------------------------------------------------------------
    def guided(self, options) -> bool:
        return self.num_classes > 0 and float(options.guidance_scale) != 1.0

    def logits_fn(self, net, labels: torch.Tensor | None, scale: float):
        if labels is None or scale == 1.0:
            return lambda x: self.logits(net, x, labels)
        null = torch.full_like(labels, self.num_classes)

        def fn(x):
            # one batched pass for the conditional and unconditional logits
            c, u = self.logits(net, torch.cat([x, x]), torch.cat([labels, null])).float().chunk(2)
            return u + scale * (c - u)
        return fn

    def steps_per_batch(self, options) -> int:
        return decoding_steps(int(options.steps), self.length)

    def network_evaluations(self, options=None) -> int:
        opts = self.sample_options(options)
        return self.steps_per_batch(opts) * (2 if self.guided(opts) else 1)

    @torch.no_grad()
    def decode_masked(self, tokens, known, seeds, labels, options, *, use_ema: bool, progress=None, cancel=None,
                      step_offset: int = 0, step_total: int | None = None) -> torch.Tensor:
        """decode() with this model's network and image i's draws from seeds[i]."""
        net = self.nets(use_ema)["transformer"]
        was = net.training
        net.eval()
        try:
            lab = self.label_ids(labels, len(seeds))
            scale = float(options.guidance_scale) if self.guided(options) else 1.0
            draws = RowGenerators([int(s) + STEP_NOISE_SEED_OFFSET for s in seeds], self.device).generators
            conf = RowGenerators([int(s) + CONFIDENCE_SEED_OFFSET for s in seeds], self.device).generators
            total = step_total or decoding_steps(int(options.steps), int((~known).sum(1).max()))
            report = None if progress is None else (lambda t: progress(step_offset + t, total))
            return decode(self.logits_fn(net, lab, scale), tokens.to(self.device), known.to(self.device),
                          steps=int(options.steps), mask_id=self.mask_id, generators=draws,
                          confidence_generators=conf, schedule=options.schedule,
                          temperature=float(options.temperature), top_k=int(options.top_k),
                          remask_temperature=float(options.remask_temperature), progress=report, cancel=cancel)
        finally:
            net.train(was)

    def sample_tokens(self, seeds, labels, options, *, use_ema, progress=None, cancel=None, step_offset=0,
                      step_total=None) -> torch.Tensor:
        n = len(seeds)
        blank = torch.zeros(n, self.length, dtype=torch.long, device=self.device)
        return self.decode_masked(blank, torch.zeros_like(blank, dtype=torch.bool), seeds, labels, options,
                                  use_ema=use_ema, progress=progress, cancel=cancel, step_offset=step_offset,
                                  step_total=step_total)

    # ---- inpainting ---------------------------------------------------------------------------------
    def token_mask(self, mask: torch.Tensor, n: int) -> torch.Tensor:
        """Pixel mask (N or 1, 1, H, W) -> (N, L) bool: a token is unknown when any pixel it covers is
        masked (above 0)."""
        h, w = self.grid
        m = mask.float().expand(n, 1, *mask.shape[2:])
        cell = (m.shape[2] // h, m.shape[3] // w)
        return (F.max_pool2d(m, cell) > 0).reshape(n, -1)

    @torch.no_grad()
    def inpaint(self, images, mask, *, seeds, labels=None, options=None, inpaint_options=None, method=None,
                progress=None, cancel=None) -> torch.Tensor:
        """The image's tokens where the mask leaves them alone, the rest decoded by MaskGIT (image i
        draws with seeds[i]); decoded by the parent, then the unmasked pixels put back exactly (a
        soft mask blends)."""
        self.check_inpaint_method(method)
        self.inpaint_options_for(inpaint_options)
        opts = self.sample_options(options)
        n = images.shape[0]
        if len(seeds) != n:
            raise ValueError(f"inpaint: {len(seeds)} seeds for {n} images")
        x = images.float().clamp(-1, 1).cpu()
        unknown = self.token_mask(mask.cpu(), n).to(self.device)
        tokens = self.encode_to_tokens(x)
        filled = self.decode_masked(tokens, ~unknown, seeds, labels, opts, use_ema=True,
                                    progress=progress, cancel=cancel)
        out = self.decode_from_tokens(filled)
        m = mask.float().cpu().expand(n, 1, *mask.shape[2:])
        return torch.where(m > 0, x + m * (out - x), x)
