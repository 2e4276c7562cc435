"""A short Langevin MD run of a copper crystal with an Orb-v3 model through the ASE calculator.

    python examples/quickstart_md.py [--model NAME_OR_CKPT] [--steps 200]

The default model is orb_md's bundled ``orb-md-demo-v1`` (a small Orb-v3 trained on EMT metals, water and
peptides; see orb_md/weights/MODEL_CARD.md), which needs no download. With a released name whose weights
are not cached (no internet), the same architecture is used with random weights, and the run says so:
the dynamics then only exercise the engine.
"""

from __future__ import annotations

import argparse
import time

import ase.build
import numpy as np
import torch
from ase import units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

from orb_md import CheckpointError, build_model, load_model
from orb_md.calculator import OrbCalculator
from orb_md.cpus import set_torch_threads


def model_for(name: str, precision: str):
    try:
        return load_model(name, precision=precision, download=False)
    except CheckpointError as exc:
        print(f"note: {exc}\nnote: using RANDOM weights of the {name} architecture (offline demo)")
        return build_model(name, dtype=torch.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="orb-md-demo-v1", help="bundled or released name, or .ckpt path")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--timestep", type=float, default=5.0, help="fs")
    parser.add_argument("--trajectory", default="quickstart_md.traj")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: OMP_NUM_THREADS if set, else one per usable CPU)")
    args = parser.parse_args()
    set_torch_threads(args.threads)

    atoms = ase.build.bulk("Cu", "fcc", a=3.59, cubic=True).repeat((3, 3, 3))
    atoms.calc = OrbCalculator(model_for(args.model, "float32-high"))
    MaxwellBoltzmannDistribution(atoms, temperature_K=args.temperature, rng=np.random.default_rng(0))
    dyn = Langevin(atoms, args.timestep * units.fs, temperature_K=args.temperature, friction=0.01 / units.fs, fixcm=False,
                   trajectory=args.trajectory, rng=np.random.default_rng(1))
    start = time.perf_counter()

    def report() -> None:
        epot = atoms.get_potential_energy() / len(atoms)
        print(f"step {dyn.nsteps:5d}  Epot/atom {epot:9.4f} eV  T {atoms.get_temperature():7.1f} K")

    dyn.attach(report, interval=max(1, args.steps // 10))
    dyn.run(args.steps)
    elapsed = time.perf_counter() - start
    ns_day = args.steps * args.timestep * 1e-6 / (elapsed / 86400)
    print(f"{len(atoms)} atoms, {args.steps} steps in {elapsed:.1f} s ({ns_day:.3f} ns/day); trajectory: {args.trajectory}")


if __name__ == "__main__":
    main()
