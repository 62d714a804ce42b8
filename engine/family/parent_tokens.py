"""What a family trained on a frozen tokenizer parent's codes shares (the token priors of
engine/family/token_prior.py over one token grid, VAR over multi-scale maps): the vqvae parent, the
dataset's tokens encoded by it once before training and cached in the run's encoded/ folder (under
the parent's hash and the data section, so a resumed run reads the file back), those of the
mirrored images too when data.hflip, and a training batch's rows looked up in them."""
from __future__ import annotations

import torch

from engine.family.base import Batch, Family
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
