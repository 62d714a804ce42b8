"""Network parts that several families use: residual blocks, attention and timestep embeddings
(blocks.py), the diffusion UNet (unet.py) and DiT (dit.py) and the choice between them
(backbones.py), pixel likelihoods and bits/dim (likelihood.py). A family takes from here, never
from another family's folder."""
