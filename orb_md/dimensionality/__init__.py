"""The 0123D dimensionality benchmark (Benedini et al., arXiv:2508.15614) for any Orb model.

Modules, one job each: :mod:`~.parameters` (the protocol's numbers), :mod:`~.periodicity` (dimensionality and
periodic directions), :mod:`~.geometry` (geometry and energy errors), :mod:`~.fragmentation` (size checks),
:mod:`~.dataset` (reading 0123D and extxyz sets), :mod:`~.protocol` (relax and score), :mod:`~.report` (tables
and box plots), :mod:`~.reference_set` (the shipped EMT set), :mod:`~.command` (``orb-md dimensionality``).
Nothing is imported here: the command line registers the subcommand without scipy or matplotlib, which the
metrics and plots need (``pip install 'orb-md[dimensionality]'``).
"""
