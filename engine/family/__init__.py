"""What every model family builds on: the Family base class and StepContext (base.py), the
capability interfaces (interfaces.py), per-image seeded noise (noise.py) and the progress and
cancel types every long computation takes (progress.py). Light to import: the modules import
torch, this package file does not."""
