"""The sample-quality metrics, in one registry. Light (no torch): the GUI reads it; each measure's
function is a "module:function" reference the engine resolves on first use (engine/core/registry.py).

Two levels, because that is how they exist:
  a measure (MeasureSpec)   what a person asks for, in metrics.metrics, `eval --metrics` and the GUI:
                            fid, kid, pr, is, bpd, codebook. One function computes all of its values
                            at once (precision and recall share one nearest-neighbour pass, KID's
                            spread comes from the same subsets), and it needs one capability:
                            samples, or one scored on real (held-out) images: a likelihood
                            (bits/dim) or a codebook (a tokenizer's code usage).
  a value (MetricSpec)      what a measure logs under quality/ and the readers show: title, unit,
                            which way is better, format, where it plots, its comparison-table column.

A measure scored on image features (features=True) names its values after the feature extractor:
`key` with the FID Inception network, the domain name with GenLab's domain features (key + "_domain",
a spread's "_std" kept last: kid_domain, kid_domain_std; fid's is fd_domain, since a Fréchet distance
on other features is no FID). The function returns values by `key`; the evaluator renames them.

Adding a metric is one `register(MeasureSpec(...))` line below plus its function (the signatures are
in engine/metrics/measures.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from engine.core.registry import Registry

LOWER, HIGHER, NONE = "lower", "higher", "none"   # which way a value is better
SAMPLING, LIKELIHOOD = "sampling", "likelihood"   # the capability a measure needs (Capabilities.has)
CODEBOOK = "codebook"
HELDOUT = (LIKELIHOOD, CODEBOOK)   # needs scored on real images (the run's held-out ones), not on samples
PLOT_CURVE, PLOT_READOUT = "curve", "readout"     # on the quality plot: its curve, or its status line
TABLE_COLUMN, TABLE_DETAIL = "column", "detail"   # in the family comparison: a column, or the row's tooltip


@dataclass(frozen=True)
class MetricSpec:
    """One value a measure logs (as quality/<name>)."""
    key: str                   # its name with Inception features, or when no features are involved
    title: str                 # what a person reads: "FID", "bits/dim"
    direction: str = NONE      # LOWER or HIGHER is better; NONE: neither (a spread)
    unit: str = ""
    fmt: str = ".4g"           # a value in the family comparison
    plot: str = PLOT_READOUT   # PLOT_CURVE, PLOT_READOUT, or "" (not on the quality plot)
    table: str = TABLE_COLUMN  # TABLE_COLUMN, TABLE_DETAIL, or "" (not in the family comparison)
    headline: int | None = None  # rank when one score stands for a run (runs list); None: after the ranked
    column: str = ""           # its family-comparison column (fid's is "fd": FID or FD-domain); "" = key
    domain_key: str = ""       # its name with GenLab's domain features; "" = the naming rule
    domain_title: str = ""     # "" = title + "-domain"
    spread_of: str = ""        # the key of the value this is the spread (std) of

    def name(self, domain: bool = False) -> str:
        """The logged name (without quality/) with the domain features or not."""
        if not domain:
            return self.key
        if self.domain_key:
            return self.domain_key
        return self.key[:-4] + "_domain_std" if self.key.endswith("_std") else self.key + "_domain"

    def label(self, domain: bool = False) -> str:
        if not domain:
            return self.title
        if self.domain_title:
            return self.domain_title
        return self.title[:-4] + "-domain std" if self.title.endswith(" std") else self.title + "-domain"

    @property
    def column_name(self) -> str:
        return self.column or self.key

    @property
    def better_words(self) -> str:
        """'lower is better', 'higher is better', or '' (no direction)."""
        return f"{self.direction} is better" if self.direction in (LOWER, HIGHER) else ""


@dataclass(frozen=True)
class MeasureSpec:
    """A metric as requested (metrics.metrics, eval --metrics), the values it logs, and its function:
    needs SAMPLING: function(samples: engine.metrics.measures.Samples) -> {value key: float}
    needs one of HELDOUT: function(family, data, n, device) -> {value key: float}, and its extras
    are the row's (split name, image count) keys: which images it was scored on"""
    key: str                           # as written in configs: "fid", "pr"
    function: str                      # "package.module:function"
    values: tuple[MetricSpec, ...]
    help: str = ""                     # in the metrics.metrics help: "pr (precision/recall)"; "" = key
    needs: str = SAMPLING
    features: bool = True              # scored on extractor features: values named per extractor
    extras: tuple[str, ...] = ()       # unprefixed values its pass adds to the row (the images it used)

    def variants(self) -> tuple[bool, ...]:
        """The `domain` flags its values are logged with."""
        return (False, True) if self.features else (False,)

    def named(self, values: dict, domain: bool) -> dict:
        """The function's {key: value} under the logged names (per extractor)."""
        by_key = {v.key: v for v in self.values}
        unknown = [k for k in values if k not in by_key]
        if unknown:
            raise ValueError(f"measure {self.key!r} returned {unknown[0]!r}, which it does not declare")
        return {by_key[k].name(domain and self.features): v for k, v in values.items()}


