"""OpenMM paths for an orb_md model on a ~1,000-atom water box, measured in one run.

    python benchmarks/bench_openmm.py [--atoms 1000] [--steps 20] [--platform CPU] [--full-width]

Rows: (1) direct call of the scripted wrapper on the same positions (positions → graph → model
→ forces, no OpenMM), (2) TorchForce inside OpenMM (Verlet step), (3) OpenMM PythonForce
(host round trip). Prints steps/s, ns/day at 0.5 fs, the overhead ratios TorchForce/direct and
PythonForce/TorchForce, and peak memory (CUDA max_memory_allocated, or process max RSS on CPU).
Model: random weights of --model; reduced width (latent 32, MLP 64) unless --full-width.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit
import torch
from openmmml import MLPotential

from orb_md import build_model
from orb_md_openmm.common import make_wrapper, topology_atomic_numbers


def water_box(atoms: int) -> app.Modeller:
    edge = (atoms / 100.0) ** (1 / 3)  # ~100 atoms per nm^3
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(app.ForceField("amber14/tip3p.xml"), boxSize=openmm.Vec3(edge, edge, edge) * unit.nanometer)
    return modeller


def time_steps(run, steps: int) -> float:
    run(1)  # warm-up (TorchScript profiling runs, graph allocation)
    run(1)
    start = time.perf_counter()
    run(steps)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--atoms", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model", default="orb-v3-direct-inf-omat")
    parser.add_argument("--platform", default="CUDA" if torch.cuda.is_available() else "CPU")
    parser.add_argument("--full-width", action="store_true")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args = parser.parse_args()
    device = "cuda" if args.platform == "CUDA" else "cpu"
    dtype = getattr(torch, args.dtype)
    sizes = {} if args.full_width else {"latent_dim": 32, "mlp_hidden_dim": 64}
    model = build_model(args.model, seed=0, dtype=dtype, device=device, **sizes)
    modeller = water_box(args.atoms)
    n = modeller.topology.getNumAtoms()
    print(f"{n} atoms, {args.model} ({'full' if args.full_width else 'reduced'} width, {args.dtype}), platform {args.platform}, "
          f"torch threads {torch.get_num_threads()}")
    dt_fs = 0.5

    # (1) direct call of the same (scripted) wrapper
    wrapper = torch.jit.script(make_wrapper(model, topology_atomic_numbers(modeller.topology, None), None, True).to(device))
    positions = torch.tensor(np.asarray(modeller.positions.value_in_unit(unit.nanometer)), dtype=dtype, device=device)
    box = torch.tensor(np.asarray(modeller.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)), dtype=dtype, device=device)
    direct = model.config.kind == "direct"

    def call(k: int) -> None:
        for _ in range(k):
            if direct:
                wrapper(positions, box)
            else:
                x = positions.clone().requires_grad_(True)
                torch.autograd.grad(wrapper(x, box), x)
        if device == "cuda":
            torch.cuda.synchronize()

    rates = {"direct call": time_steps(call, args.steps)}

    # (2) TorchForce, (3) PythonForce
    for implementation in ("torchforce", "pythonforce"):
        system = MLPotential(f"orb_md/{args.model}").createSystem(modeller.topology, model=model, implementation=implementation)
        integrator = openmm.VerletIntegrator(dt_fs * 1e-3)
        context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(args.platform))
        context.setPositions(modeller.positions)

        def run(k: int, integrator=integrator, context=context) -> None:
            integrator.step(k)
            context.getState(getEnergy=True)

        rates[implementation] = time_steps(run, args.steps)
        del context

    for name, rate in rates.items():
        print(f"{name:12s} {rate:9.3f} steps/s  {rate * dt_fs * 1e-6 * 86400:9.4f} ns/day")
    print(f"overhead TorchForce / direct call: {rates['direct call'] / rates['torchforce']:.3f}x time per step")
    print(f"PythonForce / TorchForce: {rates['torchforce'] / rates['pythonforce']:.3f}x time per step")
    if device == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    print(f"peak process RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")


if __name__ == "__main__":
    main()
