"""OpenMM paths for an orb_md model on a ~1,000-atom water box or solvated CA II, measured in one run.

    python benchmarks/bench_openmm.py [--atoms 1000 | --system 3ks3 [--pdb PATH]] [--steps 24] [--rounds 4]
                                      [--threads 1] [--platform CPU] [--model NAME] [--full-width] [--dtype float32]

``--system 3ks3``: carbonic anhydrase II (PDB 3KS3 from ../shared/data, or ``--pdb``) prepared by
examples/carbonic_anhydrase/prepare.py (hydrogens, 0.8 nm of water in a dodecahedron, 0.15 M NaCl; ~25k
atoms), every atom under the model.

Paths: (1) direct call of the module TorchForce runs (``build_module``, frozen as TorchForce
freezes it) on the same positions: graph + model, no OpenMM; (2) TorchForce in OpenMM: one
Verlet step = one force evaluation; (3) OpenMM PythonForce (host round trip, eager wrapper).
The paths take turns, ``--rounds`` times, each timing ``--steps / --rounds`` steps after 3
warm-up calls (TorchScript's profiling executor optimises at the second call), so load from other
jobs falls on all paths alike. Per path: median over rounds of the wall time (perf_counter) and
the CPU time of the whole process (process_time: every thread, OpenMM's worker threads included)
per step; ratios of medians; steps/s and ns/day (0.5 fs) from the wall time.
torch's intra-op threads and the OpenMM CPU platform's threads are both set to ``--threads``.
On CPU, glibc's dynamic mmap/trim thresholds can make either path page-fault its large tensors
afresh every step (benchmarks/results/openmm.md); fixed thresholds, e.g.
``MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000``, remove that.
Model: random weights of --model; reduced width (latent 32, MLP 64) unless --full-width.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit
import torch
from openmmml import MLPotential

from orb_md import build_model
from orb_md_openmm.common import topology_atomic_numbers
from orb_md_openmm.force import build_module

TIME_STEP_FS = 0.5
ROOT = Path(__file__).resolve().parents[1]
SHARED_PDB = ROOT.parent / "shared" / "data" / "structures" / "3ks3.pdb"
WARM_UP_CALLS = 3


def water_box(atoms: int) -> app.Modeller:
    edge = (atoms / 100.0) ** (1 / 3)  # ~100 atoms per nm^3
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(app.ForceField("amber14/tip3p.xml"), boxSize=openmm.Vec3(edge, edge, edge) * unit.nanometer)
    return modeller


def solvated_caii(pdb: Path) -> app.Modeller:
    """CA II prepared as the example does (seeded, reproducible)."""
    sys.path.insert(0, str(ROOT / "examples" / "carbonic_anhydrase"))
    try:
        import prepare
    finally:
        sys.path.pop(0)
    prepared = prepare.prepare(str(pdb))
    return app.Modeller(prepared.topology, prepared.positions)


def direct_call(model, modeller: app.Modeller, device: str, dtype: torch.dtype) -> Callable[[], None]:
    """One evaluation of the frozen TorchForce module on the box's positions (forces included)."""
    module = torch.jit.freeze(build_module(model, topology_atomic_numbers(modeller.topology, None), None, True).eval())
    positions = torch.tensor(np.asarray(modeller.positions.value_in_unit(unit.nanometer)), dtype=dtype, device=device)
    box = torch.tensor(np.asarray(modeller.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)), dtype=dtype, device=device)
    direct = model.config.kind == "direct"

    def call() -> None:
        if direct:
            module(positions, box)
        else:
            x = positions.clone().requires_grad_(True)
            torch.autograd.grad(module(x, box), x)
        if device == "cuda":
            torch.cuda.synchronize()

    return call