class Logged(NamedTuple):
    """What a logged name is: its value spec, its measure, and whether it is the domain variant."""
    value: MetricSpec
    measure: MeasureSpec
    domain: bool


class _Measures(Registry[MeasureSpec]):
    """The measures, with a lookup of every logged name kept until the next (un)registration."""

    def __init__(self):
        super().__init__("metric")
        self._lookup: dict[str, Logged] | None = None

    def register(self, name: str, spec: MeasureSpec) -> MeasureSpec:
        if name != spec.key:
            raise ValueError(f"measure {spec.key!r} registered as {name!r}")
        if spec.needs not in (SAMPLING, *HELDOUT):
            raise ValueError(f"measure {spec.key!r} needs {spec.needs!r}; the evaluator knows "
                             f"{', '.join(map(repr, (SAMPLING, *HELDOUT)))}")
        if spec.needs in HELDOUT and len(spec.extras) != 2:
            raise ValueError(f"measure {spec.key!r} is scored on real images: its extras name the row's "
                             f"split and image-count keys")
        if name in self:
            raise ValueError(f"metric {name!r} is registered twice")
        clash = set(_names(spec)) & set(self.lookup())
        if clash:
            raise ValueError(f"measure {spec.key!r} logs {sorted(clash)[0]!r}, which another measure logs")
        super().register(name, spec)
        self._lookup = None
        return spec

    def unregister(self, name: str) -> None:
        super().unregister(name)
        self._lookup = None

    def lookup(self) -> dict[str, Logged]:
        if self._lookup is None:
            self._lookup = {n: logged for m in self._ensure().values() for n, logged in _names(m).items()}
        return self._lookup


def _names(m: MeasureSpec) -> dict[str, Logged]:
    """Every name a measure's values are logged under, and the rule's name where an override differs
    (an old run's fid_domain is FD-domain's value too)."""
    out = {}
    for v in m.values:
        for domain in m.variants():
            out[v.name(domain)] = Logged(v, m, domain)
        if m.features and v.domain_key:
            out.setdefault(MetricSpec(v.key, v.title).name(True), Logged(v, m, True))
    return out


MEASURES = _Measures()


def register(spec: MeasureSpec) -> MeasureSpec:
    return MEASURES.register(spec.key, spec)


def unregister(key: str) -> None:
    MEASURES.unregister(key)


# ---- reading it ------------------------------------------------------------------------------
def measures(needs: str | tuple | None = None) -> list[MeasureSpec]:
    """The measures in registration order, those needing `needs` (one, or any of a tuple) only when given."""
    wanted = (needs,) if isinstance(needs, str) else needs
    return [m for _, m in MEASURES.items() if wanted is None or m.needs in wanted]


def measure_names(needs: str | tuple | None = None) -> list[str]:
    return [m.key for m in measures(needs)]


