"""Network parts that several families use: residual blocks, attention and timestep embeddings
(blocks.py), the diffusion UNet (unet.py), pixel likelihoods and bits/dim (likelihood.py). A family
takes from here, never from another family's folder."""