def openmm_step(model, modeller: app.Modeller, implementation: str, platform: str, threads: int,
                **options) -> Callable[[], None]:
    """One Verlet step (one force evaluation) of a Context with the orb_md force only (``options``: createSystem's,
    e.g. cudaGraphs=True)."""
    system = MLPotential(f"orb_md/{model.config.name}").createSystem(
        modeller.topology, model=model, implementation=implementation, **options)
    integrator = openmm.VerletIntegrator(TIME_STEP_FS * 1e-3)
    properties = {"Threads": str(threads)} if platform == "CPU" else {}
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform), properties)
    context.setPositions(modeller.positions)

    def step() -> None:
        integrator.step(1)
        if platform in ("CUDA", "OpenCL", "HIP"):
            context.getState(getPositions=True)  # wait for the step; getEnergy=True would evaluate the force again

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--atoms", type=int, default=1000, help="water box size (--system water)")
    parser.add_argument("--system", choices=("water", "3ks3"), default="water")
    parser.add_argument("--pdb", type=Path, default=SHARED_PDB, help="CA II structure for --system 3ks3")
    parser.add_argument("--steps", type=int, default=24, help="timed steps per path (split over the rounds)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op and OpenMM CPU threads")
    parser.add_argument("--model", default="orb-v3-direct-inf-omat")
    parser.add_argument("--platform", default="CUDA" if torch.cuda.is_available() else "CPU")
    parser.add_argument("--full-width", action="store_true")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--json", metavar="PATH", help="also write the printed rows to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # before building the model: vesin takes its thread count at construction
    device = "cuda" if args.platform == "CUDA" else "cpu"
    dtype = getattr(torch, args.dtype)
    sizes = {} if args.full_width else {"latent_dim": 32, "mlp_hidden_dim": 64}
    model = build_model(args.model, seed=0, dtype=dtype, device=device, **sizes)
    modeller = water_box(args.atoms) if args.system == "water" else solvated_caii(args.pdb)
    print(f"{modeller.topology.getNumAtoms()} atoms, {args.model} ({'full' if args.full_width else 'reduced'} width, {args.dtype}), "
          f"platform {args.platform}, threads {args.threads} (torch {torch.__version__}, OpenMM {openmm.__version__})")
    load_before = os.getloadavg()

    paths = {
        "direct call": direct_call(model, modeller, device, dtype),
        "TorchForce": openmm_step(model, modeller, "torchforce", args.platform, args.threads),
        "PythonForce": openmm_step(model, modeller, "pythonforce", args.platform, args.threads),
    }
    for call in paths.values():
        for _ in range(WARM_UP_CALLS):
            call()
    per_round = max(1, args.steps // args.rounds)
    wall: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, call in paths.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(per_round):
                call()
            wall[name].append((time.perf_counter() - start_wall) / per_round)
            cpu[name].append((time.process_time() - start_cpu) / per_round)

    print(f"{per_round * args.rounds} timed steps per path in {args.rounds} interleaved rounds; "
          f"load average (1 min) {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    malloc = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    print(f"glibc malloc settings: {malloc or 'defaults (dynamic mmap/trim thresholds)'}")
    print(f"{'path':12s} {'wall s/step':>11s} {'CPU s/step':>10s} {'steps/s':>8s} {'ns/day':>8s}")
    median_wall = {name: statistics.median(times) for name, times in wall.items()}
    median_cpu = {name: statistics.median(times) for name, times in cpu.items()}
    for name in paths:
        rate = 1.0 / median_wall[name]
        print(f"{name:12s} {median_wall[name]:11.3f} {median_cpu[name]:10.3f} {rate:8.3f} {rate * TIME_STEP_FS * 1e-6 * 86400:8.4f}")
    for slow, fast in (("TorchForce", "direct call"), ("PythonForce", "TorchForce")):
        print(f"{slow} / {fast}: {median_wall[slow] / median_wall[fast]:.3f}x wall, {median_cpu[slow] / median_cpu[fast]:.3f}x CPU time per step")
    if device == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    print(f"peak process RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")
    if args.json:
        rows = [{"path": name, "wall_s": median_wall[name], "cpu_s": median_cpu[name], "steps_per_s": 1.0 / median_wall[name],
                 "ns_per_day": TIME_STEP_FS * 1e-6 * 86400 / median_wall[name]} for name in paths]
        summary = {"system": args.system, "atoms": modeller.topology.getNumAtoms(), "model": args.model, "width": "full" if args.full_width else "reduced",
                   "dtype": args.dtype, "platform": args.platform, "threads": args.threads,
                   "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10,
                   "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None}
        with open(args.json, "w") as fh:
            json.dump({**summary, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
