"""The tokenizer's own training previews, written beside the sample grid and the reconstructions
(the run's artifacts.json declares them, so the Train tab and the runs browser show them):

  tokens       held-out images over their token maps, one colour per code (each scale's map for
               the multi-scale quantizer), so a person sees what the prior of the next stage models
  code usage   how often each code is chosen on held-out images, codes sorted from most to least
               used: a healthy codebook is a long, flat bar chart; collapse is a few tall bars"""
from __future__ import annotations

import torch
from PIL import Image, ImageDraw

from engine.core.artifacts import ArtifactSpec
from engine.family.artifacts import ArtifactContext, TrainingArtifact
from engine.family.grid import make_grid
from engine.families.vqvae.quantizers import perplexity

TOKEN_MAPS = ArtifactSpec("tokens", "token maps", "samples/tokens",
                          "held-out images (top) and their token maps, one colour per code, step {step}")
CODE_USAGE = ArtifactSpec("code_usage", "code usage", "samples/code_usage",
                          "codes chosen for held-out images, most used first, step {step}",
                          empty="The code-usage histogram appears here while a tokenizer trains.")
USAGE_IMAGES = 512   # held-out images the histogram counts over


def code_colours(tokens: torch.Tensor) -> torch.Tensor:
    """(N, h, w) code indices -> (N, 3, h, w) in [-1, 1]: a fixed pseudo-random colour per code
    (a multiplicative hash), so neighbouring indices look different."""
    t = tokens.long()
    rgb = torch.stack([(t * 2654435761 + k * 40503) % 256 for k in (1, 2, 3)], dim=1)
    return rgb.float() / 127.5 - 1


class TokenMaps(TrainingArtifact):
    spec = TOKEN_MAPS
    images = 10

    def render(self, family, ctx: ArtifactContext) -> Image.Image:
        on = ctx.reference_images
        x = on.float_batch(torch.arange(min(self.images, len(on)))).cpu()
        tokens = family.encode_tokens(x)
        maps = tokens if isinstance(tokens, list) else [tokens]
        size = x.shape[-1]
        rows = [x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]]
        rows += [torch.nn.functional.interpolate(code_colours(m), size=(size, size), mode="nearest") for m in maps]
        return make_grid(torch.cat(rows), x.shape[0], scale=2)


class CodeUsageHistogram(TrainingArtifact):
    spec = CODE_USAGE
    height = 120

    def render(self, family, ctx: ArtifactContext) -> Image.Image:
        on = ctx.reference_images
        x = on.float_batch(torch.arange(min(USAGE_IMAGES, len(on))))
        flat = family.flatten_tokens(family.encode_tokens(x))
        counts = torch.bincount(flat.flatten(), minlength=family.num_codes).float()
        ordered = counts.sort(descending=True).values
        used, k = int((counts > 0).sum()), family.num_codes
        bar = max(1, 600 // k)                  # at least 600 px wide for small codebooks
        width, top = max(k * bar, 300), 18
        img = Image.new("RGB", (width, self.height + top), (255, 255, 255))
        draw = ImageDraw.Draw(img)
        peak = float(ordered[0]) if len(ordered) and ordered[0] > 0 else 1.0
        for i, c in enumerate(ordered.tolist()):
            if c <= 0:
                break
            h = max(1, round(self.height * c / peak))
            draw.rectangle([i * bar, top + self.height - h, (i + 1) * bar - 1, top + self.height - 1],
                           fill=(40, 90, 160))
        draw.text((4, 2), f"{used}/{k} codes used, perplexity {float(perplexity(flat, k)):.1f} "
                          f"({len(x)} images)", fill=(0, 0, 0))
        return img
