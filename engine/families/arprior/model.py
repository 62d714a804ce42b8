"""The AR prior over a frozen vqvae tokenizer's codes (VQ-VAE's PixelCNN prior and VQGAN's
transformer, van den Oord et al. 2017, Esser et al. 2021, as a small GPT): the token grid in raster
order after a class token (label dropout gives a "no class" one, which is the start token of an
unconditional model), trained with next-token cross-entropy. Sampling draws one token per pass
with temperature, top-k and top-p, through a KV cache (each pass runs only the new token); the
uncached path, which re-runs the whole prefix, draws the same tokens and is kept for the tests.
Classifier-free guidance (`guidance_scale`) mixes each pass's logits with the "no class" ones,
u + s (c - u), both halves of one batched pass sharing the cache (twice the work per token).
Latent walks run in the parent's pre-quantization space (parent_tokens.TokenizerLatents)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.family.base import Batch, StepContext
from engine.family.noise import STEP_NOISE_SEED_OFFSET, RowGenerators
from engine.family.progress import check_cancel
from engine.family.parent_tokens import TokenizerLatents
from engine.family.token_prior import TokenPrior, draw, filter_logits, row_uniforms
from engine.families.arprior import SPEC
from engine.nn.token_transformer import TokenTransformer


class ARPriorFamily(TokenPrior, TokenizerLatents):
    name = SPEC.name

    def __init__(self, cfg, channels, resolution, class_names, *, parent):
        super().__init__(cfg, channels, resolution, class_names, parent=parent)
        m = cfg.model
        self.networks["transformer"] = TokenTransformer(
            self.num_codes, self.num_codes, self.length, m.width, m.depth, m.heads,
            prefixes=self.num_classes + 1, causal=True, dropout=m.dropout)
        self.guidance = self.num_classes > 0 and m.label_dropout > 0
        self.init_ema()

    def first_tokens(self, labels: torch.Tensor | None, n: int) -> torch.Tensor:
        """The token before the grid: the class, or "no class" (the start token)."""
        return labels if labels is not None else torch.full((n,), self.num_classes, dtype=torch.long,
                                                            device=self.device)

    def logits(self, net, tokens: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Teacher-forced: tokens (B, L) -> (B, L, num_codes); position i predicts token i from
        the first token and tokens[:i] only."""
        return net(tokens[:, :-1], self.first_tokens(labels, tokens.shape[0]))

    # ---- training --------------------------------------------------------------------------------
    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        tokens = self.batch_tokens(batch)
        labels = self.dropped_labels(batch.labels, ctx.generator)
        with ctx.autocast():
            logits = self.logits(self.networks["transformer"], tokens, labels)
        loss = F.cross_entropy(logits.float().reshape(-1, self.num_codes), tokens.reshape(-1))
        ctx.optimize("transformer", loss)
        return {"loss/ce": loss}

    # ---- sampling --------------------------------------------------------------------------------
    def steps_per_batch(self, options) -> int:
        return self.length

    def guided(self, options) -> bool:
        return self.guidance and float(options.guidance_scale) != 1.0

    def network_evaluations(self, options=None) -> int:
        # one pass per token (the cache keeps the prefix's keys and values), two under guidance
        return self.length * (2 if self.guided(self.sample_options(options)) else 1)

    @torch.no_grad()
    def sample_tokens(self, seeds, labels, options, *, use_ema, progress=None, cancel=None, step_offset=0,
                      step_total=None, cached: bool = True) -> torch.Tensor:
        """(len(seeds), L) tokens drawn in raster order, image i's draws from seeds[i]. cached=False
        re-runs the whole prefix for every token (quadratic; the same draws)."""
        net = self.nets(use_ema)["transformer"]
        was = net.training
        net.eval()
        try:
            n = len(seeds)
            first = self.first_tokens(self.label_ids(labels, n), n)
            null = torch.full_like(first, self.num_classes)
            scale = float(options.guidance_scale)
            guided = self.guided(options) and bool((first != null).any())
            if guided:   # rows [0, n) conditional, [n, 2n) "no class": one batched pass for both
                first = torch.cat([first, null])
            gens = RowGenerators([int(s) + STEP_NOISE_SEED_OFFSET for s in seeds], self.device).generators
            x = torch.zeros(first.shape[0], 0, dtype=torch.long, device=self.device)
            cache = net.new_cache() if cached else None
            total = step_total or self.length
            for i in range(self.length):
                check_cancel(cancel)
                if cache is None:
                    out = net(x, first)
                else:
                    out = net(x[:, -1:] if i else x, first if i == 0 else None, cache)
                last = out[:, -1].float()
                if guided:
                    c, u = last.chunk(2)
                    # a row asking for no class keeps its unconditional logits
                    last = torch.where((first[:n] != null[:n])[:, None], u + scale * (c - u), u)
                logits = filter_logits(last, float(options.temperature), int(options.top_k), float(options.top_p))
                token = draw(logits, row_uniforms(gens, (self.num_codes,), self.device))
                x = torch.cat([x, (token.repeat(2) if guided else token)[:, None]], 1)
                if progress is not None:
                    progress(step_offset + i + 1, total)
            return x[:n]
        finally:
            net.train(was)
