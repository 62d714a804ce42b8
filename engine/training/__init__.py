"""The family-agnostic training loop, checkpoints and the run directory."""
