"""The one preprocessing pipeline every image a trained detector sees goes through, real and
generated alike: resize to one size, one colour mode, one encoding round trip (PNG, or JPEG at one
quality). A detector trained on real JPEGs against generated PNGs learns the JPEG, not the
generator (Grommelt et al. 2024, "Fake or JPEG?"); pushing both through the same steps leaves the
generator as the only difference. The format-bias control breaks this on purpose (`biased_real`)."""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import numpy as np

FORMATS = ("png", "jpeg")
COLORS = ("rgb", "grayscale")
BIAS_JPEG_QUALITY = 75     # the format-bias control: real images JPEG-compressed at this quality, fakes not


@dataclass(frozen=True)
class ImagePipeline:
    size: int                  # every image leaves square, size x size (bicubic resampling where it differs)
    color: str = "rgb"         # grayscale: luminance, repeated to 3 channels (so no source differs by colour)
    format: str = "png"        # the encoding every image is round-tripped through
    jpeg_quality: int = 95     # with format = jpeg

    def __post_init__(self):
        if self.size < 4:
            raise ValueError(f"pipeline size {self.size}: 4 pixels at least")
        if self.color not in COLORS:
            raise ValueError(f"pipeline colour {self.color!r}: choose {' or '.join(COLORS)}")
        if self.format not in FORMATS:
            raise ValueError(f"pipeline format {self.format!r}: choose {' or '.join(FORMATS)}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"JPEG quality {self.jpeg_quality}: between 1 and 100")

    def apply_one(self, image: np.ndarray) -> np.ndarray:
        """uint8 H x W (x 1|3|4) -> uint8 size x size x 3, through every step."""
        from PIL import Image
        a = np.asarray(image)
        if a.dtype != np.uint8:
            raise ValueError(f"expected uint8 pixels, got {a.dtype}")
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[..., 0]
        im = Image.fromarray(np.ascontiguousarray(a[..., :3] if a.ndim == 3 else a))
        if im.size != (self.size, self.size):
            im = im.resize((self.size, self.size), Image.BICUBIC)
        im = im.convert("L").convert("RGB") if self.color == "grayscale" else im.convert("RGB")
        return encode_round_trip(np.asarray(im), self.format, self.jpeg_quality)

    def apply(self, images) -> np.ndarray:
        """A batch (N x H x W x C array, or a list of images) -> uint8 N x size x size x 3."""
        out = np.empty((len(images), self.size, self.size, 3), np.uint8)
        for i, im in enumerate(images):
            out[i] = self.apply_one(im)
        return out

    def describe(self) -> dict:
        return {**asdict(self), "steps": self.steps()}

    def steps(self) -> list[str]:
        enc = "PNG (lossless)" if self.format == "png" else f"JPEG quality {self.jpeg_quality}"
        return [f"resize to {self.size}x{self.size} (bicubic) where the image differs",
                "RGB" if self.color == "rgb" else "grayscale (luminance) repeated to 3 channels",
                f"encode as {enc} and decode"]

    @classmethod
    def from_json(cls, d: dict) -> "ImagePipeline":
        return cls(int(d["size"]), str(d["color"]), str(d["format"]), int(d["jpeg_quality"]))


def encode_round_trip(image: np.ndarray, fmt: str, quality: int = 95) -> np.ndarray:
    """uint8 H x W x 3 encoded as PNG or JPEG (4:2:0, Pillow's default) in memory and decoded again."""
    from PIL import Image
    buf = io.BytesIO()
    if fmt == "jpeg":
        Image.fromarray(image).save(buf, format="JPEG", quality=int(quality))
    else:
        Image.fromarray(image).save(buf, format="PNG")
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB")).copy()


def biased_real(images: np.ndarray, quality: int = BIAS_JPEG_QUALITY) -> np.ndarray:
    """The format-bias control's real images: the pipeline's output JPEG-compressed once more (the
    fakes are left as they are), as a careless data set would have them."""
    return np.stack([encode_round_trip(im, "jpeg", quality) for im in images]) if len(images) else images
