"""Glow / RealNVP: a multi-scale normalizing flow with exact bits/dim."""
from engine.core.families import BPD_PLOT, LOSS_PLOT, FamilySpec

SPEC = FamilySpec(__name__, "glow", "Glow / RealNVP (normalizing flow)", ".section:FlowConfig",
                  ".section:FlowSampleOptions", ".model:FlowFamily", headline=("loss/bpd",),
                  plots=(LOSS_PLOT, BPD_PLOT), order=40)
