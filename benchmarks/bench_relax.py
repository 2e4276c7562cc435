"""Relaxation benchmark: structures relaxed per second, batched FIRE (orb_md.relax) against ASE's FIRE one
structure at a time with orb_md's calculator and with orb-models 0.5.5's ORBCalculator, in one run.

Structures (``--count`` of them, default 200, a quarter per dimensionality, rattled 0.05 Å with seed i):
0D molecules (H2O, CH4, NH3, C2H6, CH3OH) and Cu/Au 4-6-atom clusters; 1D Cu/Au/Al zig-zag chains along z;
2D Al/Cu/Au fcc(111) and (100) slabs, 2x2x2 and 2x2x3 atoms, 5 Å vacuum each side; 3D Cu/Al/Au fcc cells
(primitive x 2, conventional) 2 % strained and sheared. Periodic structures relax positions and cell (ASE's
FrechetCellFilter with the strain mask of their periodic axes, as orb_md.relax), molecules positions only;
fmax 0.05 eV/Å, at most ``--max-steps`` steps. Model: the bundled orb-md-demo-v1 (Orb-v3 conservative-inf
architecture at reduced width) at ``--precision``; orb-models gets the same weights
(``tests/orb_reference.orb_models_twin``). orb-models 0.5.5 rejects partial periodicity, so its slabs and
wires are fully periodic with their vacuum (the strain mask is the same). Rates use wall time; the load
average is printed because the machine may be shared.

Usage: nice python benchmarks/bench_relax.py [--count 200] [--threads 1 2] [--max-steps 300] [--precision float32-high]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import ase
import ase.build
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def structures(count: int) -> list[ase.Atoms]:
    """``count`` mixed 0D-3D structures (see module doc), in the order 0D, 1D, 2D, 3D repeated."""
    out = []
    for i in range(count):
        kind, k = i % 4, i // 4
        metal = ("Cu", "Au", "Al")[k % 3]
        if kind == 0:
            if k % 2:
                atoms = ase.build.molecule(("H2O", "CH4", "NH3", "C2H6", "CH3OH")[k // 2 % 5])
            else:
                n = 4 + k // 2 % 3
                atoms = ase.Atoms(metal[:2] if metal != "Al" else "Cu", positions=np.zeros((1, 3)))
                atoms = ase.Atoms([atoms[0].symbol] * n, positions=_cluster(n))
        elif kind == 1:
            n = 2 + k % 2
            spacing = {"Cu": 2.35, "Au": 2.6, "Al": 2.6}[metal]
            atoms = ase.Atoms([metal] * n, positions=[[5.0 + 0.6 * (j % 2), 5.0, spacing * j * 0.9] for j in range(n)],
                              cell=[10.0, 10.0, spacing * 0.9 * n], pbc=(False, False, True))
        elif kind == 2:
            build = ase.build.fcc111 if k % 2 else ase.build.fcc100
            atoms = build(metal, size=(2, 2, 2 + k // 2 % 2), vacuum=5.0)
            atoms.pbc = (True, True, False)
        else:
            a = {"Cu": 3.61, "Au": 4.08, "Al": 4.05}[metal]
            atoms = ase.build.bulk(metal, "fcc", a=a * 1.02, cubic=bool(k % 2))
            if not k % 2:
                atoms = atoms * (2, 1, 1)
            atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.02 * np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]])),
                           scale_atoms=True)
        atoms.rattle(0.05, seed=i)
        out.append(atoms)
    return out


def _cluster(n: int) -> np.ndarray:
    """A compact n-atom cluster: fcc sites nearest the origin (2.55 Å bonds)."""
    sites = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3)).positions
    sites = sites - sites[len(sites) // 2]
    return sites[np.argsort(np.linalg.norm(sites, axis=1))[:n]] + 8.0


def ase_fire(atoms: ase.Atoms, calculator, relax_cell: bool, fmax: float, max_steps: int,
             pad: bool) -> tuple[int, bool]:
    """ASE FIRE (+ FrechetCellFilter) on a copy of ``atoms``: (steps, converged); ``pad``: pbc True (orb-models)."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    from orb_md.relax.cell import strain_mask

    atoms = atoms.copy()
    mask = strain_mask(atoms.pbc)
    if pad and atoms.pbc.any():
        atoms.pbc = True
    atoms.calc = calculator
    optimizer = FIRE(FrechetCellFilter(atoms, mask=mask) if relax_cell else atoms, logfile=None)
    converged = optimizer.run(fmax=fmax, steps=max_steps)
    return optimizer.nsteps, bool(converged)


def main() -> None:
    from orb_models.forcefield.calculator import ORBCalculator

    from orb_md import load_model
    from orb_md.calculator import OrbCalculator
    from orb_md.relax import relax
    from tests.orb_reference import orb_models_twin

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--fmax", type=float, default=0.05)
    parser.add_argument("--precision", default="float32-high")
    args = parser.parse_args()
    model = load_model("orb-md-demo-v1", precision=args.precision)
    twin = orb_models_twin(model)
    systems = structures(args.count)
    flags = [bool(a.pbc.any()) for a in systems]
    print(f"{len(systems)} structures ({sum(len(a) for a in systems)} atoms), model {model.config.name} "
          f"{args.precision}, fmax {args.fmax}, max {args.max_steps} steps; load average {os.getloadavg()}")
    orb_md_calculator, orb_models_calculator = OrbCalculator(model), ORBCalculator(twin, device="cpu")
    relax(systems[:4], model, max_steps=2, relax_cell=flags[:4], progress=False)  # warm-up: native neighbour list
    for calculator, pad in ((orb_md_calculator, False), (orb_models_calculator, True)):
        ase_fire(systems[3], calculator, True, args.fmax, 2, pad)
    for threads in args.threads:
        torch.set_num_threads(threads)
        rates = {}
        start = time.perf_counter()
        results = relax(systems, model, fmax=args.fmax, max_steps=args.max_steps, relax_cell=flags, progress=False)
        elapsed = time.perf_counter() - start
        statuses = {s: sum(r.status == s for r in results) for s in dict.fromkeys(r.status for r in results)}
        rates["orb_md batched"] = (elapsed, sum(r.steps for r in results), statuses)
        for name, calculator, pad in (("ASE FIRE + orb_md OrbCalculator", orb_md_calculator, False),
                                      ("ASE FIRE + orb-models ORBCalculator", orb_models_calculator, True)):
            start = time.perf_counter()
            runs = [ase_fire(a, calculator, f, args.fmax, args.max_steps, pad) for a, f in zip(systems, flags)]
            elapsed = time.perf_counter() - start
            rates[name] = (elapsed, sum(n for n, _ in runs), {"converged": sum(c for _, c in runs)})
        baseline = min(rates[k][0] for k in rates if k != "orb_md batched")
        print(f"\n{threads} thread(s), load average after: {os.getloadavg()}")
        print("| method | wall s | structures/s | FIRE steps (sum) | outcome | speed-up vs faster ASE |")
        print("|---|---|---|---|---|---|")
        for name, (elapsed, steps, outcome) in rates.items():
            print(f"| {name} | {elapsed:.1f} | {len(systems) / elapsed:.2f} | {steps} | "
                  f"{', '.join(f'{n} {s}' for s, n in outcome.items())} | {baseline / elapsed:.2f} |")


if __name__ == "__main__":
    main()
