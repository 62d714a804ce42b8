"""Capability interfaces: what a family can do beyond training and sampling. A family class lists
the ones it implements (class StyleGANFamily(GANFamily, StyleMixer)); the Capabilities the GUI
receives are built from them (`capabilities_of`), one record per interface, so a flag can never
disagree with a method. Each interface has a contract checked for every implementer by
tests/engine/test_family_conformance.py."""
from __future__ import annotations

import torch

from engine.core.capabilities import (Capabilities, CodebookCaps, ConditionalCaps, InpaintCaps, InpaintMethod, LatentCaps,
                                     LikelihoodCaps, SamplingCaps, StyleMixCaps)
from engine.core.sections import option_fields
from engine.family.progress import Cancel, Progress, check_cancel



class Conditional:
    """Class labels choose what is drawn. `num_classes` is 0 when this instance was trained without
    labels (then it offers no conditional record). A label of None or below 0 asks for no label:
    the null label where the model has one (classifier-free guidance's), otherwise an error."""

    num_classes: int = 0
    class_names: list[str]
    guidance = False        # classifier-free guidance applies (trained with label dropout)

    def null_label(self) -> int | None:
        """The label that means "no class", or None when the model has no unconditional mode."""
        return None

    def unlabelled(self, n: int) -> list[int] | None:
        """What labels=None means when sampling n images: by default one class per image, cycling."""
        return [i % self.num_classes for i in range(n)]

    def label_tensor(self, labels, n: int) -> torch.Tensor | None:
        """n labels on the model's device (a shorter list repeats), or None for an unconditional model."""
        if not self.num_classes:
            return None
        if labels is None:
            labels = self.unlabelled(n)
            if labels is None:
                return None
        null = self.null_label()
        lab = []
        for l in labels:
            if l is None or int(l) < 0:
                if null is None:
                    raise ValueError(f"this model has no unconditional mode; choose a class 0..{self.num_classes - 1}")
                lab.append(null)
            elif int(l) >= self.num_classes:
                raise ValueError(f"class label {int(l)} is out of range: this model has {self.num_classes} classes")
            else:
                lab.append(int(l))
        if not lab:
            raise ValueError("no labels given")
        if len(lab) != n:
            lab = (lab * n)[:n]
        return torch.tensor(lab, dtype=torch.long, device=self.device)

    def labels_on_device(self, labels, n: int) -> torch.Tensor | None:
        """label_tensor, where a tensor of labels (a training batch's) also passes as is."""
        if not self.num_classes:
            return None
        if isinstance(labels, torch.Tensor):
            return labels.to(self.device, torch.long)
        return self.label_tensor(labels, n)

    def latent_labels(self) -> list[int] | None:
        """The label a latent walk uses when none is chosen: no label where the model has one."""
        if not self.num_classes or self.null_label() is not None:
            return None
        return [0]

    def conditional_record(self) -> ConditionalCaps | None:
        if not self.num_classes:
            return None
        return ConditionalCaps(class_labels=list(self.class_names), guidance=self.guidance,
                               unconditional=self.null_label() is not None)


class IterativeSampler:
    """Sampling runs `steps` network evaluations with a choice of solver: the sample options have
    `steps` and `sampler` fields (and evaluation may lower the steps, metrics.sampling_steps)."""

    def sampling_record(self) -> SamplingCaps:
        opts = type(self.cfg.sampling)
        solvers = next((list(f.metadata["choices"]) for f in option_fields(opts) if f.name == "sampler"), [])
        return SamplingCaps(options=[f.name for f in option_fields(opts)], steps=True, solvers=solvers,
                            trajectory=True)

    def trajectory(self, seed: int, *, labels=None, use_ema: bool = True, options=None,
                   progress: Progress | None = None, cancel: Cancel | None = None):
        """The denoising trajectory of the image `seed` samples: (steps, image), each step an
        engine.family.trajectory.TrajectoryStep (x_t and x̂0 with its level), image (C, H, W) in
        [-1, 1]. Shared by every family that samples through the denoising loop, which streams
        its steps. Contract: one step per solver step; a deterministic solver's last x̂0 is the image."""
        from engine.family.trajectory import record_trajectory
        return record_trajectory(self, seed, labels=labels, use_ema=use_ema, options=options, progress=progress,
                                 cancel=cancel)


