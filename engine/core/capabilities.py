"""What a loaded checkpoint can do, as the GUI receives it: one record per capability interface the
family implements (engine/family/interfaces.py), None where it does not. The records are built
from the interfaces (`interfaces.capabilities_of`), never written by hand, so a record cannot
disagree with a method. The GUI enables canvases from these records, never from a family's name.
Light: no torch."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class SamplingCaps:
    """Every family samples. `options` lists the family's sample options (its section.py), which
    the Sampling canvas draws as controls."""
    options: list[str] = field(default_factory=list)
    steps: bool = False                                 # iterative: `steps` network evaluations
    solvers: list[str] = field(default_factory=list)    # the solvers it accepts (iterative samplers)
    trajectory: bool = False                            # it streams each step's x_t and x̂0 (a trajectory)


@dataclass
class ConditionalCaps:
    class_labels: list[str] = field(default_factory=list)
    guidance: bool = False          # classifier-free guidance applies
    unconditional: bool = False     # it can also sample with no label


@dataclass
class LatentCaps:
    space: str = ""                 # "z", "w+", "noise"
    title: str = ""                 # how the canvases name the space, e.g. "x_T (DDIM noise)"
    encode_method: str = ""         # how images enter it: "projection", "ddim-inversion"
    one_pass: bool = False          # decoding is one cheap network pass: canvases may re-render live
    default_mode: str = "slerp"     # lerp or slerp, whichever suits the space


@dataclass
class LikelihoodCaps:
    exact: bool = True              # exact bits/dim (flows, PixelCNN) or an upper bound (VAEs)


@dataclass
class CodebookCaps:
    size: int = 0                   # codes in the codebook (implicit for fsq: the product of its levels)
    quantizer: str = ""             # "vq", "fsq", "msrq"


@dataclass
class StyleMixCaps:
    layers: list[int] = field(default_factory=list)    # resolution of each style input, in order
    groups: dict = field(default_factory=dict)         # coarse / middle / fine -> style indices
    noise_modes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class InpaintMethod:
    """An inpainting method, written where it is offered: the classical fills in engine/inpainting,
    a family's own in its FamilySpec (light, so the GUI reads the titles from the registry). The
    name is what requests and InpaintCaps.methods say; the title and one line of help are shown."""
    name: str
    title: str
    help: str = ""


@dataclass
class InpaintCaps:
    methods: list[str] = field(default_factory=list)   # names: their titles are the family's InpaintMethods
    options: str = ""               # "module:Attr" of the family's inpainting options dataclass, "" = none


RECORDS = {"conditional": ConditionalCaps, "latent": LatentCaps, "likelihood": LikelihoodCaps,
           "style_mix": StyleMixCaps, "inpaint": InpaintCaps, "codebook": CodebookCaps}


@dataclass
class Capabilities:
    family: str
    resolution: int = 0
    channels: int = 0
    sampling: SamplingCaps = field(default_factory=SamplingCaps)
    conditional: ConditionalCaps | None = None
    latent: LatentCaps | None = None
    likelihood: LikelihoodCaps | None = None
    style_mix: StyleMixCaps | None = None
    inpaint: InpaintCaps | None = None
    codebook: CodebookCaps | None = None

    def has(self, name: str) -> bool:
        """Whether the capability `name` ("sampling", "latent", "style_mix", …) is offered."""
        return getattr(self, name, None) is not None

    @property
    def class_labels(self) -> list[str]:
        return self.conditional.class_labels if self.conditional else []

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Capabilities":
        """From an event; unknown keys (a newer engine) are ignored."""
        d = d or {}
        out = cls(family=str(d.get("family", "")), resolution=int(d.get("resolution", 0) or 0),
                  channels=int(d.get("channels", 0) or 0), sampling=_record(SamplingCaps, d.get("sampling")) or
                  SamplingCaps())
        for name, rec in RECORDS.items():
            setattr(out, name, _record(rec, d.get(name)))
        return out


def _record(rec: type, d):
    if not isinstance(d, dict):
        return None
    names = {f.name for f in fields(rec)}
    return rec(**{k: v for k, v in d.items() if k in names})
