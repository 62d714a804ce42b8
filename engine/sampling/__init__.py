"""Noise schedules, solver objects (solvers.py, registered by name in engine/solvers.py), the one
denoising loop and inversion (denoise.py), and latent interpolation (interpolate.py)."""