class LatentModel:
    """A latent space that seeds map into, images encode into and latents decode from: what the
    interpolation canvas walks through. Contract: decode(encode(x)) is close to x."""

    latent_space = ""
    latent_title = ""
    encode_method = ""
    one_pass = False
    default_mode = "slerp"

    def seed_latents(self, seeds: list[int], labels=None, use_ema: bool = True) -> torch.Tensor:
        raise NotImplementedError

    def decode_latents(self, latents: torch.Tensor, labels=None, *, options=None, use_ema: bool = True,
                       cancel: Cancel | None = None, differentiable: bool = False) -> torch.Tensor:
        """Images in [-1, 1] (CPU, unless differentiable) for latents, rendered with `options`
        (the family's sample options; None = the run's)."""
        raise NotImplementedError

    def encode_images(self, images: torch.Tensor, labels=None, *, steps: int | None = None, options=None,
                      progress: Progress | None = None, cancel: Cancel | None = None) -> torch.Tensor:
        """Latents for images (N, C, H, W) in [-1, 1], for decoding with `options`."""
        raise NotImplementedError

    def default_encode_steps(self, options=None) -> int:
        return 200

    @torch.no_grad()
    def generate_from_seeds(self, n: int, *, seed: int, labels, use_ema: bool, options,
                            progress: Progress | None, cancel: Cancel | None, batch: int = 256) -> torch.Tensor:
        """generate() for a model whose image i is decode(seed_latents([seed + i])): seed k gives
        the same image in a grid, on a canvas and in a walk. In batches, with progress and cancel."""
        lab = labels if labels is not None else self.labels_for(n)
        parts = []
        for i in range(0, n, batch):
            check_cancel(cancel)
            k = min(batch, n - i)
            sub = None if lab is None else lab[i:i + k]
            lat = self.seed_latents(list(range(seed + i, seed + i + k)), sub, use_ema)
            parts.append(self.decode_latents(lat, sub, use_ema=use_ema, options=options))
            if progress is not None:
                progress(i + k, n)
        return torch.cat(parts)

    def encoding_key(self, options=None) -> tuple:
        """The option values an encoding depends on (a cached latent is reused only for the same
        ones): none by default, e.g. a GAN projects with its own fixed settings."""
        return ()

    def latent_record(self) -> LatentCaps:
        return LatentCaps(space=self.latent_space, title=self.latent_title, encode_method=self.encode_method,
                          one_pass=self.one_pass, default_mode=self.default_mode)