def parse_metrics(spec) -> list[str]:
    """'fid, KID' or ['fid', 'kid'] -> ['fid', 'kid']; an unknown name is a ValueError naming the known."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = [m.strip().lower() for m in items if m.strip()]
    bad = [m for m in out if m not in MEASURES]
    if bad:
        raise ValueError(f"unknown metric {bad[0]!r}; choose from: {', '.join(measure_names())}")
    return out


def values(needs: str | tuple | None = None) -> list[tuple[MeasureSpec, MetricSpec]]:
    """Every (measure, value) in order."""
    return [(m, v) for m in measures(needs) for v in m.values]


def value(key: str) -> MetricSpec:
    """A value by its key ("fid", "bits_per_dim")."""
    for _, v in values():
        if v.key == key:
            return v
    raise KeyError(f"unknown metric value {key!r}")


def logged(name: str) -> Logged | None:
    """What a logged name (without quality/) is, or None for a name no measure logs."""
    return MEASURES.lookup().get(name)


def logged_names() -> tuple[str, ...]:
    """Every name a value may be logged under (a run written before the quality/ namespace logged them bare)."""
    return tuple(MEASURES.lookup())


def label(name: str) -> str:
    """'fd_domain' -> 'FD-domain', 'kid_domain' -> 'KID-domain', 'bits_per_dim' -> 'bits/dim'; a name
    no measure logs is shown as it is (its '_domain' as '-domain')."""
    hit = logged(name)
    if hit is not None:
        return hit.value.label(hit.domain)
    return name[:-len("_domain")] + "-domain" if name.endswith("_domain") else name


def direction(name: str) -> str:
    """LOWER, HIGHER or NONE for a logged name (NONE for a spread or a name no measure logs)."""
    hit = logged(name)
    return hit.value.direction if hit is not None else NONE


def headline_rank(name: str) -> tuple | None:
    """Sort key of a logged score for being a run's headline (lowest first); None: not a candidate."""
    hit = logged(name)
    if hit is None or hit.value.direction == NONE:
        return None
    order = [v for _, v in values()]
    rank = hit.value.headline if hit.value.headline is not None else len(order)
    return rank, order.index(hit.value), hit.domain, name


def config_help() -> str:
    return "Which metrics: " + ", ".join(m.help or m.key for m in measures()) + "."


# ---- the built-in metrics (engine/metrics/measures.py computes them) --------------------------
_FN = "engine.metrics.measures:"
register(MeasureSpec("fid", _FN + "frechet_distance", help="fid (Fréchet distance)", values=(
    MetricSpec("fid", "FID", LOWER, fmt=".4g", plot=PLOT_CURVE, headline=0, column="fd",
               domain_key="fd_domain", domain_title="FD-domain"),)))
register(MeasureSpec("kid", _FN + "kernel_inception_distance", values=(
    MetricSpec("kid", "KID", LOWER, fmt=".4g", table=TABLE_DETAIL, headline=1),
    MetricSpec("kid_std", "KID std", fmt=".2g", plot="", table=TABLE_DETAIL, spread_of="kid"))))
register(MeasureSpec("pr", _FN + "precision_recall", help="pr (precision/recall)", values=(
    MetricSpec("precision", "precision", HIGHER, fmt=".3f", headline=3),
    MetricSpec("recall", "recall", HIGHER, fmt=".3f", headline=4))))
register(MeasureSpec("is", _FN + "inception_score", values=(
    MetricSpec("is", "IS", HIGHER, fmt=".3g", table=TABLE_DETAIL, headline=5),
    MetricSpec("is_std", "IS std", plot="", table="", spread_of="is"))))
register(MeasureSpec("bpd", _FN + "bits_per_dim", needs=LIKELIHOOD, features=False, extras=("bpd_split", "bpd_images"),
                     help="bpd (bits/dim on held-out images, for models with a likelihood)", values=(
    MetricSpec("bits_per_dim", "bits/dim", LOWER, unit="bits per sub-pixel", fmt=".3f", headline=2),)))
register(MeasureSpec("codebook", _FN + "codebook_usage", needs=CODEBOOK, features=False,
                     extras=("codebook_split", "codebook_images"),
                     help="codebook (a tokenizer's code usage and perplexity on held-out images)", values=(
    MetricSpec("codebook_usage", "codebook usage", HIGHER, unit="fraction of the codes used", fmt=".3f", table=""),
    MetricSpec("codebook_perplexity", "code perplexity", HIGHER, unit="codes (exp of the histogram's entropy)",
               fmt=".4g", table=""))))


def metrics_flag_help() -> str:
    """The help of `eval --metrics`: the sample measures, then those scored on real images."""
    return (f"comma-separated: {','.join(measure_names(SAMPLING))}, and {','.join(measure_names(HELDOUT))} "
            f"(on held-out data, or on --real DIR: bits/dim for a likelihood, codebook for a tokenizer)")
