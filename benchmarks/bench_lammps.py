"""LAMMPS (`pair_style mliap unified`, orb_md_lammps) vs a direct orb_md model call.

    PYTHONPATH=lammps_plugin nice python benchmarks/bench_lammps.py [--atoms 1000 10000] [--steps 5]
        [--arch orb-v3-conservative-inf-omat] [--latent-dim 32 --mlp-hidden-dim 64 | --full-width]
        [--ranks 1 2] [--mode exchange|halo] [--precision float64] [--system copper|water|gas] [--json PATH]

Systems: jittered fcc Cu (a = 3.61 Å), a jittered water box (~1 g/cm³) or, for the multi-rank
halo mode, a 60-atom sparse Cu/O gas. Per size:

* "lammps": `run <steps>` in a fresh `lmp` (or `mpirun -np R lmp`) process; s/step = LAMMPS's
  Loop time / steps (the setup force call -- neighbour list, embedded Python, model build -- is
  not in it), CPU s/step = Loop time x its "% CPU use" (user time); energy, forces and virial pressure of
  step 0 are written out. 1 rank = fold mode (ghostneigh 0); > 1 rank = ``--mode exchange``
  (default: the plain input, ghostneigh 0 and the default 7 Å ghost cutoff; node features are exchanged
  between layers) or ``--mode halo`` (ghostneigh 1, comm_modify cutoff 38.5 Å with skin 1 Å);
* "direct": `orb_md.batch.evaluate` (graph build + energy + forces + stress) on the configuration
  LAMMPS read (its data file) with the weights of the exported file, in a fresh process, median
  wall and user CPU time of `steps` calls after a warm-up call;
* parity: LAMMPS step 0 vs the direct call (|dE|/|E|, max |dF| eV/Å, max |d sigma| eV/Å³);
* peak memory: maximum resident set of each process (for mpirun: the largest rank);
* process CPU: user + system time of each whole process (start-up, model build and steps + 1
  force calls on both sides; for mpirun: all ranks), which also counts the page-fault (system)
  time of large tensor allocations that LAMMPS's user-time "% CPU use" leaves out.

Overhead ratio = LAMMPS s/step / direct call s (wall and user CPU; on a loaded machine the CPU
ratio is the meaningful one). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ase
import ase.build
import ase.data
import ase.io
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lammps_plugin"))
sys.path.insert(0, str(REPO))

from orb_md.batch import atoms_to_batch, evaluate  # noqa: E402
from orb_md.model.factory import build_model  # noqa: E402
from orb_md.precision import apply_precision  # noqa: E402
from orb_md_lammps.unified import make_unified  # noqa: E402
from tests.systems import sparse_gas  # noqa: E402

NKTV2P = 1.6021765e6  # LAMMPS metal: bar per eV/Å^3
GIB = 1024.0**3


def copper(n_target: int, seed: int = 0) -> ase.Atoms:
    reps = max(1, round((n_target / 4) ** (1 / 3)))
    atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat((reps, reps, reps))
    atoms.positions += np.random.default_rng(seed).normal(scale=0.05, size=atoms.positions.shape)
    atoms.wrap()
    return atoms


def water(n_target: int, seed: int = 1) -> ase.Atoms:
    """m^3 water molecules on a 3.1 Å grid (~1 g/cm³), randomly rotated and shifted."""
    m = max(1, round((n_target / 3) ** (1 / 3)))
    rng = np.random.default_rng(seed)
    mol = ase.Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    grid = np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3) * 3.1
    positions = []
    for origin in grid:
        copy = mol.copy()
        copy.rotate(rng.uniform(0, 360), rng.normal(size=3))
        positions.append(copy.positions + origin + rng.uniform(0, 0.3, 3))
    atoms = ase.Atoms("OH2" * len(grid), positions=np.concatenate(positions), cell=[3.1 * m] * 3, pbc=True)
    atoms.wrap()
    return atoms


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def process_cpu_s(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def user_cpu_s() -> float:
    """User CPU time of this process, as LAMMPS's "% CPU use" counts it (platform::cputime)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def direct_call(model_file: str, data: str, species: list[str], steps: int, threads: int) -> dict:
    """In a fresh process: the exported model on LAMMPS's configuration; timings, results, peak RSS."""
    torch.set_num_threads(threads)
    model = torch.load(model_file, weights_only=False).model
    z_of_type = {i + 1: ase.data.atomic_numbers[s] for i, s in enumerate(species)}
    atoms = ase.io.read(data, format="lammps-data", atom_style="atomic", Z_of_type=z_of_type)
    atoms.pbc = True
    dtype = next(model.parameters()).dtype
    wall, cpu = [], []
    for _ in range(steps + 1):
        t0, c0 = time.perf_counter(), user_cpu_s()
        out = evaluate(model, atoms_to_batch([atoms], dtype=dtype), forces=True, stress=True)
        wall.append(time.perf_counter() - t0)
        cpu.append(user_cpu_s() - c0)
    return {
        "wall": float(np.median(wall[1:])), "cpu": float(np.median(cpu[1:])),
        "energy": float(out["energy"][0]), "forces": out["forces"].double().numpy(),
        "stress": out["stress"][0].double().numpy(), "rss": peak_rss_gib(),
        "process_cpu": process_cpu_s(resource.getrusage(resource.RUSAGE_SELF)),
    }


