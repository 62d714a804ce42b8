"""Diffusion machinery any diffusion-like family uses: noise schedules, solvers (registered by name
in engine/core/solvers.py), the one denoising loop and its inversion, and diffusion inpainting."""
