"""``orb-md dimensionality``: the 0123D protocol on a benchmark file (the shipped EMT set by default).

Writes ``report.md``, ``report.json``, ``errors.png`` (box plots), and, as each structure finishes,
``relaxed.extxyz`` and ``status.csv`` (:class:`orb_md.relax.output.ResultWriter`) into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

from orb_md.errors import InputError


def add_subcommand(sub: argparse._SubParsersAction, model_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register the subcommand (argument parsing only: the heavy imports wait until it runs)."""
    from orb_md.dimensionality import parameters as protocol
    from orb_md.dimensionality.dataset import DIMENSION_KEY, ENERGY_KEYS, NAME_KEY

    p = sub.add_parser("dimensionality", help="the 0123D benchmark: relax 0D-3D references, score geometry and energy",
                       description="Relax every reference structure with FIRE from its reference geometry and report "
                       "geometry error (MAE of positions after undoing wrapping and the allowed rigid motion), energy "
                       "error per atom and fragmentation, per dimensionality. Reads extxyz or ASE databases (the 0123D "
                       "download 0123D_pbe.db as it is); without FILE, the shipped EMT set.")
    p.add_argument("inputs", nargs="*", help="benchmark files (.db or extxyz); default: the shipped EMT reference set")
    model_options(p)
    p.add_argument("--fmax", type=float, default=protocol.FMAX, help="eV/Å (default 0.04)")
    p.add_argument("--max-steps", type=int, default=protocol.MAX_STEPS)
    p.add_argument("--max-force", type=float, default=protocol.MAX_FORCE, help="eV/Å: larger forces fail the structure")
    p.add_argument("--relax-cell", action="store_true", help="also relax the cell along the periodic directions")
    p.add_argument("--batch", type=int, default=0, help="structures relaxed together (0: all; lower it to bound memory)")
    p.add_argument("--energy-key", help=f"reference total energy key (default: first of {', '.join(ENERGY_KEYS)})")
    p.add_argument("--dimension-key", default=DIMENSION_KEY, help="dimensionality label key (absent: from pbc)")
    p.add_argument("--name-key", default=NAME_KEY, help="structure name key")
    p.add_argument("--select", help="comma-separated structure names to run (default: all)")
    p.add_argument("-o", "--out", default="dimensionality_out", help="output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: as orb-md run)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import importlib.util

    missing = [m for m in ("scipy", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(f"orb-md dimensionality needs {' and '.join(missing)}: pip install 'orb-md[dimensionality]'")

    from orb_md.cli import load_model_from_args
    from orb_md.cpus import set_torch_threads
    from orb_md.dimensionality.dataset import read_references
    from orb_md.dimensionality.protocol import run_protocol
    from orb_md.dimensionality.reference_set import SHIPPED_SET
    from orb_md.dimensionality.report import box_plots, markdown, summarize, to_json
    from orb_md.relax.output import ResultWriter

    set_torch_threads(args.threads)
    inputs = args.inputs or [str(SHIPPED_SET)]
    references = read_references(inputs, energy_key=args.energy_key, dimension_key=args.dimension_key,
                                 name_key=args.name_key)
    if args.select:
        wanted = [n.strip() for n in args.select.split(",") if n.strip()]
        unknown = sorted(set(wanted) - {r.name for r in references})
        if unknown:
            raise InputError(f"--select: no structure named {', '.join(unknown)}")
        references = [r for r in references if r.name in wanted]
    model = load_model_from_args(args)
    out = Path(args.out)
    writer = ResultWriter(out)
    start = time.perf_counter()
    outcomes = run_protocol(references, model, fmax=args.fmax, max_steps=args.max_steps, max_force=args.max_force,
                            relax_cell=args.relax_cell, batch_size=args.batch, on_result=writer,
                            progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    summary = summarize(outcomes)
    meta = {"inputs": inputs, "model": args.ckpt or args.model, "fmax": args.fmax, "max_steps": args.max_steps,
            "max_force": args.max_force, "relax_cell": args.relax_cell, "seconds": round(elapsed, 2),
            "load_average": list(os.getloadavg()), "machine": platform.processor() or platform.machine()}
    header = (f"0123D protocol, model {meta['model']}, {len(outcomes)} structures, fmax {args.fmax} eV/Å, "
              f"max {args.max_steps} steps, relax_cell {args.relax_cell}: {elapsed:.1f} s\n")
    (out / "report.md").write_text(markdown(summary, outcomes, header))
    (out / "report.json").write_text(to_json(summary, outcomes, meta))
    box_plots(outcomes, out / "errors.png")
    print(markdown(summary, [], header).split("\n\n")[0])
    print(f"outputs in {out}/ (report.md, report.json, errors.png, relaxed.extxyz, status.csv)")
    return 0
