"""Names of the values a run logs to metrics.jsonl, grouped by namespace so the GUI can plot them
without knowing any family:

  loss/…     what the optimizers minimise (loss/mse, loss/D, loss/G, …): the loss plot
  reg/…      regularizers (reg/gp, reg/r1, reg/pl)
  gan/…      a GAN's discriminator readings and ADA (gan/d_real, gan/d_fake, gan/ada_p)
  grad/…     gradient norms before clipping, per optimizer (grad/unet, grad/G)
  quality/…  sample-quality passes (quality/fid or quality/fd_domain, quality/kid…, quality/bits_per_dim)

The loop's own bookkeeping stays unprefixed: step, time, elapsed_s, lr, img_per_s, eta_s, eval_s,
eval_samples. Runs written before the namespaces used bare names; `normalize_row` maps them, so old
run directories still plot."""
from __future__ import annotations

QUALITY = "quality/"

_LEGACY = {"loss": "loss/mse", "loss_d": "loss/D", "loss_g": "loss/G", "gp": "reg/gp", "r1": "reg/r1",
           "pl": "reg/pl", "d_real": "gan/d_real", "d_fake": "gan/d_fake", "ada_p": "gan/ada_p",
           "ada_rt": "gan/ada_rt"}
# the bare quality names runs wrote before quality/: history, so a fixed set (a metric registered
# today is always logged under quality/ and must not rename a bare key of a new row)
_LEGACY_QUALITY = frozenset({"fid", "fd_domain", "fid_domain", "kid", "kid_std", "kid_domain", "kid_domain_std",
                             "precision", "precision_domain", "recall", "recall_domain", "is", "is_std",
                             "is_domain", "is_domain_std", "bits_per_dim"})


def _is_legacy_quality(key: str) -> bool:
    return key in _LEGACY_QUALITY


def _legacy_name(key: str) -> str:
    if key in _LEGACY:
        return _LEGACY[key]
    if key.startswith("grad_norm_"):
        return "grad/" + key[len("grad_norm_"):]
    return QUALITY + key if _is_legacy_quality(key) else key


def normalize_row(row: dict) -> dict:
    """A metrics.jsonl row with today's namespaced names (rows already namespaced pass unchanged)."""
    if not any(k in _LEGACY or _is_legacy_quality(k) or k.startswith("grad_norm_") for k in row):
        return row
    return {_legacy_name(k): v for k, v in row.items()}


def quality(scores: dict) -> dict:
    """Evaluator scores (fid, kid_domain, …) under the quality/ namespace, for metrics.jsonl."""
    return {QUALITY + k: v for k, v in scores.items()}


def wants(keys, name: str) -> bool:
    """Whether a logged name is one of `keys`: exact names, or namespaces ending in '/'."""
    return any(name == k or (k.endswith("/") and name.startswith(k)) for k in keys)


def short(key: str) -> str:
    """'loss/D' -> 'D', for legends and readouts."""
    return key.split("/", 1)[1] if "/" in key else key
