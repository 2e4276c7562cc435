"""Unit factors and element limits shared by orb_md and its engine plugins (one definition each)."""

EV_IN_KJ_PER_MOL = 96.48533212331
"""1 eV per particle in kJ/mol: e * N_A / 1000 with the exact SI values of e and N_A (CODATA 2018)."""

NM_IN_ANGSTROM = 10.0
"""1 nm in Å (OpenMM's length unit in orb_md's)."""

MAX_ATOMIC_NUMBER = 117
"""The largest Z Orb-v3 takes: the ZBL term looks up the covalent radius of Z + 1 (ase.data has 118 entries
past 0) and the reference energies are indexed by Z."""