class Likelihood:
    """A likelihood, or a bound on it. Contract: bits/dim of real images is finite and positive."""

    exact_likelihood = True

    def bits_per_dim(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """Negative log-likelihood of real images ((N, C, H, W) in [-1, 1], 8-bit data) in bits per
        sub-pixel, dequantization accounted for."""
        raise NotImplementedError

    def likelihood_record(self) -> LikelihoodCaps:
        return LikelihoodCaps(exact=self.exact_likelihood)


class Tokenizer:
    """Images become codes of a finite codebook (a vqvae tokenizer): what the codebook measure
    (engine/core/metrics.py) counts. Contract: every code is in [0, num_codes)."""

    num_codes: int = 0
    quantizer_kind: str = ""

    def image_codes(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [-1, 1] -> their code indices (N, positions), every scale's, CPU."""
        raise NotImplementedError

    def codebook_record(self) -> CodebookCaps:
        return CodebookCaps(size=int(self.num_codes), quantizer=self.quantizer_kind)


class StyleMixer:
    """Per-layer styles that can be taken from different sources."""

    def style_layers(self) -> list[int]:
        raise NotImplementedError

    def style_groups(self) -> dict[str, list[int]]:
        raise NotImplementedError

    def noise_modes(self) -> list[str]:
        return []

    def style_mix(self, row_latents: torch.Tensor, col_latents: torch.Tensor, layers: list[int], *,
                  options=None, use_ema: bool = True) -> torch.Tensor:
        raise NotImplementedError

    def style_mix_record(self) -> StyleMixCaps:
        return StyleMixCaps(layers=self.style_layers(), groups=self.style_groups(), noise_modes=self.noise_modes())


class Inpainter:
    """Fills the masked part of images. Contract: unmasked pixels come back unchanged; image i is
    drawn with seeds[i] (the same seed and inputs give the same fill)."""

    inpaint_methods: tuple[InpaintMethod, ...] = ()   # its methods, the default first: its SPEC's
    inpaint_options: str = ""       # "module:Attr" of its options dataclass (its section.py), "" = none

    def inpaint(self, images: torch.Tensor, mask: torch.Tensor, *, seeds: list[int], labels=None, options=None,
                inpaint_options=None, method: str | None = None, progress: Progress | None = None,
                cancel: Cancel | None = None) -> torch.Tensor:
        """images (N, C, H, W) in [-1, 1]; mask (N or 1, 1, H, W) in [0, 1], 1 = regenerate (values
        between blend, where the method can); seeds: N ints; options: the family's sample options;
        inpaint_options: an object of the `inpaint_options` dataclass (None: its defaults).
        Returns (N, C, H, W) in [-1, 1] on the CPU."""
        raise NotImplementedError

    def inpaint_options_for(self, values=None):
        """The inpainting options object from a dict of values (None: the defaults), checked."""
        if not self.inpaint_options:
            if values:
                raise ValueError(f"a {self.name} model takes no inpainting options")
            return None
        from engine.core.registry import load_object
        from engine.core.schema import section_from_dict, validate_section
        if values is not None and not isinstance(values, dict):
            return values
        obj = section_from_dict(load_object(self.inpaint_options), values or {}, "inpaint")
        validate_section(obj, "inpaint")
        return obj

    def check_inpaint_method(self, method: str | None) -> str:
        """The method to use: `method`, or the first one; an unknown one is an error naming them."""
        names = [m.name for m in self.inpaint_methods]
        if method in (None, ""):
            return names[0]
        if method not in names:
            raise ValueError(f"a {self.name} model cannot inpaint with {method!r}; "
                             f"its methods: {', '.join(names)}")
        return method

    def inpaint_record(self) -> InpaintCaps:
        return InpaintCaps(methods=[m.name for m in self.inpaint_methods], options=self.inpaint_options)


class Reconstructor:
    """Images go through the model and come back: a VAE's encoder mean, decoded. The training loop
    writes a grid of held-out images over their reconstructions beside each sample grid, so a
    blurry or collapsed autoencoder shows at a glance. Contract: a reconstruction is closer to its
    own image than to the others. (No capability record: only the loop and the run folder use it.)"""

    def reconstruct(self, images: torch.Tensor, labels=None) -> torch.Tensor:
        """images (N, C, H, W) in [-1, 1] -> their reconstructions, same shape, on the CPU."""
        raise NotImplementedError



class PixelPredictor:
    """An autoregressive model over pixels: every sub-pixel's distribution over the 256 levels given
    the sub-pixels before it, so an image's exact coding cost and the model's expected entropy can
    be compared sub-pixel by sub-pixel (the zero-shot detection check). Contract: the levels'
    probabilities sum to 1, and -log P of the image's own levels, summed, is the NLL bits/dim
    reports. (No capability record: only the detection lab uses it.)"""

    def level_log_probs(self, images: torch.Tensor, labels=None) -> torch.Tensor:
        """images (N, C, H, W) in [-1, 1] on the 8-bit grid -> log P of each of the 256 levels of
        every sub-pixel given those before it, (N, C, H, W, 256) float32 on the CPU, under the EMA
        weights; labels as label_tensor takes them (a conditional model needs them)."""
        raise NotImplementedError

# interface -> (its Capabilities field, the method that builds its record)
INTERFACES = {Conditional: ("conditional", "conditional_record"), LatentModel: ("latent", "latent_record"),
              Likelihood: ("likelihood", "likelihood_record"), StyleMixer: ("style_mix", "style_mix_record"),
              Inpainter: ("inpaint", "inpaint_record"), Tokenizer: ("codebook", "codebook_record")}


def capabilities_of(family) -> Capabilities:
    """The record of every interface the family implements (None for the others)."""
    if isinstance(family, IterativeSampler):
        sampling = family.sampling_record()
    else:
        sampling = SamplingCaps(options=[f.name for f in option_fields(type(family.cfg.sampling))])
    caps = Capabilities(family=family.name, resolution=family.resolution, channels=family.channels,
                        sampling=sampling)
    for iface, (attr, method) in INTERFACES.items():
        if isinstance(family, iface):
            setattr(caps, attr, getattr(family, method)())
    return caps


def offers(family, record: str) -> bool:
    """Whether the family implements the interface whose capability record is `record` ("likelihood",
    "codebook"): what a measure's `needs` asks of it, without building every record."""
    return any(attr == record and isinstance(family, iface) for iface, (attr, _) in INTERFACES.items())
