"""Batched MD throughput, and the mesoscale (100k-atom) memory/time check.

    nice python benchmarks/bench_batch.py                      # 64 systems of 8-64 atoms: batched vs alone vs ASE
    nice python benchmarks/bench_batch.py --mesoscale 100000   # one direct-20 MD step at ~100k atoms (slow)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def mesoscale(atoms_wanted: int, chunk: int, steps: int, threads: int, model_name: str) -> None:
    import ase.build
    import torch

    from orb_md import build_model
    from orb_md.md import ForceField, create_state, make_integrator

    torch.set_num_threads(threads)
    n = round((atoms_wanted / 4) ** (1 / 3))
    atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat((n, n, n))
    atoms.rattle(0.02, seed=1)
    model = build_model(model_name, seed=0, dtype=torch.float32)
    print(f"{model_name} (full width, random weights, float32), {len(atoms)} atoms, edge chunk {chunk or 'default'}, "
          f"{threads} threads; RSS after setup {peak_rss_mb():.0f} MB", flush=True)
    state = create_state([atoms], ensemble="nve", temperature=300.0, dt=1.0)
    forcefield = ForceField(model, skin=1.0, chunk=chunk)
    integrator = make_integrator("nve")
    t0 = time.perf_counter()
    with torch.no_grad():
        integrator.initialize(state, forcefield)
    t_init = time.perf_counter() - t0
    edges = forcefield.neighbors.candidate_senders.numel()
    print(f"initial force evaluation: {t_init:.1f} s, peak RSS {peak_rss_mb():.0f} MB "
          f"(candidate pairs {edges})", flush=True)
    for i in range(steps):
        t0 = time.perf_counter()
        with torch.no_grad():
            integrator.step(state, forcefield)
        print(f"MD step {i + 1}: {time.perf_counter() - t0:.1f} s, peak RSS {peak_rss_mb():.0f} MB, "
              f"T = {float(state.instantaneous_temperature()[0]):.1f} K, E_pot = {float(state.energy[0]):.2f} eV",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     add_help=False)
    parser.add_argument("--mesoscale", type=int, default=0, metavar="ATOMS", help="run the large-system check")
    parser.add_argument("--chunk", type=int, default=0, help="edge rows per edge-MLP call (0: the default, 2048 on the CPU)")
    parser.add_argument("--mesoscale-steps", type=int, default=1)
    parser.add_argument("--mesoscale-threads", type=int, default=2)
    parser.add_argument("--mesoscale-model", default="orb-v3-direct-20-omat")
    args, rest = parser.parse_known_args(argv)
    if args.mesoscale:
        mesoscale(args.mesoscale, args.chunk, args.mesoscale_steps, args.mesoscale_threads, args.mesoscale_model)
        return 0
    return throughput(rest if argv is None else rest)


WIDTHS = {"small": {"latent_dim": 32, "mlp_hidden_dim": 64}, "full": {}}


def make_systems(count: int, lo: int, hi: int, seed: int = 0) -> list:
    """``count`` systems of lo..hi atoms: half periodic crystals, half clusters cut from crystals (no pbc)."""
    import ase.build
    import numpy as np

    rng = np.random.default_rng(seed)
    crystals = [("Cu", "fcc", 3.61), ("Al", "fcc", 4.05), ("Si", "diamond", 5.43), ("Ni", "fcc", 3.52)]
    out = []
    for i in range(count):
        element, kind, a = crystals[i % len(crystals)]
        unit = ase.build.bulk(element, kind, a=a, cubic=True)
        target = int(rng.integers(lo, hi + 1))
        if i % 2 == 0:  # periodic: the supercell of unit-cell multiples closest to the target size
            reps = [1, 1, 1]
            while len(unit) * np.prod(reps) * 2 <= target:
                reps[int(np.argmin(reps))] *= 2
            atoms = unit.repeat(reps)
        else:
            atoms = unit.repeat(4)[:target]
            atoms.pbc = False
            atoms.cell = None
        atoms.rattle(0.05, seed=i)
        out.append(atoms)
    return out


def run_phase(phase: str, args) -> dict:
    import torch

    from orb_md import build_model

    torch.set_num_threads(args.threads)
    systems = make_systems(args.systems, args.min_atoms, args.max_atoms)
    model = build_model(args.model, seed=0, dtype=torch.float32, **WIDTHS[args.width])
    n_atoms = sum(len(a) for a in systems)
    start_rss = peak_rss_mb()
    if phase in ("batched", "alone"):
        from orb_md.md import BatchMD, create_state

        groups = [systems] if phase == "batched" else [[a] for a in systems]
        runs = []
        for i, group in enumerate(groups):
            state = create_state(group, ensemble="nvt", temperature=300.0, dt=1.0, friction=0.01, seed=i)
            md = BatchMD(state, model, progress=False)
            md.run(args.warmup)
            runs.append(md)
        t0, cpu0 = time.perf_counter(), time.process_time()
        for md in runs:
            md.run(args.steps)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    elif phase == "ase":
        sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
        from ase import units
        from ase.md.langevin import Langevin
        from orb_models.forcefield.calculator import ORBCalculator

        from tests.orb_reference import orb_models_twin

        twin = orb_models_twin(model)
        dynamics = []
        for atoms in systems:
            atoms = atoms.copy()
            atoms.calc = ORBCalculator(twin, device="cpu")
            dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=300.0, friction=0.01 / units.fs)
            dyn.run(args.warmup)
            dynamics.append(dyn)
        t0, cpu0 = time.perf_counter(), time.process_time()
        for dyn in dynamics:
            dyn.run(args.steps)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    else:
        raise SystemExit(f"unknown phase {phase}")
    return {"phase": phase, "atoms": n_atoms, "seconds": elapsed, "cpu_s": cpu,
            "atom_steps_per_s": n_atoms * args.steps / elapsed, "peak_rss_mb": peak_rss_mb(),
            "rss_before_mb": start_rss}


def throughput(argv: list[str]) -> int:
    import platform
    import subprocess

    import torch

    parser = argparse.ArgumentParser(description="atom-steps/s: batched vs one at a time vs ASE Langevin + orb-models")
    parser.add_argument("--systems", type=int, default=64)
    parser.add_argument("--min-atoms", type=int, default=8)
    parser.add_argument("--max-atoms", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", choices=tuple(WIDTHS), default="small")
    parser.add_argument("--model", default="orb-v3-direct-20-omat")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--phases", default="batched,alone,ase")
    parser.add_argument("--json", metavar="PATH", help="also write the rows (one per method) to this JSON file")
    args = parser.parse_args(argv)
    argv = list(argv)
    if args.phase:
        print("RESULT " + json.dumps(run_phase(args.phase, args)), flush=True)
        return 0
    results = {}
    for phase in args.phases.split(","):
        # each phase in its own process, so peak RSS is that phase's own
        command = [sys.executable, __file__, *argv, "--phase", phase]
        output = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in output.stdout.splitlines() if line.startswith("RESULT ")]
        if output.returncode or not lines:
            print(output.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"phase {phase} failed")
        results[phase] = json.loads(lines[-1][7:])
    r0 = next(iter(results.values()))
    print(f"{args.model} ({args.width} width, random weights, float32), {args.systems} systems of "
          f"{args.min_atoms}-{args.max_atoms} atoms ({r0['atoms']} atoms), Langevin NVT, {args.steps} timed steps "
          f"after {args.warmup} warm-up, {args.threads} torch threads, {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}")
    print(f"{'method':>34s} {'atom-steps/s':>13s} {'time [s]':>9s} {'peak RSS [MB]':>14s}")
    names = {"batched": "orb_md batched (1 call/step)", "alone": "orb_md one system at a time",
             "ase": "ASE Langevin + orb-models ORBCalculator"}
    for phase, r in results.items():
        print(f"{names[phase]:>34s} {r['atom_steps_per_s']:13.0f} {r['seconds']:9.2f} {r['peak_rss_mb']:14.0f}")
    if "batched" in results:
        for phase in ("alone", "ase"):
            if phase in results:
                ratio = results["batched"]["atom_steps_per_s"] / results[phase]["atom_steps_per_s"]
                print(f"batched / {names[phase]}: {ratio:.1f}x")
    if args.json:
        settings = {k: getattr(args, k) for k in ("systems", "min_atoms", "max_atoms", "steps", "warmup", "threads",
                                                  "width", "model")}
        Path(args.json).write_text(json.dumps({**settings, "rows": list(results.values())}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
