"""OpenMM systems shared by the OpenMM tests: TIP3P water boxes, a CA II fragment, one-force contexts."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit

from tests.conftest import shared_data

ROOT = Path(__file__).resolve().parents[1]
KJ_NM = unit.kilojoule_per_mole / unit.nanometer


def water(size_nm: float) -> app.Modeller:
    """TIP3P water in a periodic cube of ``size_nm`` (0.8 nm: 45 atoms)."""
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(app.ForceField("amber14/tip3p.xml"), boxSize=openmm.Vec3(size_nm, size_nm, size_nm) * unit.nanometer)
    return modeller


def ca2_fragment() -> app.Modeller:
    """CA II residues 94-96 (His94, His96, Zn, protonated), no solvent, non-periodic (PDB 3KS3, shared data)."""
    pdb = shared_data("structures/3ks3.pdb")
    sys.path.insert(0, str(ROOT / "examples" / "carbonic_anhydrase"))
    try:
        import prepare
    finally:
        sys.path.pop(0)
    prepared = prepare.prepare(str(pdb), residues=(94, 96), shell_nm=0.0)
    modeller = app.Modeller(prepared.topology, prepared.positions)
    modeller.delete([r for r in modeller.topology.residues() if r.name in ("HOH", "NA", "CL")])
    modeller.topology.setPeriodicBoxVectors(None)
    return modeller


def one_force_context(force: openmm.Force, modeller: app.Modeller, platform: str = "Reference",
                      properties: dict[str, str] | None = None) -> openmm.Context:
    """A Context of a System holding only ``force``, at the modeller's positions and box (``properties``: the
    platform's, e.g. {"Precision": "double"} on CUDA)."""
    system = openmm.System()
    for atom in modeller.topology.atoms():
        system.addParticle(atom.element.mass)
    if modeller.topology.getPeriodicBoxVectors() is not None:
        system.setDefaultPeriodicBoxVectors(*modeller.topology.getPeriodicBoxVectors())
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName(platform),
                             properties or {})
    context.setPositions(modeller.positions)
    return context


def energy_forces(context: openmm.Context) -> tuple[float, np.ndarray]:
    """Energy (kJ/mol) and forces (kJ/mol/nm) of the context's current state."""
    state = context.getState(getEnergy=True, getForces=True)
    return state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole), state.getForces(asNumpy=True).value_in_unit(KJ_NM)
