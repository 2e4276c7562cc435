"""The 0123D dimensionality benchmark (Benedini et al., arXiv:2508.15614) for any Orb model.

Modules, one job each: :mod:`~.periodicity` (dimensionality and periodic directions), :mod:`~.geometry`
(geometry and energy errors), :mod:`~.fragmentation` (size checks), :mod:`~.dataset` (reading 0123D and
extxyz sets), :mod:`~.protocol` (relax and score), :mod:`~.report` (tables and box plots),
:mod:`~.reference_set` (the shipped EMT set), :mod:`~.command` (``orb-md dimensionality``).
"""

from orb_md.dimensionality.dataset import Reference, read_references
from orb_md.dimensionality.fragmentation import SIZE_LIMITS, is_fragmented, size
from orb_md.dimensionality.geometry import align, energy_error_per_atom, geometry_error, minimum_image
from orb_md.dimensionality.protocol import Outcome, run_protocol
from orb_md.dimensionality.report import summarize

__all__ = ["SIZE_LIMITS", "Outcome", "Reference", "align", "energy_error_per_atom", "geometry_error",
           "is_fragmented", "minimum_image", "read_references", "run_protocol", "size", "summarize"]
