"""Noise drawn per image: one generator per image of a batch, so image i of a batch is the image a
batch of one with its seed gives (up to float rounding between batch sizes), and a gallery's "use
this seed" does not cost batching (engine/family/grid.sample_images).

A solver's `generator` is a torch.Generator (one stream for the whole batch), None (the global one)
or a RowGenerators (a stream per image); `randn_like` draws from any of them."""
from __future__ import annotations

import torch

# Offset between the seed of an image's starting noise and that of its per-step noise: the two
# streams must differ, or a step's noise for seed s would repeat x_T of seed s + 1.
STEP_NOISE_SEED_OFFSET = 0x9E3779B9


class RowGenerators:
    """One torch.Generator per batch row, on `device`, seeded with `seeds`."""

    def __init__(self, seeds: list[int], device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.generators = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]

    def __len__(self) -> int:
        return len(self.generators)

    def randn(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(len(self), *shape[1:]) standard normal; row i from generator i alone."""
        if shape[0] != len(self.generators):
            raise ValueError(f"{shape[0]} rows asked of {len(self.generators)} per-image generators")
        return torch.stack([torch.randn(tuple(shape[1:]), generator=g, device=self.device, dtype=dtype)
                            for g in self.generators])


def randn_like(x: torch.Tensor, generator: torch.Generator | RowGenerators | None) -> torch.Tensor:
    if isinstance(generator, RowGenerators):
        return generator.randn(tuple(x.shape), x.dtype).to(x.device)
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def seeded_rows(seeds: list[int], shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(len(seeds), *shape) standard normal on the CPU, row i from seed i alone: the same seed gives
    the same row on every device and in every batch."""
    return RowGenerators(seeds).randn((len(seeds), *shape), dtype)


def seeded_uniform_rows(seeds: list[int], shape: tuple[int, ...], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(len(seeds), *shape) uniform in [0, 1) on the CPU, row i from seed i alone."""
    return torch.stack([torch.rand(tuple(shape), generator=torch.Generator().manual_seed(int(s)), dtype=dtype)
                        for s in seeds])
