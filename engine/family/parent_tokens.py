"""What a family trained on a frozen tokenizer parent's codes shares (the token priors of
engine/family/token_prior.py over one token grid, VAR over multi-scale maps): the vqvae parent, the
dataset's tokens encoded by it once before training and cached in the run's encoded/ folder (under
the parent's hash and the data section, so a resumed run reads the file back), those of the
mirrored images too when data.hflip, a training batch's rows looked up in them, and (TokenizerLatents)
the latent space, which is the parent's: interpolation walks the tokenizer's continuous
pre-quantization map and decodes through it, for every prior alike (one grid or many scales)."""
from __future__ import annotations

import torch

from engine.family.base import Batch, Family
from engine.family.interfaces import LatentModel
from engine.family.parent import Parent, cached_encoding, encoding_key

ENCODE_BATCH = 256      # images per parent encoding pass


class TokenizedFamily(Family):
    """Base of a family over a tokenizer parent's codes. A subclass says how a chunk of the
    dataset becomes tokens (dataset_tokens) and how any images do (encode_to_tokens), calls
    encode_dataset from its prepare_data and trains on batch_tokens(batch)."""

    parent_families = ("vqvae",)

    def __init__(self, cfg, channels, resolution, class_names, *, parent: Parent):
        super().__init__(cfg, channels, resolution, class_names)
        self.parent = parent
        self.tokens: torch.Tensor | None = None           # the dataset's tokens, flat (N, L) (encode_dataset)
        self.tokens_flipped: torch.Tensor | None = None   # of the mirrored images, when data.hflip
        self.encoded_from_cache: bool | None = None

    def to(self, device):
        super().to(device)
        self.parent.family.to(self.device)
        for name in ("tokens", "tokens_flipped"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).to(self.device))
        return self

    # ---- to implement --------------------------------------------------------------------------
    def dataset_tokens(self, images: torch.Tensor, flip: bool) -> torch.Tensor:
        """A chunk of the dataset (uint8 (n, C, H, W)), mirrored when flip -> its (n, L) tokens on the CPU."""
        raise NotImplementedError

    def encode_to_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [-1, 1] -> their (N, L) tokens on the device."""
        raise NotImplementedError

    # ---- the dataset's tokens --------------------------------------------------------------------
    def encode_dataset(self, images: torch.Tensor, *, cache_dir, data_config: dict, hflip: bool, what: str) -> str:
        """Set self.tokens (and tokens_flipped) from the cache file, or encode the dataset into it;
        `what` names the tokens in the file's key. The key."""
        def encode_all(flip: bool) -> torch.Tensor:
            return torch.cat([self.dataset_tokens(images[i:i + ENCODE_BATCH], flip)
                              for i in range(0, len(images), ENCODE_BATCH)])

        key = encoding_key(self.parent, data_config, f"{what}+flipped" if hflip else what)
        tensors, cached = cached_encoding(
            cache_dir, key, lambda: {"tokens": encode_all(False), **({"flipped": encode_all(True)} if hflip else {})})
        self.encoded_from_cache = cached
        self.tokens = tensors["tokens"].long().to(self.device)
        self.tokens_flipped = tensors["flipped"].long().to(self.device) if hflip else None
        return key

    def batch_tokens(self, batch: Batch) -> torch.Tensor:
        """The batch's (B, L) tokens: rows of the encoded dataset (mirrored where the batch is), or
        its images encoded now."""
        if batch.index is None or self.tokens is None:
            return self.encode_to_tokens(batch.images)
        idx = batch.index.to(self.device)
        t = self.tokens[idx]
        if batch.flips is not None and self.tokens_flipped is not None:
            t = torch.where(batch.flips.to(self.device).view(-1, 1), self.tokens_flipped[idx], t)
        return t


class TokenizerLatents(LatentModel):
    """A tokenized family's latent space is its parent's pre-quantization map: a seed's latent is
    the code vectors of the tokens the family draws for it (summed over the scales of a multi-scale
    tokenizer); latents decode (snapped to the codes) through the parent, images encode through its
    encoder. A family implements seed_tokens: its (N, L) flat tokens for the seeds."""

    latent_space, latent_title, encode_method = "z", "z (the tokenizer's pre-quantization map)", "tokenizer encoder"
    one_pass = True
    default_mode = "lerp"

    def seed_tokens(self, seeds: list[int], labels=None, use_ema: bool = True) -> torch.Tensor:
        """The (len(seeds), L) tokens this family draws for each seed with the run's sample options."""
        raise NotImplementedError

    @torch.no_grad()
    def seed_latents(self, seeds: list[int], labels=None, use_ema: bool = True) -> torch.Tensor:
        """The code vectors of the tokens this family draws for each seed (the run's options)."""
        tok = self.parent.family
        tokens = tok.unflatten_tokens(self.seed_tokens(list(seeds), labels, use_ema).to(self.device))
        return tok.nets(True)["quantizer"].decode_tokens(tokens).float()

    def decode_latents(self, latents, labels=None, *, options=None, use_ema: bool = True, cancel=None,
                       differentiable: bool = False) -> torch.Tensor:
        """Snapped to the parent's codes and decoded by it."""
        return self.parent.family.decode_latents(latents, differentiable=differentiable)

    def default_encode_steps(self, options=None) -> int:
        return 1

    @torch.no_grad()
    def encode_images(self, images, labels=None, *, steps=None, options=None, progress=None, cancel=None):
        return self.parent.family.encode_images(images, progress=progress)
