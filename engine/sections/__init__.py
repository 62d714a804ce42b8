"""Family config sections (light: no torch): each family's [model] section and its [sampling]
options, as dataclasses of opt() fields. The registry (engine/families.py) names them; the GUI
draws its forms and the Sampling canvas its controls from their field metadata."""
