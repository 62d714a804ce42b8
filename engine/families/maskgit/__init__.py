"""MaskGIT (Chang et al. 2022): a bidirectional transformer over a tokenizer's token grid (the vqvae
family, named as the parent checkpoint), trained to predict masked tokens under the cosine masking
schedule; sampling decodes all tokens in K parallel steps, keeping the most confident; inpainting
decodes only the tokens the mask touches."""
from engine.core.capabilities import InpaintMethod
from engine.core.families import FamilySpec

SPEC = FamilySpec(__name__, "maskgit", "MaskGIT (token prior on a VQ/FSQ parent)", ".section:MaskGITConfig",
                  ".section:MaskGITSampleOptions", ".model:MaskGITFamily", headline=("loss/ce",), order=37,
                  inpaint_methods=(
                      InpaintMethod("tokens", "Masked-token decoding",
                                    "The tokens under the mask are decoded iteratively from the ones around them "
                                    "(the image's own tokens); unmasked pixels are kept exactly."),))
