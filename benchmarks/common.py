"""Shared bits of the benchmark scripts."""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def machine() -> dict:
    import torch
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu x{torch.get_num_threads()} threads"
    return {"python": platform.python_version(), "torch": torch.__version__, "device": dev,
            "machine": platform.machine()}


def write_result(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "when": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), **result}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return path


def diffusers_unet(cfg, channels: int = 1, num_classes: int = 10):
    """diffusers' UNet2DModel built to the same graph as GenLab's UNet for a DDPM preset's [model]
    section: the same block widths and residual blocks per level, attention at the same feature-map
    sizes with the same head width, GroupNorm with 8 groups, and (class-conditional) the classes
    plus the null class embedded; ddpm-digits comes out at exactly our parameter count."""
    from diffusers import UNet2DModel
    m = cfg.model
    ch = tuple(m.base_channels * k for k in m.channel_mults)
    res = cfg.data.resolution
    down = tuple("AttnDownBlock2D" if res // 2 ** i in m.attention_resolutions else "DownBlock2D"
                 for i in range(len(ch)))
    up = tuple(("AttnUpBlock2D" if b.startswith("Attn") else "UpBlock2D") for b in reversed(down))
    return UNet2DModel(sample_size=res, in_channels=channels, out_channels=channels, block_out_channels=ch,
                       layers_per_block=m.num_res_blocks, down_block_types=down, up_block_types=up,
                       norm_num_groups=8, num_class_embeds=num_classes + 1 if m.class_conditional else None,
                       attention_head_dim=ch[-1] // m.attention_heads)
