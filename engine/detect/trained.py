"""Trained detectors (NPR CNN, Wang et al.'s CNN): fit on real against generated images that went
through one ImagePipeline, probabilities, class activation maps, and files: DET.safetensors (the
weights) + DET.json (architecture, pipeline, training sources, report), written atomically, never
pickles. The `npr-cnn` and `cnn` checks use one given with `detect --detector DET`."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.core.detector_file import KIND, detector_base, read_detector_meta   # the runs browser reads them too
from engine.detect.pipeline import ImagePipeline
from engine.family.progress import check_cancel

VERSION = 1


@dataclass
class TrainSettings:
    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    width: int = 16
    augment: bool | None = None     # Wang et al.'s blur + JPEG; None: on for cnn, off for npr (as the papers train)
    flip: bool = True               # random left-right mirroring
    seed: int = 0
    device: str = "cpu"
    threads: int = 1     # CPU threads while training: tiny nets lose more handing work to a second thread than
                         # they gain (measured here: 0.06 s a step on one, 0.45-1.5 s on two, cores busy elsewhere)

    def augments(self, arch: str) -> bool:
        return (arch == "cnn") if self.augment is None else bool(self.augment)


@dataclass
class TrainingSet:
    """Images after the pipeline (uint8 N x S x S x 3): real ones and each generator's."""
    real: np.ndarray
    fakes: dict[str, np.ndarray]

    @property
    def sources(self) -> list[str]:
        return sorted(self.fakes)


@contextmanager
def torch_threads(n: int):
    """PyTorch on n CPU threads for a while (0: leave it as it is)."""
    import torch
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def to_tensor(images: np.ndarray):
    import torch
    # contiguous NCHW: a channels-last view into GroupNorm backward crashes PyTorch 2.13 on one thread
    return (torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0).contiguous()


