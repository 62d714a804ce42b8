"""GenLab's engine: data, models, training, sampling. PyTorch only; never imports Qt."""
__version__ = "0.1.0"
