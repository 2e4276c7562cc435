"""OpenMM adapter for orb_md: Orb-v3 as an openmm-torch TorchForce and an openmm-ml potential.

Importing this package is cheap (no torch, openmm-torch or orb_md): openmm-ml loads
:mod:`orb_md_openmm.potential` through its ``openmmml.potentials`` entry points every time
``openmmml`` is imported. The heavy parts live in :mod:`orb_md_openmm.module` (the TorchScript
wrapper), :mod:`orb_md_openmm.common` (model/topology checks shared by both paths),
:mod:`orb_md_openmm.force` (the openmm-torch TorchForce builder),
:mod:`orb_md_openmm.python_force` (the explicit ``openmm.PythonForce`` fallback) and
:mod:`orb_md_openmm.serialization` (reads back System XML with TorchForces, which
``openmm.XmlSerializer.deserialize`` crashes on with OpenMM >= 8.6 and openmm-torch 1.5).

Use: ``MLPotential("orb_md/orb-v3-direct-inf-omat").createSystem(topology, model=None |
OrbModel | "path.ckpt", implementation="torchforce" | "pythonforce", ...)``; see
:class:`orb_md_openmm.potential.OrbMDPotentialImpl` for all options.
"""

from orb_md_openmm.names import MODEL_NAMES, POTENTIAL_PREFIX, model_name, potential_name

__all__ = ["MODEL_NAMES", "POTENTIAL_PREFIX", "model_name", "potential_name"]
