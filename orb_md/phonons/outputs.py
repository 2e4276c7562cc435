"""Band structure and DOS plots (phonopy's, PNG) and a JSON summary of a phonon run."""

from __future__ import annotations

import json
from pathlib import Path

import ase.cell
from ase.dft.kpoints import parse_path_string

from orb_md.phonons.displacements import PhononResult


def run_band_path(result: PhononResult, npoints: int = 51) -> None:
    """phonopy's band structure along ASE's standard path of the primitive cell (Setyawan–Curtarolo), which
    needs no package beyond ASE (phonopy's own automatic path needs seekpath)."""
    from phonopy.phonon.band_structure import get_band_qpoints_and_path_connections

    run = result.phonopy
    path = ase.cell.Cell(run.primitive.cell).bandpath(npoints=0)
    parts = parse_path_string(path.path)
    points = [[path.special_points[name] for name in part] for part in parts]
    qpoints, connections = get_band_qpoints_and_path_connections(points, npoints=npoints)
    labels = [r"$\Gamma$" if name == "G" else name for part in parts for name in part]
    run.run_band_structure(qpoints, path_connections=connections, labels=labels, is_legacy_plot=False)


def write_outputs(result: PhononResult, out_dir: str | Path, mesh: float = 30.0) -> dict[str, object]:
    """Write bands.png, dos.png (DOS on a q-mesh of ``mesh`` Å length density) and summary.json into
    ``out_dir``; returns the summary (Γ frequencies, rotational gradient, lowest band frequency...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = result.phonopy
    run_band_path(result)
    run.run_mesh(mesh)
    run.run_total_dos()
    summary = result.summary()
    summary["band_minimum_frequency_THz"] = min(float(f.min()) for f in run.band_structure.frequencies)
    title = (f"{summary['formula']}, {summary['atoms_in_supercell']}-atom supercell: "
             f"|Δrot| = {summary['rotational_gradient_norm_eV']:.3g} eV, "
             f"max residual force {summary['residual_force_max_eV_per_A']:.2g} eV/Å")
    run.plot_band_structure()
    plt.gcf().axes[0].set_ylabel("frequency [THz]")
    _save(plt, out / "bands.png", title)
    run.plot_total_dos(xlabel="frequency [THz]")
    _save(plt, out / "dos.png", title)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _save(plt, path: Path, title: str) -> None:
    plt.gcf().suptitle(title, fontsize=8)
    plt.savefig(path, dpi=120)
    plt.close("all")
