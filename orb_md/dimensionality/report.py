"""The protocol's report per dimensionality: counts, error statistics (Markdown, JSON) and box plots (PNG).

Error statistics use the structures that converged intact (status ``converged``); failed, unconverged and
fragmented ones are counted, not scored. Energy errors are reported as their absolute values per atom.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from orb_md.dimensionality.periodicity import DIMENSIONALITIES
from orb_md.dimensionality.protocol import Outcome

COUNTED = ("converged", "max_steps", "blow_up", "fragmented", "failed")


def summarize(outcomes: Sequence[Outcome]) -> dict[str, dict[str, float | int | None]]:
    """Per dimensionality ("0D".."3D", those present): structure counts by status and the median and mean
    of the geometry error (Å) and absolute energy error (meV/atom) of the converged ones."""
    summary = {}
    for d in DIMENSIONALITIES:
        group = [o for o in outcomes if o.dimensionality == d]
        if not group:
            continue
        row: dict[str, float | int | None] = {"structures": len(group)}
        row.update({status: sum(o.status == status for o in group) for status in COUNTED})
        geometry = np.array([o.geometry_error for o in group if o.geometry_error is not None])
        energy = np.array([abs(o.energy_error) * 1e3 for o in group if o.energy_error is not None])
        for key, values in (("geometry_error_A", geometry), ("energy_error_meV_per_atom", energy)):
            row[f"median_{key}"] = float(np.median(values)) if len(values) else None
            row[f"mean_{key}"] = float(np.mean(values)) if len(values) else None
        summary[f"{d}D"] = row
    return summary


def _cell(value: float | int | None, digits: int) -> str:
    return "–" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def markdown(summary: dict, outcomes: Sequence[Outcome], header: str = "") -> str:
    """The summary table and one row per structure."""
    lines = [header] if header else []
    lines += ["| dim | structures | converged | max steps | blow-up | fragmented | failed | median geometry [Å] | "
              "mean geometry [Å] | median abs(ΔE) [meV/atom] | mean abs(ΔE) [meV/atom] |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for dim, row in summary.items():
        counts = " | ".join(str(row[s]) for s in COUNTED)
        stats = " | ".join(_cell(row[f"{m}_{k}"], 4 if k.startswith("geometry") else 2)
                           for k in ("geometry_error_A", "energy_error_meV_per_atom") for m in ("median", "mean"))
        lines.append(f"| {dim} | {row['structures']} | {counts} | {stats} |")
    lines += ["", "| structure | dim | atoms | status | steps | size [Å] (reference) | geometry [Å] | ΔE [meV/atom] | note |",
              "|---|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        size = "–" if o.size is None else f"{o.size:.2f} ({o.reference_size:.2f})"
        energy = "–" if o.energy_error is None else f"{o.energy_error * 1e3:+.2f}"
        lines.append(f"| {o.name} | {o.dimensionality}D | {o.n_atoms} | {o.status} | {o.steps} | {size} | "
                     f"{_cell(o.geometry_error, 4)} | {energy} | {o.message.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def to_json(summary: dict, outcomes: Sequence[Outcome], meta: dict) -> str:
    per_structure = [{k: getattr(o, k) for k in ("name", "dimensionality", "n_atoms", "status", "steps", "message",
                                                 "size", "reference_size", "geometry_error", "energy_error")}
                     for o in outcomes]
    return json.dumps({"meta": meta, "summary": summary, "structures": per_structure}, indent=2)


def box_plots(outcomes: Sequence[Outcome], path: Path) -> None:
    """Geometry error and signed energy error per atom of the converged structures, one box per dimensionality."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = [d for d in DIMENSIONALITIES if any(o.dimensionality == d for o in outcomes)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
    for ax, (attribute, scale, label) in zip(axes, (("geometry_error", 1.0, "geometry error (MAE) [Å]"),
                                                    ("energy_error", 1e3, "energy error [meV/atom]"))):
        data = [[getattr(o, attribute) * scale for o in outcomes
                 if o.dimensionality == d and getattr(o, attribute) is not None] for d in dims]
        ax.boxplot([values if values else [np.nan] for values in data])
        ax.set_xticks(range(1, len(dims) + 1), [f"{d}D" for d in dims])
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[1].axhline(0.0, color="grey", lw=0.8)
    fig.savefig(path, dpi=120)
    plt.close(fig)
