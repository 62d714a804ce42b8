"""The names of engine/nn/likelihood.py's pixel distributions, for config sections (light: no torch)."""
PIXEL_DISTRIBUTIONS = ("gaussian", "bernoulli", "logistic")
GAUSSIAN_VARIANCES = ("learned", "fixed")
