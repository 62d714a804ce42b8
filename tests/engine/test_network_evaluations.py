"""Every family's count of network evaluations (Family.network_evaluations: the NFE of a speed
comparison) is what generating an image really costs, and generate()'s progress ends at its total:
for the family's own sample options and for each option moved, one at a time, to its bounds, its
choices and 1 (the neutral value of scales: guidance off, temperature and truncation at the model).
Counted with hooks on the family's networks; nothing here names a family or an option."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from engine.core.families import FAMILIES
from engine.core.sections import option_fields
from engine.training import checkpoint as ck


@pytest.fixture(scope="module", params=FAMILIES.names())
def family(request, tiny_runs):
    fam, _ = ck.family_from_checkpoint(tiny_runs[request.param].checkpoint, "cpu")
    return fam


def option_variants(options) -> list[dict]:
    """{} (the run's options), then each option changed alone: every choice of a choice, both
    values of a switch, the minimum, 1 and the maximum of a number (within its range)."""
    out: list[dict] = [{}]
    for f in option_fields(type(options)):
        meta, value = f.metadata, getattr(options, f.name)
        if meta.get("choices"):
            values = list(meta["choices"])
        elif isinstance(value, bool):
            values = [not value]
        elif isinstance(value, (int, float)):
            lo, hi = meta.get("min"), meta.get("max")
            values = [v for v in (lo, 1, hi) if v is not None and (lo is None or v >= lo) and (hi is None or v <= hi)]
            values = [type(value)(v) for v in values]
        else:
            continue   # lists (per-group values) do not change how often a network runs
        out += [{f.name: v} for v in dict.fromkeys(values) if v != value]
    return out


class PassCounter:
    """Counts the passes of a family's networks while it generates. A pass ends in the network's
    output (its forward, or its last layer), so the passes are the rows that the module finishing
    last has processed: a step that batches a guided model's conditional and unconditional
    predictions into one call is two passes, and a pass that a sampler runs through a network's
    methods instead of its forward (a PixelCNN's horizontal stack, ending in its output layer)
    counts too. Layers that run more than once a pass (a label embedding read by several blocks)
    never end one."""

    def __init__(self, family):
        self.rows: dict[str, int] = {}
        self.last = ""
        self.hooks = []
        for net_name, net in family.nets(use_ema=True).items():
            for name, module in net.named_modules():
                if next(module.parameters(), None) is not None:   # a layer, a block or the network
                    key = f"{net_name}.{name}" if name else net_name
                    self.hooks.append(module.register_forward_hook(self._hook(key)))

    def _hook(self, key: str):
        def count(module, args, output):
            rows = next((a.shape[0] for a in args if torch.is_tensor(a) and a.dim() > 0), 1)
            self.rows[key] = self.rows.get(key, 0) + rows
            self.last = key
        return count

    def passes(self) -> int:
        return self.rows.get(self.last, 0)

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()


def check_progress(seen: list[tuple[int, int]], where: str) -> None:
    assert seen, f"{where}: generate() reported no progress"
    assert all(0 <= d <= t for d, t in seen), f"{where}: progress past its total: {seen}"
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:])), f"{where}: progress went back: {seen}"
    assert seen[-1][0] == seen[-1][1] > 0, f"{where}: progress ended at {seen[-1]}"


def test_network_evaluations_match_the_passes_of_generating_one_image_and_progress_ends_at_its_total(family):
    labels = family.labels_for(1)
    for change in option_variants(family.sample_options()):
        where = f"{family.name} with {change or 'its own options'}"
        options = family.sample_options(None, **change)
        counter, seen = PassCounter(family), []
        try:
            image = family.generate(1, seed=3, labels=labels, use_ema=True, options=options,
                                    progress=lambda done, total: seen.append((done, total)), cancel=None)
        finally:
            counter.remove()
        assert torch.isfinite(image).all(), f"{where}: the image is not finite"
        claimed = family.network_evaluations(options)
        assert counter.passes() == claimed, (f"{where}: network_evaluations says {claimed}, generating one image "
                                             f"ran {counter.passes()} passes (ending in {counter.last})")
        check_progress(seen, where)


def test_progress_of_a_batch_ends_at_its_total(family):
    seen: list[tuple[int, int]] = []
    family.sample(3, seed=0, labels=family.labels_for(3), progress=lambda done, total: seen.append((done, total)))
    check_progress(seen, f"{family.name}, 3 images")


def test_the_variants_move_every_option_of_every_family():
    """The variants above reach each sample option a family has (a new kind of field would be skipped)."""
    for name, spec in FAMILIES.items():
        options = spec.sample_options()
        moved = {k for change in option_variants(options) for k in change}
        unmoved = {f.name for f in option_fields(type(options))} - moved
        skipped = {f.name for f in dataclasses.fields(type(options)) if isinstance(getattr(options, f.name), list)}
        assert unmoved <= skipped, f"{name}: options never varied: {sorted(unmoved - skipped)}"