LAMMPS_RUN = """units metal
atom_style atomic
atom_modify map yes
read_data {data}
pair_style mliap unified {model} {ghost}
pair_coeff * * {elements}
neighbor 1.0 bin
{halo}velocity all create 300 1 mom yes rot no
fix 1 all nve
timestep 0.001
compute pv all pressure NULL virial
thermo_style custom step pe c_pv[1] c_pv[2] c_pv[3] c_pv[4] c_pv[5] c_pv[6]
thermo_modify format float %.17g
thermo {steps}
dump forces all custom {steps} forces.dump id fx fy fz
dump_modify forces sort id format float %.17g
run {steps}
"""


def lammps_run(tmp: Path, data: Path, model: Path, steps: int, ranks: int, elements: str, mode: str) -> dict:
    halo = ranks > 1 and mode == "halo"
    work = tmp / f"{data.stem}-np{ranks}"
    work.mkdir()
    (work / "in.bench").write_text(LAMMPS_RUN.format(
        data=data, model=model, ghost=int(halo), elements=elements, steps=steps,
        halo="comm_modify cutoff 38.5\n" if halo else ""))
    env = dict(os.environ, PATH=f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=sys.prefix)
    if ranks > 1:
        env["ORB_MD_LAMMPS_MODE"] = mode
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "lammps_plugin"), str(REPO), env.get("PYTHONPATH", "")])
    cmd = [str(Path(sys.prefix) / "bin" / "lmp"), "-nocite", "-log", "none", "-in", "in.bench"]
    if ranks > 1:
        cmd = [shutil.which("mpirun", path=env["PATH"]), "-np", str(ranks), *cmd]
    with open(work / "out.txt", "w") as log:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        # wait4: this child's own peak RSS (for mpirun: the largest of its descendants)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = (work / "out.txt").read_text()
    loop = re.search(r"Loop time of (\S+) on \d+ procs for (\d+) steps", text)
    cpu_use = re.search(r"^(\S+)% CPU use", text, re.MULTILINE)
    if proc.returncode or not loop or not cpu_use:
        raise RuntimeError(text[-3000:])
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["Step", "PotEng"])
    values = [float(v) for v in lines[head + 1].split()]
    pv = np.array(values[2:8])  # xx yy zz xy xz yz (bar)
    seconds, n, cpu_percent = float(loop[1]), int(loop[2]), float(cpu_use[1])
    dump = np.loadtxt(work / "forces.dump", skiprows=9, max_rows=int(re.search(r"with (\d+) atoms", text)[1]))
    return {
        "wall": seconds / n, "cpu": seconds * cpu_percent / 100 / n, "energy": values[1],
        "forces": dump[:, 1:4], "stress": -np.array([pv[0], pv[1], pv[2], pv[5], pv[4], pv[3]]) / NKTV2P,
        "rss": usage.ru_maxrss * 1024 / GIB, "process_cpu": process_cpu_s(usage),
    }


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
    parser.add_argument("--mode", choices=["exchange", "halo"], default="exchange",
                        help="multi-rank mode (1 rank always folds ghosts onto their owners)")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per process (both sides)")
    parser.add_argument("--system", choices=["copper", "water", "gas"], default="copper",
                        help="gas: 60-atom sparse Cu/O box (16 Å), cheap for the multi-rank halo mode")
    parser.add_argument("--json", metavar="PATH", help="also write the table's rows to this JSON file")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    width = {} if args.full_width else dict(latent_dim=args.latent_dim, mlp_hidden_dim=args.mlp_hidden_dim)
    model = build_model(args.arch, seed=0, dtype=apply_precision(args.precision), **width)
    label = "full width" if args.full_width else f"latent {args.latent_dim}, MLP {args.mlp_hidden_dim}"
    print(f"{args.arch} ({label}, {args.precision}), torch threads {args.threads}, load average "
          f"{os.getloadavg()[0]:.1f} at start\n")
    print("| system | atoms | ranks | mode | direct s (CPU s) | LAMMPS s/step (CPU s) | LAMMPS steps/s "
          "| speed-up vs 1 rank | overhead wall (CPU) | process CPU s LAMMPS / direct | \\|dE\\|/\\|E\\| "
          "| max \\|dF\\| eV/Å | max \\|dσ\\| eV/Å³ | peak RSS LAMMPS / direct GiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        path = tmp / "model.pt"
        torch.save(make_unified(model), path)
        del model
        for n in args.atoms:
            atoms = {"copper": copper, "water": water, "gas": lambda _: sparse_gas()}[args.system](n)
            species = list(dict.fromkeys(atoms.get_chemical_symbols()))
            data = tmp / f"system{len(atoms)}.data"
            ase.io.write(data, atoms, format="lammps-data", masses=True, atom_style="atomic", specorder=species)
            lmps = {ranks: lammps_run(tmp, data, path, args.steps, ranks, " ".join(species), args.mode)
                    for ranks in args.ranks}
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
                direct = pool.submit(direct_call, str(path), str(data), species, args.steps, args.threads).result()
            for ranks, lmp in lmps.items():
                mode = "fold" if ranks == 1 else args.mode
                speedup = f"{lmps[1]['wall'] / lmp['wall']:.2f}" if 1 in lmps else "-"
                de = abs(lmp["energy"] - direct["energy"]) / abs(direct["energy"])
                df = float(np.abs(lmp["forces"] - direct["forces"]).max())
                ds = float(np.abs(lmp["stress"] - direct["stress"]).max())
                rows.append({"system": args.system, "atoms": len(atoms), "ranks": ranks, "mode": mode,
                             "direct_s": direct["wall"], "direct_cpu_s": direct["cpu"],
                             "lammps_s": lmp["wall"], "lammps_cpu_s": lmp["cpu"],
                             "energy_rel_diff": de, "force_max_diff": df, "stress_max_diff": ds,
                             "lammps_rss_gib": lmp["rss"], "direct_rss_gib": direct["rss"],
                             "lammps_process_cpu_s": lmp["process_cpu"], "direct_process_cpu_s": direct["process_cpu"]})
                print(f"| {args.system} | {len(atoms)} | {ranks} | {mode} | {direct['wall']:.3f} ({direct['cpu']:.3f}) "
                      f"| {lmp['wall']:.3f} ({lmp['cpu']:.3f}) | {1 / lmp['wall']:.3f} | {speedup} "
                      f"| {lmp['wall'] / direct['wall']:.2f} ({lmp['cpu'] / direct['cpu']:.2f}) "
                      f"| {lmp['process_cpu']:.1f} / {direct['process_cpu']:.1f} | {de:.1e} | {df:.1e} | {ds:.1e} "
                      f"| {lmp['rss']:.2f} / {direct['rss']:.2f} |", flush=True)
    if args.json:
        settings = {"arch": args.arch, "width": label, "precision": args.precision, "threads": args.threads,
                    "system": args.system, "steps": args.steps}
        Path(args.json).write_text(json.dumps({**settings, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
