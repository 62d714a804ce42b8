"""One package per model family, each found by engine/core/families.py (no list to edit): a
folder's __init__.py holds its FamilySpec (light), section.py its config and sample options,
model.py its Family class, and the rest its own networks. A family never imports another family's
folder: what two families share lives in engine/nn/, engine/diffusion/ or engine/family/."""
