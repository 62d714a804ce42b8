"""GenLab's GUI: a thin PySide6 client. It never trains, samples or computes metrics itself:
engine processes do, and the GUI reads their events and the run directory."""
