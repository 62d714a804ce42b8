"""Diffusion machinery any diffusion-like family uses: noise schedules, noise levels (DDPM's discrete
schedule, EDM's sigma, flow matching's t), solvers over them (registered by name in
engine/core/solvers.py), the denoiser that turns any network parameterisation into x̂0 and ε̂, the
one denoising loop and its inversion, and diffusion inpainting."""
