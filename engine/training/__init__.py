"""The training loop and its jobs: resume, artifacts, evaluation, checkpoints, control, torchrun ranks."""
