"""Device-generic comparisons behind tests/gpu: each takes the device it runs on, so the same code is smoke-tested
on the CPU in the normal suite (tests/test_gpu_checks_on_cpu.py) before GPU time is spent on it; only a run with
``device="cuda"`` (tests/gpu, marker ``cuda``) counts as the GPU test."""

from __future__ import annotations

import ase
import numpy as np
import torch
from ase.build import bulk, molecule

from orb_md import build_model
from orb_md.batch import atoms_to_batch, evaluate
from orb_md.graph import FixedCapacityNeighborList, neighbor_list
from orb_md.graph.knn import edge_lengths
from orb_md.md import BatchMD, create_state
from orb_md.precision import apply_precision

OMAT = ("orb-v3-direct-20-omat", "orb-v3-direct-inf-omat", "orb-v3-conservative-20-omat", "orb-v3-conservative-inf-omat")


def structures(repeat: int = 3) -> list[ase.Atoms]:
    """A rattled fcc Cu crystal (4·repeat³ atoms, periodic) and a water-methane cluster (non-periodic)."""
    crystal = bulk("Cu", "fcc", a=3.61, cubic=True) * (repeat, repeat, repeat)
    crystal.rattle(0.05, seed=1)
    cluster = molecule("H2O") + molecule("CH4")
    cluster.positions[3:] += [2.8, 0.3, 0.1]
    return [crystal, cluster]


def model_outputs(name: str, device: str, precision: str = "float64", seed: int = 0, **width) -> dict[str, np.ndarray]:
    """Energy (B,), forces (N,3) and stress (B,6) of seeded random weights of ``name`` on ``device`` (float64 NumPy).

    The weights are drawn on the CPU and then moved, so every device evaluates the same model."""
    previous = torch.get_float32_matmul_precision()
    try:
        dtype = apply_precision(precision)
        model = build_model(name, seed=seed, dtype=dtype, **width).to(device)
        batch = atoms_to_batch(structures(), dtype=dtype, device=device)
        out = evaluate(model, batch, forces=True, stress=True)
    finally:
        torch.set_float32_matmul_precision(previous)
    return {key: out[key].double().cpu().numpy() for key in ("energy", "forces", "stress")}


def relative_errors(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> dict[str, float]:
    """Largest |energy| error relative to |energy|, largest force and stress component errors (eV/Å, eV/Å³)."""
    return {
        "energy_relative": float(np.max(np.abs(got["energy"] - want["energy"]) / np.abs(want["energy"]))),
        "forces_abs": float(np.max(np.abs(got["forces"] - want["forces"]))),
        "stress_abs": float(np.max(np.abs(got["stress"] - want["stress"]))),
    }


def edges(atoms: ase.Atoms, backend: str, device: str) -> tuple[np.ndarray, ...]:
    """(senders, receivers, integer shifts) of the 6 Å / 20-nearest graph of ``atoms``; ``backend`` "fixed_capacity"
    is :class:`FixedCapacityNeighborList` with its padding removed."""
    positions = torch.tensor(atoms.positions, dtype=torch.float64, device=device)
    cell = torch.tensor(atoms.cell.array, dtype=torch.float64, device=device)[None]
    index = torch.zeros(len(atoms), dtype=torch.int64, device=device)
    if backend == "fixed_capacity":
        module = FixedCapacityNeighborList(len(atoms), 6.0, 20, cell=cell[0].cpu() if atoms.pbc.all() else None)
        senders, receivers, shifts, _overflow = module.to(device)(positions, cell)
        model_cell = cell if module.periodic else module.vacuum_cell.to(positions.dtype)
        real = edge_lengths(positions, model_cell, index, senders, receivers, shifts.long()) < 6.0  # not padding
        senders, receivers, shifts = senders[real], receivers[real], shifts[real]
    else:
        pbc = torch.tensor(atoms.pbc, device=device)[None]
        senders, receivers, shifts = neighbor_list(positions, cell, pbc, index, 6.0, 20, backend=backend)
    return tuple(t.cpu().numpy().astype(np.int64) for t in (senders, receivers, shifts.round()))


def batched_md(device: str, steps: int = 20, name: str = "orb-v3-conservative-20-omat", **width) -> dict[str, np.ndarray]:
    """Positions, velocities and energies after ``steps`` Langevin steps (float64, 0.5 fs) of the two structures in
    one batch on ``device``; the thermostat's noise is drawn on the CPU, so devices see the same noise."""
    model = build_model(name, seed=2, dtype=torch.float64, **width).to(device)
    state = create_state(structures(2), ensemble="nvt", temperature=300.0, dt=0.5, friction=0.01, seed=5, device=device)
    BatchMD(state, model, progress=False).run(steps)
    return {"positions": state.positions.cpu().numpy(), "velocities": state.velocities.cpu().numpy(),
            "energy": state.energy.cpu().numpy()}


def torchforce_energy_forces(name: str, platform: str, cuda_graphs: bool, displacements: int = 2,
                             **width) -> list[tuple[float, np.ndarray]]:
    """(energy kJ/mol, forces kJ/mol/nm) of an orb_md TorchForce on 0.9 nm of TIP3P water (periodic) on OpenMM's
    ``platform`` (double precision where it has one), at the start and after ``displacements`` seeded moves of every
    atom: with CUDA graphs the later calls replay the captured graph."""
    import openmm.unit as unit

    from orb_md_openmm.force import create_torch_force
    from tests.openmm_systems import energy_forces, one_force_context, water

    model = build_model(name, seed=0, dtype=torch.float64, **width)
    modeller = water(0.9)
    force = create_torch_force(model, modeller.topology, cuda_graphs=cuda_graphs)
    properties = {"Precision": "double"} if platform in ("CUDA", "OpenCL") else {}
    context = one_force_context(force, modeller, platform, properties)
    start = np.array(modeller.positions.value_in_unit(unit.nanometer))
    rng = np.random.default_rng(3)
    results = [energy_forces(context)]
    for _ in range(displacements):
        context.setPositions(start + rng.normal(scale=0.002, size=start.shape))
        results.append(energy_forces(context))
    return results


def lammps_parity(tmp, name: str, device: str, ranks: int = 0, **width) -> dict[str, float]:
    """Largest differences between LAMMPS (``pair_style mliap unified``, model exported with ``device``) and the
    ASE calculator on the CPU, float64, for a 60-atom Cu/O gas in a periodic 16 Å box: energy (relative), forces
    (eV/Å) and stress (eV/Å³). ``ranks``: run under mpirun with that many ranks (0: plain lmp)."""
    from orb_md.calculator import OrbCalculator
    from orb_md_lammps.unified import make_unified
    from tests.systems import sparse_gas
    from tests.test_lammps_orb import lammps_results, write_data

    model = build_model(name, seed=0, dtype=torch.float64, **width)
    path = tmp / f"{name}-{device.replace(':', '')}.pt"
    torch.save(make_unified(model, device=device), path)
    data, elements, atoms = write_data(tmp, sparse_gas())
    atoms.calc = OrbCalculator(model)
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    got = lammps_results(tmp, data, path, elements, ranks=ranks, extra="neighbor 1.0 bin\n")
    return {"energy_relative": abs(got["energy"] - energy) / abs(energy),
            "forces_abs": float(np.abs(got["forces"] - forces).max()),
            "stress_abs": float(np.abs(got["stress"] - stress).max())}
