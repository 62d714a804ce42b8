"""The denoising network a diffusion-style family trains (DDPM, flow matching, EDM): the UNet or
the DiT, picked by the [model] section's `backbone` option, and the fields that configure them,
declared here once. A family's section takes them with the @backbone_fields decorator (`backbone`,
the UNet's base_channels, channel_mults, num_res_blocks, attention_resolutions, attention_heads,
dropout and the label fields after `family`; the DiT's dit_* at the end), calls check_backbone from
its check(), and its model builds the network with build_backbone.

Light at import: sections (loaded by the GUI without torch) use the fields and check_backbone; the
networks are imported only when one is built."""
from __future__ import annotations

import dataclasses
from typing import Callable

from engine.core.schema import ConfigError, check_positive_int_list, opt

BACKBONES = ("unet", "dit")
DIT_NORMS = ("adaln-zero", "tdln")
DIT_POS_EMBEDS = ("sincos", "learned")


# ---- the [model] fields ---------------------------------------------------------------------------
# (name, type, field) in the order the Model form shows them. Functions, not constants: each section
# needs Field objects of its own (dataclass() fills in their names and owner).
def unet_fields() -> list[tuple[str, type, dataclasses.Field]]:
    """`backbone`, the UNet's fields and the class-label fields (the DiT reads those last two too)."""
    return [
        ("backbone", str, opt("unet", "Denoising network: the UNet (the fields below) or a DiT transformer (the DiT "
                                      "fields).", choices=BACKBONES)),
        ("base_channels", int, opt(32, "Channels of the UNet's first level.", min=4, max=1024)),
        ("channel_mults", list, opt([1, 2, 2], "Channel multiplier per UNet level; each level halves the "
                                               "resolution.")),
        ("num_res_blocks", int, opt(1, "Residual blocks per UNet level.", min=1, max=8)),
        ("attention_resolutions", list, opt([4], "Feature-map sizes (pixels) that get self-attention.")),
        ("attention_heads", int, opt(4, "Heads of each self-attention layer.", min=1, max=64, advanced=True)),
        ("dropout", float, opt(0.0, "Dropout inside residual blocks.", min=0.0, max=0.9)),
        ("class_conditional", bool, opt(True, "Condition on class labels (when the dataset has more than one "
                                              "class).")),
        ("label_dropout", float, opt(0.1, "Probability of dropping the label while training (enables "
                                          "classifier-free guidance).", min=0.0, max=1.0)),
    ]


def dit_fields() -> list[tuple[str, type, dataclasses.Field]]:
    """The DiT's fields (engine/nn/dit.py), read when backbone = "dit"; under the form's "DiT" heading."""
    return [
        ("dit_patch_size", int, opt(2, "DiT: side of the square patches (tokens = (resolution / patch)²).", min=1,
                                    max=32, group="DiT")),
        ("dit_width", int, opt(128, "DiT: width of each token.", min=8, max=4096)),
        ("dit_depth", int, opt(4, "DiT: transformer blocks.", min=1, max=64)),
        ("dit_heads", int, opt(4, "DiT: attention heads (must divide the width).", min=1, max=64)),
        ("dit_mlp_ratio", float, opt(4.0, "DiT: MLP width as a multiple of the token width.", min=0.5, max=16.0,
                                     advanced=True)),
        ("dit_pos_embed", str, opt("sincos", "DiT: fixed 2D sine-cosine position embedding, or learned (starting "
                                             "from it).", choices=DIT_POS_EMBEDS, advanced=True)),
        ("dit_norm", str, opt("adaln-zero", "DiT: how the time conditions the blocks: adaLN-Zero (DiT's) or the "
                                            "time-dependent layer norm of DiMR (TD-LN: far fewer parameters).",
                              choices=DIT_NORMS)),
    ]


def backbone_fields(*, dit_before: str | None = None) -> Callable[[type], type]:
    """Class decorator for a [model] section, applied before @dataclass (written below it): puts
    unet_fields() right after the section's `family` field and dit_fields() at its end, or just
    before its field `dit_before` (fields that belong after the DiT's, such as reflow's).

        @dataclass
        @backbone_fields()
        class DDPMConfig(Section):
            family: str = family_field(SPEC)
            schedule: str = opt(...)
    """
    def add(cls: type) -> type:
        own = cls.__dict__.get("__annotations__", {})
        if "family" not in own or (dit_before is not None and dit_before not in own):
            raise TypeError(f"{cls.__name__}: @backbone_fields needs the fields 'family'"
                            + (f" and {dit_before!r}" if dit_before else ""))
        unet, dit = unet_fields(), dit_fields()
        annotations: dict = {}
        for name, typ in own.items():
            if name == dit_before:
                annotations.update((n, t) for n, t, _ in dit)
            annotations[name] = typ
            if name == "family":
                annotations.update((n, t) for n, t, _ in unet)
        if dit_before is None:
            annotations.update((n, t) for n, t, _ in dit)
        cls.__annotations__ = annotations
        for name, _, f in unet + dit:
            setattr(cls, name, f)
        return cls
    return add


# the networks of the conformance suites' TINY configs (a few steps on 8x8 images in a second)
TINY_UNET = {"base_channels": 8, "channel_mults": [1, 2], "attention_resolutions": [4], "attention_heads": 2}
TINY_DIT = {"backbone": "dit", "dit_width": 16, "dit_depth": 2, "dit_heads": 2}


# ---- checks and building --------------------------------------------------------------------------
def check_unet_lists(model, where: str) -> None:
    """The UNet's list fields hold positive integers (channel_mults at least one)."""
    check_positive_int_list(model.channel_mults, f"{where}.channel_mults", empty_ok=False)
    check_positive_int_list(model.attention_resolutions, f"{where}.attention_resolutions")


def check_backbone(model, where: str, resolution: int | None) -> None:
    """The chosen network's shape constraints: the DiT's image cut into whole patches and width
    split into whole heads, or the image halving evenly at each UNet level. One line naming the
    fields."""
    backbone = getattr(model, "backbone", "unet")
    if backbone == "unet":
        levels = len(model.channel_mults) - 1
        if resolution is not None and resolution % (2 ** levels):
            raise ConfigError(f"data.resolution = {resolution} must be divisible by {2 ** levels} "
                              f"for a UNet with {len(model.channel_mults)} levels ({where}.channel_mults)")
        return
    if backbone != "dit":
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
