"""`genlab-engine data-preview`: build a dataset and write a preview grid at a size a person can
see; prints one JSON line with what was found: the counts, the skipped files with plain reasons,
and the warnings (files skipped, far too few images for a generative model)."""
from __future__ import annotations

import json
from pathlib import Path

from engine.cli.common import CLIError, parse_set

HELP = "load a dataset and write a preview grid"


def add_arguments(d) -> None:
    d.add_argument("--dataset", default="digits")
    d.add_argument("--path")
    d.add_argument("--resolution", type=int)
    d.add_argument("--config", help="take the [data] section of this config")
    d.add_argument("--set", action="append", metavar="data.FIELD=VALUE", help="override a data field")
    d.add_argument("--n", type=int, default=64)
    d.add_argument("--out")
    d.add_argument("--preview-size", type=int, help="pixels a side per image in the grid (default: the "
                                                      "training resolution, kept between 64 and 128)")
    d.add_argument("--batch-size", type=int, help="the model's batch size: warn when the data has fewer images")
    d.add_argument("--params", type=int, help="the model's parameter count, named in the too-few warning")


def preview_images(dcfg, data, n: int, size: int):
    """Up to n images of the dataset (N, C, size, size) in [-1, 1] for a person to look at: a
    folder's picked files decoded again at `size`, a built-in dataset built again at `size` (a
    procedural one only n images of it), so the preview is never a blur of the training size."""
    import dataclasses

    import torch
    from engine.data import build_dataset
    from engine.data.dataset import to_uint8_nchw
    from engine.data.folder import preview_folder
    pick = torch.Generator().manual_seed(0)
    if size != data.resolution and dcfg.dataset == "folder":
        arr = preview_folder(dcfg.path, n, size, seed=dcfg.seed, max_images=dcfg.max_images, grey=data.channels == 1)
        if len(arr):   # none readable now (the folder changed since): the training-size images below
            return to_uint8_nchw(arr).float().div(127.5).sub(1.0)
    elif size != data.resolution:
        few = {"count": min(dcfg.count, n)} if dcfg.dataset in ("shapes", "textures") else {}
        data = build_dataset(dataclasses.replace(dcfg, resolution=size, **few))
    return data.float_batch(torch.randperm(len(data), generator=pick)[:n])


def run(args) -> int:
    from engine.core.config import RunConfig
    from engine.data import build_dataset
    from engine.data.dataset import preview_size, too_few_images_warning
    from engine.data.folder import skipped_summary
    from engine.family.grid import make_grid, save_png
    fields = {"dataset": args.dataset, "path": args.path or ""}
    if args.resolution:
        fields["resolution"] = args.resolution
    if args.config:
        base = RunConfig.load(args.config).data
        fields = {**base.__dict__, **{k: v for k, v in fields.items() if v}}
    sets = parse_set(args.set)
    if set(sets) - {"data"}:
        raise CLIError(f"data-preview: --set takes data fields only (data.FIELD=VALUE), not {sorted(set(sets) - {'data'})[0]}")
    dcfg = RunConfig().replace(data={**fields, **sets.get("data", {})}).data
    size = args.preview_size or preview_size(dcfg.resolution)
    if not 8 <= size <= 1024:
        raise CLIError(f"--preview-size {size}: must be between 8 and 1024 pixels")
    data = build_dataset(dcfg)
    if args.out:
        save_png(make_grid(preview_images(dcfg, data, args.n, size)), Path(args.out))
    info = data.info()
    warnings = [skipped_summary(data.skipped, data.scanned)] if data.skipped else []   # the folder was named
    warnings.append(too_few_images_warning(len(data), args.batch_size, args.params))
    info["warnings"] = [w for w in warnings if w]
    info["warning"] = "\n".join(info["warnings"])
    info["skipped_files"] = [list(s) for s in data.skipped[:200]]   # (file, plain reason), for a tooltip
    info["preview_size"] = size
    info["preview"] = args.out
    print(json.dumps(info))
    return 0
