"""The AR prior: a small causal transformer over a tokenizer's codes in raster order (the vqvae
family, named as the parent checkpoint), a class or start token first; top-k / top-p / temperature
sampling with a KV cache, one token per network pass."""
from engine.core.families import FamilySpec

SPEC = FamilySpec(__name__, "arprior", "AR prior (causal transformer on a VQ/FSQ parent)", ".section:ARPriorConfig",
                  ".section:ARPriorSampleOptions", ".model:ARPriorFamily", headline=("loss/ce",), order=36)
