"""A small transformer over a sequence of discrete tokens (the priors over a tokenizer's codes:
MaskGIT's bidirectional one, the AR prior's causal one): token embeddings plus learned positions,
an optional prefix token at position 0 (a class, or the AR prior's start), pre-LN blocks, and
logits over the code vocabulary at every position.

The causal model keeps a KV cache (KVCache) so autoregressive sampling runs each new token through
the blocks once, attending to the cached keys and values of the ones before: linear work per token
instead of re-running the whole prefix."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class KVCache:
    """Each block's keys and values of the positions seen so far (B, heads, length, head_dim)."""

    def __init__(self, depth: int):
        self.keys: list[torch.Tensor | None] = [None] * depth
        self.values: list[torch.Tensor | None] = [None] * depth
        self.length = 0
        self.cond: torch.Tensor | None = None   # the prefix's embedding, added to every later token


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, causal: bool, cache: KVCache | None, index: int) -> torch.Tensor:
        b, l, w = x.shape
        q, k, v = self.qkv(x).view(b, l, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            if cache.keys[index] is not None:
                k = torch.cat([cache.keys[index], k], 2)
                v = torch.cat([cache.values[index], v], 2)
            cache.keys[index], cache.values[index] = k, v
        mask = None
        if causal and l > 1:   # query i (at absolute position past + i) sees keys 0..past + i
            past = k.shape[2] - l
            mask = torch.ones(l, past + l, dtype=torch.bool, device=x.device).tril(diagonal=past)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, l, w))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width),
                                 nn.Dropout(dropout))

    def forward(self, x, causal: bool, cache: KVCache | None, index: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), causal, cache, index)
        return x + self.mlp(self.norm2(x))


class TokenTransformer(nn.Module):
    """tokens (B, l) in [0, vocab), prefix (B,) in [0, prefixes) or None -> logits (B, l', out_vocab),
    l' = l (+1 with a prefix, which comes first). The prefix's embedding is also added to every
    token's, so a class conditions each position directly (through attention alone, an untrained
    model barely hears it). With a cache, the positions continue after the cached ones (and the
    prefix is given only on the first call; the cache keeps its embedding)."""

    def __init__(self, vocab: int, out_vocab: int, length: int, width: int, depth: int, heads: int,
                 *, prefixes: int = 0, causal: bool = False, dropout: float = 0.0):
        super().__init__()
        self.causal, self.depth = causal, depth
        self.embed = nn.Embedding(vocab, width)
        self.prefix = nn.Embedding(prefixes, width) if prefixes else None
        self.pos = nn.Parameter(torch.randn(1, length + (1 if prefixes else 0), width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, heads, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, out_vocab)

    def new_cache(self) -> KVCache:
        return KVCache(self.depth)

    def forward(self, tokens: torch.Tensor, prefix: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        h = self.embed(tokens)
        if prefix is not None:
            cond = self.prefix(prefix)[:, None]
            h = torch.cat([cond, h + cond], 1)
            if cache is not None:
                cache.cond = cond
        elif cache is not None and cache.cond is not None:
            h = h + cache.cond
        start = cache.length if cache is not None else 0
        h = h + self.pos[:, start:start + h.shape[1]]
        for i, block in enumerate(self.blocks):
            h = block(h, self.causal, cache, i)
        if cache is not None:
            cache.length += h.shape[1]
        return self.head(self.norm(h))
