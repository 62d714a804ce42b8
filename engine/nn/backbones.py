"""The denoising network a diffusion-style family trains (DDPM, flow matching, EDM, latent
diffusion): the UNet or the DiT, picked by the [model] section's `backbone` option. A family's
section declares `backbone` and the fields of each network (the UNet's base_channels, channel_mults,
num_res_blocks, attention_resolutions, attention_heads, dropout; the DiT's dit_*), calls
check_backbone from its check(), and its model builds the network with build_backbone.

Light at import: sections (loaded by the GUI without torch) call check_backbone; the networks are
imported only when one is built."""
from __future__ import annotations

from engine.core.schema import ConfigError

BACKBONES = ("unet", "dit")
DIT_NORMS = ("adaln-zero", "tdln")
DIT_POS_EMBEDS = ("sincos", "learned")


def check_backbone(model, where: str, resolution: int | None) -> None:
    """The DiT's shape constraints (the UNet's own are its section's): the image cut into whole
    patches, the width split into whole heads. One line naming the fields."""
    if getattr(model, "backbone", "unet") != "dit":
        return
    if resolution is not None and resolution % model.dit_patch_size:
        raise ConfigError(f"data.resolution = {resolution} must be divisible by {where}.dit_patch_size = "
                          f"{model.dit_patch_size} (the DiT cuts the image into whole patches)")
    if model.dit_width % model.dit_heads:
        raise ConfigError(f"{where}.dit_width = {model.dit_width} must be divisible by {where}.dit_heads = "
                          f"{model.dit_heads}")


def build_backbone(model, *, channels: int, resolution: int, num_classes: int = 0,
                   time_range: tuple[float, float] = (0.0, 1.0)):
    """The network named by model.backbone, called as net(x, t, labels) -> a tensor shaped like x
    (label index num_classes = no label). time_range: the span of t the family feeds (DDPM's
    0 … T-1, a flow's 0 … 1), which the DiT's TD-LN option normalises."""
    backbone = getattr(model, "backbone", "unet")
    if backbone == "dit":
        from engine.nn.dit import DiT
        return DiT(in_channels=channels, resolution=resolution, patch_size=model.dit_patch_size,
                   width=model.dit_width, depth=model.dit_depth, heads=model.dit_heads,
                   mlp_ratio=model.dit_mlp_ratio, pos_embed=model.dit_pos_embed, norm=model.dit_norm,
                   num_classes=num_classes, time_range=time_range)
    if backbone == "unet":
        from engine.nn.unet import UNet
        return UNet(in_channels=channels, resolution=resolution, base_channels=model.base_channels,
                    channel_mults=tuple(model.channel_mults), num_res_blocks=model.num_res_blocks,
                    attention_resolutions=tuple(model.attention_resolutions),
                    attention_heads=model.attention_heads, dropout=model.dropout, num_classes=num_classes)
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
