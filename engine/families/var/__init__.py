"""VAR (next-scale prediction, Tian et al. 2024): a transformer over a multi-scale residual
tokenizer's token maps (a vqvae parent with quantizer = "msrq"), predicting each scale's whole map
from the coarser ones with block-causal attention; sampled scale by scale, decoded by the parent."""
from engine.core.families import FamilySpec

SPEC = FamilySpec(__name__, "var", "VAR next-scale prior (on a multi-scale tokenizer)", ".section:VARConfig",
                  ".section:VARSampleOptions", ".model:VARFamily", headline=("loss/ce",), order=37)
