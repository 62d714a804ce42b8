"""The detection lab: training-free checks that tell generated or manipulated images from real ones."""
