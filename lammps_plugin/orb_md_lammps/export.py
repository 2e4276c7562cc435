"""Export an Orb-v3 model to the file ``pair_style mliap unified <file> 0|1`` loads.

    python -m orb_md_lammps.export orb-v3-conservative-inf-omat orb.pt
    python -m orb_md_lammps.export my.ckpt orb.pt --architecture orb-v3-direct-20-omat
    python -m orb_md_lammps.export orb-v3-direct-20-omat small.pt --random-weights \\
        --latent-dim 32 --mlp-hidden-dim 64          # offline, reduced width (tests/examples)
    python -m orb_md_lammps.export orb-v3-conservative-omol mol.pt --charge 1 --spin 2   # OMol: Q, 2S+1
    python -m orb_md_lammps.export orb-v3-direct-20-omat gpu.pt --device cuda   # the model on the GPU

``--device`` is where the model runs inside LAMMPS (cpu, cuda, cuda:N); $ORB_MD_LAMMPS_DEVICE overrides it
at run time, so one file serves CPU and GPU runs.

The file is a ``torch.save`` of an :class:`~orb_md_lammps.unified.OrbMLIAPUnified` holding the
config and state dict (no TorchScript), rebuilt lazily inside LAMMPS's embedded Python.
"""

from __future__ import annotations

import argparse
import sys

import torch

from orb_md.errors import OrbMDError
from orb_md_lammps.unified import make_unified


def export(
    model_name: str,
    out: str,
    architecture: str | None = None,
    random_weights: bool = False,
    precision: str = "float64",
    elements: list[str] | None = None,
    seed: int = 0,
    charge: float | None = None,
    spin: float | None = None,
    device: str = "cpu",
    **overrides: object,
) -> str:
    """Write ``out`` and return its path. ``charge``/``spin``: the system's total charge and spin
    multiplicity (OMol models only; LAMMPS variables orb_charge/orb_spin override them at run time)."""
    if random_weights:
        from orb_md.model.factory import build_model
        from orb_md.precision import apply_precision

        dtype = apply_precision(precision)
        model = build_model(architecture or model_name, seed=seed, dtype=dtype, **overrides)
    else:
        from orb_md.checkpoints import load_model

        model = load_model(model_name, architecture=architecture, precision=precision)
    torch.save(make_unified(model, element_types=elements, charge=charge, spin=spin, device=device), out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orb_md_lammps.export", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="released model name (e.g. orb-v3-conservative-inf-omat) or checkpoint path")
    parser.add_argument("out", help="output file (.pt)")
    parser.add_argument("--architecture", help="released architecture a checkpoint / random model follows")
    parser.add_argument("--random-weights", action="store_true", help="seeded random weights (no download)")
    parser.add_argument("--precision", default="float64", help="float64 (default), float32-highest, float32-high")
    parser.add_argument("--elements", nargs="+", help="the elements the model takes (default: H..Ts, Z = 1..117)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="where LAMMPS runs the model: cpu (default), cuda, cuda:N")
    parser.add_argument("--latent-dim", type=int, help="reduced width (random weights only)")
    parser.add_argument("--mlp-hidden-dim", type=int, help="reduced width (random weights only)")
    parser.add_argument("--charge", type=float, help="OMol models: total charge Q of the system (e)")
    parser.add_argument("--spin", type=float, help="OMol models: spin multiplicity 2S+1 of the system")
    args = parser.parse_args(argv)
    if not args.out.endswith((".pt", ".pth")):
        parser.error("the output must end in .pt or .pth (LAMMPS torch.loads only those)")
    overrides = {k: v for k, v in (("latent_dim", args.latent_dim), ("mlp_hidden_dim", args.mlp_hidden_dim)) if v}
    if overrides and not args.random_weights:
        parser.error("--latent-dim/--mlp-hidden-dim need --random-weights")
    try:
        export(args.model, args.out, args.architecture, args.random_weights, args.precision, args.elements, args.seed,
               args.charge, args.spin, args.device, **overrides)
    except OrbMDError as error:
        parser.error(str(error))
    print(f"wrote {args.out}: pair_style mliap unified {args.out} 0   (also under mpirun with orb_md's LAMMPS build)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
