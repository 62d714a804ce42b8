"""The detection lab's checks, in one registry. Light (no numpy, no torch): the GUI lists them, the
CLI's --checks parses against them; each check's function is a "module:function" reference the
engine resolves on first use (engine/core/registry.py). The function's signature is
    function(image: uint8 H x W x 3 RGB array, context: engine.detect.context.DetectContext)
        -> engine.detect.result.CheckResult

Adding a check is one `register(CheckSpec(...))` line below plus its function."""
from __future__ import annotations

from dataclasses import dataclass

from engine.core.registry import Registry

# which way the score points to "generated or manipulated"; NONE: a measurement, read with its sentence
HIGHER, LOWER, NONE = "higher", "lower", "none"
# what a check needs to run: nothing, an optional reference, a trained detector, a GenLab model checkpoint
TRAINING_FREE, OPTIONAL_REFERENCE, DETECTOR, CHECKPOINT = "", "reference", "detector", "checkpoint"
NEEDS_FILE = (DETECTOR, CHECKPOINT)    # the checks that cannot run at all without their file
DIRE_STEPS = 20      # DDIM steps each way for DIRE by default (the DIRE paper's ddim20)
TREERING_STEPS = 50  # DDIM steps each way for Tree-Ring by default (the paper's: sampling and inversion alike)


@dataclass(frozen=True)
class CheckSpec:
    key: str             # as written on the command line: "spectrum"
    title: str           # what a person reads: "Frequency spectrum"
    function: str        # "package.module:function"
    score: str           # what the score is, in a few words, with its unit
    direction: str = HIGHER
    needs: str = TRAINING_FREE
    help: str = ""       # one line: what it looks at and where it comes from

    @property
    def suspicious_words(self) -> str:
        """'higher is more suspicious', 'lower is more suspicious', or ''."""
        return f"{self.direction} is more suspicious" if self.direction in (HIGHER, LOWER) else ""


CHECKS: Registry[CheckSpec] = Registry("detection check")


def register(spec: CheckSpec) -> CheckSpec:
    if spec.direction not in (HIGHER, LOWER, NONE):
        raise ValueError(f"check {spec.key!r}: direction {spec.direction!r} is not one of {HIGHER}, {LOWER}, {NONE}")
    return CHECKS.register(spec.key, spec)


def check_names() -> tuple[str, ...]:
    return CHECKS.names()


def default_checks() -> list[str]:
    """The checks that run with nothing trained: what `detect` runs when none are named."""
    return [k for k, spec in CHECKS.items() if spec.needs not in NEEDS_FILE]


def parse_checks(spec) -> list[str]:
    """'spectrum, NPR' or ['spectrum', 'npr'] -> ['spectrum', 'npr']; '' -> the default checks;
    'all' -> every check; an unknown name is a ValueError naming the known."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = [c.strip().lower() for c in items if c.strip()]
    if not out:
        return default_checks()
    if out == ["all"]:
        return list(check_names())
    bad = [c for c in out if c not in CHECKS]
    if bad:
        raise ValueError(f"unknown check {bad[0]!r}; choose from: {', '.join(check_names())}")
    return list(dict.fromkeys(out))


register(CheckSpec(
    "spectrum", "Frequency spectrum", "engine.detect.spectrum:check",
    "high-frequency deviation of the log power spectrum from real images' (RMS z-score)",
    help="azimuthally averaged log power spectrum against the built-in real photos' (Durall et al. 2020; "
         "Frank et al. 2020)"))
register(CheckSpec(
    "spectrum-lr", "Spectrum detector", "engine.detect.spectrum:check_detector",
    "probability of 'generated' from a logistic regression on the spectrum profiles", needs=DETECTOR,
    help="a logistic regression on the FFT and log-DCT profiles, trained on real against generated images "
         "(--spectrum-detector FILE)"))
register(CheckSpec(
    "npr", "Neighbouring-pixel residual", "engine.detect.npr:check",
    "RMS of x - up(down(x)) with nearest 2x resampling, in 8-bit levels", direction=LOWER,
    help="the NPR residual (Tan et al., CVPR 2024): near zero where each 2x2 cell repeats one pixel, "
         "as nearest 2x up-sampling leaves it"))
register(CheckSpec(
    "noise", "Noise residual", "engine.detect.noise_residual:check",
    "correlation of the noise residual with the reference pattern (none without a reference)",
    direction=LOWER, needs=OPTIONAL_REFERENCE,
    help="PRNU-style: the residual x - denoise(x) correlated with a pattern built from images of one source"))
register(CheckSpec(
    "copymove", "Copy-move", "engine.detect.copy_move:check",
    "share of the image in blocks duplicated under the most frequent shift",
    help="Popescu & Farid 2004: overlapping blocks, PCA-reduced, sorted; a shift many blocks share "
         "marks a copied region"))
register(CheckSpec(
    "watermark", "SDXL invisible watermark", "engine.detect.watermark.check:check",
    "bit accuracy of the dwtDct mark against Stable Diffusion XL's 48-bit message",
    help="reads the invisible-watermark (imwatermark) dwtDct mark SDXL writes; accuracy near 1 with a tiny "
         "p-value: marked"))
register(CheckSpec(
    "npr-cnn", "NPR detector", "engine.detect.trained:check_npr",
    "probability of 'generated' from a small CNN trained on the NPR residual", needs=DETECTOR,
    help="a ResNet-style CNN on x - up(down(x)) trained here against GenLab checkpoints (Tan et al., CVPR 2024; "
         "--detector FILE from `genlab-engine detector train --arch npr`)"))
register(CheckSpec(
    "cnn", "CNN detector", "engine.detect.trained:check_cnn",
    "probability of 'generated' from a small CNN trained on the image with blur and JPEG augmentation",
    needs=DETECTOR,
    help="Wang et al. 2020's detector, trained here from scratch; its class-activation map shows where it looks "
         "(--detector FILE from `genlab-engine detector train --arch cnn`)"))
register(CheckSpec(
    "zeroshot", "Zero-shot coding cost", "engine.detect.zero_shot:check",
    "|z| of the coding cost against the likelihood model's expected entropy, either way (0: like its own samples)",
    direction=HIGHER, needs=CHECKPOINT,
    help="in the spirit of ZED (ECCV 2024): a pixel-likelihood model trained on real images only codes the image; "
         "an image far from what it expects, too easy or too hard, is unlike the real ones (--likelihood-model "
         "CKPT, a pixelcnn run; benchmarks/zero_shot_auc.py)"))
register(CheckSpec(
    "aeroblade", "Autoencoder reconstruction", "engine.detect.aeroblade:check",
    "mean squared error of the image against its reconstruction through the autoencoder (0-1 pixel units)",
    direction=LOWER, needs=CHECKPOINT,
    help="AEROBLADE (CVPR 2024, training-free): images a latent model made come back almost unchanged through "
         "its own autoencoder (--autoencoder CKPT, a vae, hvae or vqvae run)"))
register(CheckSpec(
    "dire", "DIRE (diffusion reconstruction)", "engine.detect.dire:check",
    "mean |x - recon(invert(x))| through a diffusion checkpoint's DDIM, in 8-bit levels", direction=LOWER,
    needs=CHECKPOINT,
    help="Wang et al. 2023: DDIM inversion and reconstruction with a GenLab diffusion checkpoint "
         "(--diffusion-checkpoint FILE); the model's own images come back closer"))
