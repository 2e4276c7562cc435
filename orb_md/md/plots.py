"""PNG plots of the thermo CSV files: energy, temperature and pressure against time, one line per system."""

from __future__ import annotations

import csv
from pathlib import Path

PANELS = (
    ("energy.png", ("total_eV", "potential_eV"), "energy per atom [eV]"),
    ("temperature.png", ("temperature_K",), "temperature [K]"),
    ("pressure.png", ("pressure_bar",), "pressure [bar]"),
)


def read_thermo(path: str | Path) -> dict[str, list[float]]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in (rows[0].keys() if rows else [])}


def plot_thermo(out_dir: str | Path, atoms_per_system: dict[str, int] | None = None) -> list[Path]:
    """Write energy.png, temperature.png, pressure.png into ``out_dir`` from ``out_dir/thermo/*.csv``.

    Energies are divided by the atom count when ``atoms_per_system`` gives it (systems of different sizes
    then share an axis); pressure.png is skipped when no system is periodic.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    data = {p.stem: read_thermo(p) for p in sorted((out_dir / "thermo").glob("*.csv"))}
    data = {k: v for k, v in data.items() if v}
    written = []
    for name, columns, ylabel in PANELS:
        if name == "pressure.png" and not any(any(x == x for x in d["pressure_bar"]) for d in data.values()):
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label, d in data.items():
            for column, style in zip(columns, ("-", ":")):
                y = d[column]
                if column.endswith("_eV"):
                    n = (atoms_per_system or {}).get(label, 1)
                    y = [v / n for v in y]
                ax.plot([t / 1000.0 for t in d["time_fs"]], y, style,
                        label=f"{label} {column.split('_')[0]}" if len(columns) > 1 else label)
        ax.set_xlabel("time [ps]")
        ax.set_ylabel(ylabel if atoms_per_system or name != "energy.png" else "energy [eV]")
        if len(data) * len(columns) <= 12:
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
