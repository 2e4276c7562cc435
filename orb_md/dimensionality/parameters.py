"""The 0123D protocol's numbers (Benedini et al.): relaxation criteria and fragmentation size limits."""

FMAX = 0.04  # eV/Å: converged when every force is below this
MAX_STEPS = 15_000  # FIRE steps before a structure counts as not converged
MAX_FORCE = 10_000.0  # eV/Å: a larger atomic force fails the structure (blow-up)

SIZE_LIMITS = {0: 20.0, 1: 12.5, 2: 7.5}
"""Å: 0D diameter, 1D width, 2D thickness (no limit for 3D); beyond it a structure is fragmented."""