@dataclass
class TrainedDetector:
    arch: str
    net: object                   # engine.detect.nets.DetectorNet
    pipeline: ImagePipeline
    meta: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, arch: str, data: TrainingSet, pipeline: ImagePipeline, settings: TrainSettings | None = None,
            progress=None, cancel=None) -> "TrainedDetector":
        """Train from scratch: batches half real, half generated (the generators drawn alike), binary
        cross-entropy. progress(done, total) after each step; cancel() stops it (Cancelled)."""
        import torch

        from engine.detect.augment import BlurJpeg
        from engine.detect.nets import DetectorNet
        s = settings or TrainSettings()
        fake_names = data.sources
        if len(data.real) < 1 or not fake_names or any(len(data.fakes[n]) < 1 for n in fake_names):
            raise ValueError("a detector needs at least one real and one generated image of each generator")
        torch.manual_seed(s.seed)
        rng = np.random.default_rng(s.seed)
        net = DetectorNet(arch, s.width).to(s.device)
        opt = torch.optim.Adam(net.parameters(), lr=s.lr)
        augment = BlurJpeg() if s.augments(arch) else None
        t0, losses = time.perf_counter(), []
        net.train()
        with torch_threads(s.threads):
            cls._steps(net, opt, data, s, augment, rng, losses, progress, cancel)
        net.eval().cpu()
        meta = {"training": {"steps": s.steps, "batch_size": s.batch_size, "lr": s.lr, "width": s.width,
                             "seed": s.seed, "flip": s.flip, "threads": s.threads, "final_loss": float(np.mean(losses[-10:])),
                             "seconds": round(time.perf_counter() - t0, 2),
                             "augmentation": augment.describe() if augment else None,
                             "real_images": len(data.real),
                             "trained_on": {n: len(data.fakes[n]) for n in fake_names}}}
        return cls(arch, net, pipeline, meta)

    @staticmethod
    def _steps(net, opt, data: TrainingSet, s: TrainSettings, augment, rng, losses: list, progress, cancel) -> None:
        import torch
        fake_names = data.sources
        half = max(s.batch_size // 2, 1)
        for step in range(s.steps):
            check_cancel(cancel)
            real = data.real[rng.integers(len(data.real), size=half)]
            gens = rng.integers(len(fake_names), size=half)
            fake = np.stack([data.fakes[fake_names[g]][rng.integers(len(data.fakes[fake_names[g]]))] for g in gens])
            batch = np.concatenate([real, fake])
            if augment is not None:
                batch = np.stack([augment(im, rng) for im in batch])
            if s.flip:
                flip = rng.random(len(batch)) < 0.5
                batch[flip] = batch[flip][:, :, ::-1]
            x = to_tensor(batch).to(s.device)
            y = torch.cat([torch.zeros(half), torch.ones(half)]).to(s.device)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if progress:
                progress(step + 1, s.steps)

    @property
    def trained_on(self) -> list[str]:
        return sorted((self.meta.get("training") or {}).get("trained_on", {}))

    def probabilities(self, images: np.ndarray, batch: int = 256) -> np.ndarray:
        """P(generated) for images already through the pipeline (uint8 N x S x S x 3)."""
        import torch
        out = []
        with torch.no_grad(), torch_threads(1):
            for i in range(0, len(images), batch):
                out.append(torch.sigmoid(self.net(to_tensor(images[i:i + batch]))).numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def look(self, image: np.ndarray) -> tuple[float, np.ndarray]:
        """Any uint8 image -> (P(generated), the class activation map at the pipeline's size)."""
        import torch
        x = to_tensor(self.pipeline.apply([image]))
        with torch.no_grad():
            return float(torch.sigmoid(self.net(x))[0]), self.net.cam(x)[0].numpy()

    # ---- files --------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"kind": KIND, "version": VERSION, "arch": self.arch, "width": self.net.width,
                "pipeline": self.pipeline.describe(), **self.meta}

    def save(self, path: str | Path) -> Path:
        """Writes DET.safetensors and DET.json (a given suffix is replaced); returns the .safetensors."""
        from safetensors.torch import save as st_save

        from engine.core.util import atomic_write_bytes, atomic_write_json
        base = _base(path)
        base.parent.mkdir(parents=True, exist_ok=True)
        weights = base.with_suffix(".safetensors")
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        atomic_write_bytes(weights, st_save(tensors, metadata={"kind": KIND, "arch": self.arch}))
        atomic_write_json(base.with_suffix(".json"), self.to_json())
        return weights

    def save_meta(self, path: str | Path) -> None:
        """Rewrites only DET.json (an evaluation added to the report)."""
        from engine.core.util import atomic_write_json
        atomic_write_json(_base(path).with_suffix(".json"), self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "TrainedDetector":
        """From DET, DET.json or DET.safetensors. Raises ValueError: one line naming the file and the problem."""
        from safetensors.torch import load_file

        from engine.detect.nets import DetectorNet
        base = _base(path)
        meta_path, weights = base.with_suffix(".json"), base.with_suffix(".safetensors")
        meta = read_detector_meta(base)
        try:
            pipeline = ImagePipeline.from_json(meta["pipeline"])
            net = DetectorNet(str(meta["arch"]), int(meta["width"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{meta_path}: a detector description with a bad field ({e})") from None
        try:
            tensors = load_file(str(weights))
        except FileNotFoundError:
            raise ValueError(f"{weights}: no such detector weights file") from None
        except Exception as e:    # a truncated or damaged file (safetensors' own error type)
            raise ValueError(f"{weights}: not a readable safetensors file ({e})") from None
        try:
            net.load_state_dict(tensors)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise ValueError(f"{weights}: weights do not fit a {meta['arch']} detector of width {meta['width']} "
                             f"({first})") from None
        rest = {k: v for k, v in meta.items() if k not in ("kind", "version", "arch", "width", "pipeline")}
        return cls(str(meta["arch"]), net.eval(), pipeline, rest)


_base = detector_base


# ---- the checks ------------------------------------------------------------------------------
def _check(key: str, arch: str, image: np.ndarray, context):
    from engine.detect.image import as_rgb
    from engine.detect.result import CheckResult
    det = context.trained_detector() if context is not None else None
    if det is None:
        raise ValueError(f"the {key} check needs a trained detector (--detector FILE)")
    if det.arch != arch:
        raise ValueError(f"the {key} check needs a {arch} detector; {context.detector} is a {det.arch} detector")
    x = as_rgb(image)
    p, cam = det.look(x)
    side = "generated" if p >= 0.5 else "real"
    resized = "" if x.shape[:2] == (det.pipeline.size,) * 2 else f" (resized to {det.pipeline.size}x{det.pipeline.size} as in training)"
    trained = ", ".join(det.trained_on) or "?"
    return CheckResult(key, p, f"The {arch.upper()} detector trained against {trained} puts it on the {side} side "
                               f"({p:.0%} generated){resized}.",
                       map=cam, map_title="class activation map (positive: evidence of 'generated')",
                       details={"probability_generated": p, "detector": str(context.detector),
                                "trained_on": det.trained_on})


def check_npr(image: np.ndarray, context):
    return _check("npr-cnn", "npr", image, context)


def check_cnn(image: np.ndarray, context):
    return _check("cnn", "cnn", image, context)
