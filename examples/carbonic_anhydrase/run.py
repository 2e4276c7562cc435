"""Carbonic anhydrase II under Orb-v3 in OpenMM: every atom ML (no classical force field).

    python run.py                                   # full prepared CA II, orb-v3-direct-inf-omat (GPU)
    python run.py --small --steps 5 --random-architecture   # CPU smoke run, offline, random weights

Prepares 3KS3 with prepare.py (or reads ``--prepared`` PDB), builds the System with
``MLPotential("orb_md/<model>")``, runs LangevinMiddleIntegrator at 300 K with a tqdm progress
bar, writes a DCD trajectory, prints ns/day and plots the protein CA RMSD vs time (mdtraj).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import openmm
import openmm.app as app
import openmm.unit as unit

HERE = Path(__file__).resolve().parent
DEFAULT_PDB = HERE.parents[2] / "shared" / "data" / "structures" / "3ks3.pdb"


def build_system(args: argparse.Namespace) -> tuple[app.Topology, unit.Quantity, openmm.System]:
    import torch
    from openmmml import MLPotential

    if args.prepared:
        pdb = app.PDBFile(str(args.prepared))
        topology, positions = pdb.topology, pdb.positions
    else:
        sys.path.insert(0, str(HERE))
        import prepare

        kwargs = dict(residues=(91, 120), shell_nm=0.3) if args.small else {}
        prepared = prepare.prepare(args.source, **kwargs)
        topology, positions = prepared.topology, prepared.positions
    model = None
    if args.random_architecture:
        from orb_md import build_model

        model = build_model(args.model, seed=0, dtype=torch.float32, latent_dim=32, mlp_hidden_dim=64)
    system = MLPotential(f"orb_md/{args.model}").createSystem(
        topology, model=model, precision=args.precision, implementation=args.implementation
    )
    return topology, positions, system


def rmsd_plot(topology_pdb: Path, dcd: Path, png: Path, dt_ps: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mdtraj

    traj = mdtraj.load(str(dcd), top=str(topology_pdb))
    ca = traj.topology.select("name CA and protein")
    rmsd_nm = mdtraj.rmsd(traj, traj, 0, atom_indices=ca)
    times = [i * dt_ps for i in range(traj.n_frames)]
    plt.figure(figsize=(5, 3.2))
    plt.plot(times, rmsd_nm * 10.0)
    plt.xlabel("time (ps)")
    plt.ylabel("C$_\\alpha$ RMSD (Å)")
    plt.tight_layout()
    plt.savefig(png, dpi=120)
    print(f"RMSD vs time: {png} (last {rmsd_nm[-1] * 10:.3f} Å over {traj.n_frames} frames)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_PDB), help="PDB path or id for prepare.py (default: shared 3ks3.pdb)")
    parser.add_argument("--prepared", type=Path, help="an already prepared PDB (skips prepare.py)")
    parser.add_argument("--small", action="store_true", help="residues 91-120 in a 0.3 nm water shell (non-periodic, ~600 atoms)")
    parser.add_argument("--model", default="orb-v3-direct-inf-omat")
    parser.add_argument("--random-architecture", action="store_true", help="random reduced-width weights of --model (offline demo)")
    parser.add_argument("--precision", default="float32-high", choices=("float32-high", "float32-highest", "float64"))
    parser.add_argument("--implementation", default="torchforce", choices=("torchforce", "pythonforce"))
    parser.add_argument("--platform", help="OpenMM platform (default: fastest available)")
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--timestep-fs", type=float, default=0.5, help="no constraints: keep 0.5 fs")
    parser.add_argument("--report-interval", type=int, default=100)
    parser.add_argument("-o", "--output", type=Path, default=Path("caii_run"))
    args = parser.parse_args(argv)
    args.report_interval = max(1, min(args.report_interval, args.steps))

    from tqdm import tqdm

    args.output.mkdir(parents=True, exist_ok=True)
    topology, positions, system = build_system(args)
    print(f"{topology.getNumAtoms()} atoms, all under orb_md/{args.model}{' (random weights)' if args.random_architecture else ''}")
    dt = args.timestep_fs * unit.femtoseconds
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, dt)
    platform = openmm.Platform.getPlatformByName(args.platform) if args.platform else None
    simulation = app.Simulation(topology, system, integrator, platform)
    simulation.context.setPositions(positions)
    simulation.context.setVelocitiesToTemperature(300 * unit.kelvin)
    start_pdb = args.output / "start.pdb"
    with open(start_pdb, "w") as handle:
        app.PDBFile.writeFile(topology, positions, handle)
    dcd = args.output / "trajectory.dcd"
    simulation.reporters.append(app.DCDReporter(str(dcd), args.report_interval))
    print(f"platform {simulation.context.getPlatform().getName()}; trajectory {dcd}")
    from orb_md_openmm.errors import engine_errors  # a blow-up reads as orb_md's one-line sentence

    with engine_errors():
        simulation.step(1)  # first call compiles/loads the model: keep it out of the timing
        start = time.perf_counter()
        done = 1
        with tqdm(total=args.steps, initial=1, unit="step") as bar:
            while done < args.steps:
                chunk = min(args.report_interval, args.steps - done)
                simulation.step(chunk)
                done += chunk
                bar.update(chunk)
    elapsed = time.perf_counter() - start
    timed = args.steps - 1
    if timed > 0:
        ns_per_day = timed * args.timestep_fs * 1e-6 / elapsed * 86400
        print(f"{timed / elapsed:.3f} steps/s, {ns_per_day:.4f} ns/day ({timed} steps in {elapsed:.2f} s)")
    rmsd_plot(start_pdb, dcd, args.output / "rmsd.png", args.report_interval * args.timestep_fs * 1e-3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
