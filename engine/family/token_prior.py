"""What the priors over a tokenizer's codes (MaskGIT, the AR prior) share: the vqvae parent (a vq or
fsq tokenizer with one token grid; a multi-scale one is VAR's) and the dataset's token grids encoded
once and cached (both as for VAR: engine/family/parent_tokens.py), class labels with a "no class"
label for label dropout, per-image random draws and logit filtering (temperature, top-k, top-p).
Their latent space is the parent's (parent_tokens.TokenizerLatents): a prior implements seed_tokens
by drawing its tokens."""
from __future__ import annotations

import torch

from engine.core.schema import ConfigError
from engine.family.interfaces import Conditional
from engine.family.parent import Parent
from engine.family.parent_tokens import TokenizedFamily

SAMPLE_BATCH = 256


def row_uniforms(generators: list[torch.Generator], shape: tuple[int, ...], device) -> torch.Tensor:
    """(len(generators), *shape) uniform in (0, 1), row i from generator i alone."""
    u = torch.stack([torch.rand(shape, generator=g, device=g.device) for g in generators]).to(device)
    return u.clamp(1e-10, 1 - 1e-7)


def gumbel(u: torch.Tensor) -> torch.Tensor:
    return -torch.log(-torch.log(u))


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Logits (..., V) divided by the temperature, all but the top_k largest (0 = all) and outside
    the smallest set whose probability reaches top_p (1 = all) set to -inf."""
    logits = logits.float() / temperature
    v = logits.shape[-1]
    if 0 < top_k < v:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs        # probability of the tokens ranked above
        drop = before >= top_p                   # the first token is always kept
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def draw(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """A categorical draw from filtered logits (..., V) by the Gumbel-max trick on uniforms u of the
    same shape (so per-image generators decide it)."""
    return (logits + gumbel(u)).argmax(-1)


class TokenPrior(TokenizedFamily, Conditional):
    """Base of the token priors. Subclasses build self.networks, train on self.batch_tokens(batch)
    ((B, length) tokens) and sample token sequences (N, length) with sample_tokens."""

    def __init__(self, cfg, channels, resolution, class_names, *, parent: Parent):
        super().__init__(cfg, channels, resolution, class_names, parent=parent)
        tok = parent.family
        if getattr(tok, "multi_scale", False):
            raise ConfigError(f"{parent.path}: a {self.name} prior needs one token grid (a vq or fsq tokenizer); "
                              f"this tokenizer is msrq (multi-scale tokens, for a next-scale VAR prior)")
        self.num_codes = int(tok.num_codes)
        self.grid = tuple(tok.token_shapes[0])
        self.length = self.grid[0] * self.grid[1]
        m = cfg.model
        self.num_classes = len(class_names) if (m.class_conditional and len(class_names) > 1) else 0

    # ---- the parent's tokens -----------------------------------------------------------------------
    def encode_to_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [-1, 1] -> (N, length) code indices (raster order) on the device."""
        return self.parent.family.encode_tokens(images.to(self.device).float()).reshape(len(images), -1).to(self.device)

    def decode_from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, length) code indices -> images (N, C, H, W) in [-1, 1] on the CPU."""
        return self.parent.family.decode_tokens(tokens.reshape(-1, *self.grid)).float().clamp(-1, 1).cpu()

    def dataset_tokens(self, images: torch.Tensor, flip: bool) -> torch.Tensor:
        x = images.to(self.device).float().div(127.5).sub(1.0)
        return self.encode_to_tokens(x.flip(-1) if flip else x).cpu()

    def prepare_data(self, images, labels, *, cache_dir, data_config, hflip, say) -> None:
        """The dataset's token grids, encoded by the parent once (cached under its hash and the data
        section; a resumed run reads the file)."""
        key = self.encode_dataset(images, cache_dir=cache_dir, data_config=data_config, hflip=hflip, what="tokens")
        used = int(self.tokens.unique().numel())
        say(f"token grids ({self.grid[0]}x{self.grid[1]}) of {len(images)} images "
            f"{'read from' if self.encoded_from_cache else 'encoded into'} {cache_dir}/{key}.safetensors; "
            f"{used} of {self.num_codes} codes occur")

    # ---- labels: the label-dropout token is "no class" ---------------------------------------------
    def null_label(self) -> int | None:
        return self.num_classes

    def unlabelled(self, n: int) -> None:
        return None

    def label_ids(self, labels, n: int) -> torch.Tensor | None:
        """(n,) labels on the device, "no class" where none is asked; None for an unconditional model."""
        if not self.num_classes:
            return None
        lab = self.labels_on_device(labels, n)
        return lab if lab is not None else torch.full((n,), self.num_classes, dtype=torch.long, device=self.device)

    def dropped_labels(self, labels: torch.Tensor, generator) -> torch.Tensor | None:
        """A training batch's labels with label_dropout of them replaced by "no class"."""
        if not self.num_classes:
            return None
        labels = labels.to(self.device)
        drop = torch.rand(labels.shape, generator=generator, device=self.device) < self.cfg.model.label_dropout
        return torch.where(drop, torch.full_like(labels, self.num_classes), labels)

    # ---- sampling -----------------------------------------------------------------------------------
    def sample_tokens(self, seeds: list[int], labels, options, *, use_ema: bool, progress=None, cancel=None,
                      step_offset: int = 0, step_total: int | None = None) -> torch.Tensor:
        raise NotImplementedError

    def seed_tokens(self, seeds: list[int], labels=None, use_ema: bool = True) -> torch.Tensor:
        """The tokens drawn for each seed with the run's sample options (TokenizerLatents' seeds)."""
        return self.sample_tokens(list(seeds), labels, self.cfg.sampling, use_ema=use_ema)

    def steps_per_batch(self, options) -> int:
        raise NotImplementedError

    @torch.no_grad()
    def generate(self, n, *, seed, labels, use_ema, options, progress, cancel) -> torch.Tensor:
        lab = labels if labels is None else list(labels)
        chunks = range(0, n, SAMPLE_BATCH)
        total = len(chunks) * self.steps_per_batch(options)
        parts = []
        for j, i in enumerate(chunks):
            k = min(SAMPLE_BATCH, n - i)
            sub = None if lab is None else (lab * n)[i:i + k]
            tokens = self.sample_tokens(list(range(seed + i, seed + i + k)), sub, options, use_ema=use_ema,
                                        progress=progress, cancel=cancel,
                                        step_offset=j * self.steps_per_batch(options), step_total=total)
            parts.append(self.decode_from_tokens(tokens))
        return torch.cat(parts)
