"""Wang et al. 2020's training augmentation, done with OpenCV: Gaussian blur with sigma ~ U[0, 3]
with probability 0.5, then JPEG at quality ~ U[30, 100] with probability 0.5. It is what lets their
detector hold up on post-processed images; applied alike to real and generated training images."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BlurJpeg:
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    jpeg_p: float = 0.5
    jpeg_quality: tuple[int, int] = (30, 100)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """uint8 H x W x 3 RGB -> uint8 H x W x 3 RGB."""
        import cv2
        out = image
        if rng.random() < self.blur_p:
            sigma = float(rng.uniform(*self.blur_sigma))
            if sigma > 1e-3:      # sigma 0 is no blur (OpenCV would read it as "from the kernel size")
                out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
        if rng.random() < self.jpeg_p:
            q = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(out[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, q])
            if ok:
                out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
        return np.ascontiguousarray(out)

    def describe(self) -> dict:
        return {"gaussian_blur": {"p": self.blur_p, "sigma_uniform": list(self.blur_sigma)},
                "jpeg": {"p": self.jpeg_p, "quality_uniform": list(self.jpeg_quality)}, "library": "opencv"}
