"""LAMMPS (`pair_style mliap unified`, orb_md_lammps) vs a direct orb_md model call.

    PYTHONPATH=lammps_plugin python benchmarks/bench_lammps.py [--atoms 1000 10000] [--steps 5]
        [--arch orb-v3-conservative-inf-omat] [--latent-dim 32 --mlp-hidden-dim 64 | --full-width]
        [--ranks 1 2] [--precision float64]

System: jittered fcc Cu (a = 3.61 Å). "direct" = orb_md graph build (orb_md.batch.evaluate)
+ forward + forces + stress on the same configuration, median of --steps calls; "lammps" =
Loop time of `run <steps>` after a `run 0` warm-up (neighbour list, Python coupling, plugin
graph/kNN, model, write-back), 1 rank = fold mode (ghostneigh 0), >1 rank = halo mode
(ghostneigh 1, comm_modify cutoff 38.5 Å with skin 1 Å). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ase.build
import ase.io
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lammps_plugin"))

from orb_md.batch import atoms_to_batch, evaluate  # noqa: E402
from orb_md.model.factory import build_model  # noqa: E402
from orb_md.precision import apply_precision  # noqa: E402
from orb_md_lammps.unified import make_unified  # noqa: E402


def copper(n_target: int, seed: int = 0) -> ase.Atoms:
    reps = max(1, round((n_target / 4) ** (1 / 3)))
    atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat((reps, reps, reps))
    atoms.positions += np.random.default_rng(seed).normal(scale=0.05, size=atoms.positions.shape)
    atoms.wrap()
    return atoms


def gas(n: int = 60, box: float = 16.0, seed: int = 3) -> ase.Atoms:
    """Sparse random Cu/O gas (as tests/test_lammps_orb.py's MPI case): a halo that fits here."""
    rng = np.random.default_rng(seed)
    pos: list[np.ndarray] = []
    while len(pos) < n:
        p = rng.uniform(0, box, 3)
        if all(np.linalg.norm((p - q + box / 2) % box - box / 2) > 1.8 for q in pos):
            pos.append(p)
    return ase.Atoms(["Cu", "O"] * (n // 2), positions=pos, cell=[box] * 3, pbc=True)


def direct_time(model, atoms, steps: int) -> float:
    dtype = next(model.parameters()).dtype
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        batch = atoms_to_batch([atoms], dtype=dtype)
        evaluate(model, batch, forces=True, stress=True)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def lammps_time(tmp: Path, data: Path, model: Path, steps: int, ranks: int, elements: str = "Cu") -> float:
    ghost = 1 if ranks > 1 else 0
    halo = "comm_modify cutoff 38.5\n" if ranks > 1 else ""
    script = f"""units metal
atom_style atomic
atom_modify map yes
read_data {data}
pair_style mliap unified {model} {ghost}
pair_coeff * * {elements}
neighbor 1.0 bin
{halo}velocity all create 300 1 mom yes rot no
fix 1 all nve
timestep 0.001
thermo {steps}
run 0
run {steps}
"""
    (tmp / "in.bench").write_text(script)
    env = dict(os.environ, PATH=f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=sys.prefix)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "lammps_plugin"), str(REPO), env.get("PYTHONPATH", "")])
    cmd = [str(Path(sys.prefix) / "bin" / "lmp"), "-nocite", "-log", "none", "-in", "in.bench"]
    if ranks > 1:
        cmd = [shutil.which("mpirun", path=env["PATH"]), "-np", str(ranks), *cmd]
    out = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=3600)
    text = out.stdout + out.stderr
    loops = re.findall(r"Loop time of (\S+) on \d+ procs for (\d+) steps", text)
    if out.returncode or not loops:
        raise RuntimeError(text[-3000:])
    seconds, n = loops[-1]
    return float(seconds) / int(n)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--atoms", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--arch", default="orb-v3-conservative-inf-omat")
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--mlp-hidden-dim", type=int, default=64)
    parser.add_argument("--full-width", action="store_true")
    parser.add_argument("--precision", default="float64")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1])
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per process (both sides)")
    parser.add_argument("--system", choices=["copper", "gas"], default="copper",
                        help="gas: 60-atom sparse Cu/O box (16 Å) for the multi-rank halo mode")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    width = {} if args.full_width else dict(latent_dim=args.latent_dim, mlp_hidden_dim=args.mlp_hidden_dim)
    model = build_model(args.arch, seed=0, dtype=apply_precision(args.precision), **width)
    label = "full width" if args.full_width else f"latent {args.latent_dim}, MLP {args.mlp_hidden_dim}"
    print(f"{args.arch} ({label}, {args.precision}), torch threads {torch.get_num_threads()}\n")
    print("| atoms | ranks | direct call s | LAMMPS s/step | LAMMPS steps/s | overhead ratio |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        path = tmp / "model.pt"
        torch.save(make_unified(model), path)
        for n in args.atoms:
            atoms = copper(n) if args.system == "copper" else gas()
            species = list(dict.fromkeys(atoms.get_chemical_symbols()))
            data = tmp / f"system{len(atoms)}.data"
            ase.io.write(data, atoms, format="lammps-data", masses=True, atom_style="atomic", specorder=species)
            # LAMMPS first: the parent process holds no large tensors while lmp runs
            t_lmps = {ranks: lammps_time(tmp, data, path, args.steps, ranks, " ".join(species)) for ranks in args.ranks}
            t_direct = direct_time(model, atoms, args.steps)
            for ranks, t_lmp in t_lmps.items():
                print(f"| {len(atoms)} | {ranks} | {t_direct:.4f} | {t_lmp:.4f} | {1 / t_lmp:.3f} | {t_lmp / t_direct:.2f} |", flush=True)


if __name__ == "__main__":
    main()
