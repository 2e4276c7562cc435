"""Benchmark report rendering: suite JSON rows -> rows with targets -> a Markdown table and a PNG plot.

Every suite's ``--json`` file holds ``{"rows": [...], ...}`` with the numbers it prints. Here each
row becomes a :class:`ReportRow` comparing an orb_md path with a baseline measured in the same run:
``ratio = baseline time / orb_md time`` (> 1: orb_md faster), checked against the issue's target
expressed in that same direction (an overhead target "≤ 1.15×" is a ratio target "≥ 1/1.15").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ORB_MODELS = "orb-models 0.5.5"


@dataclass
class ReportRow:
    """One line of the report table; ``status`` is ``ok``, ``failed`` or ``unavailable``."""

    suite: str
    case: str
    status: str = "ok"
    ours: str = ""
    ours_s: float | None = None
    baseline: str = ""
    baseline_s: float | None = None
    metric: str = "wall"  # "CPU" (process CPU time) or "wall"
    target: float | None = None  # minimum ratio
    target_text: str = ""
    target_applies: bool = True  # False: the target is for another device (e.g. GPU only)
    memory_ok: bool | None = None  # extra condition of the target (None: none)
    memory: str = ""
    reason: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours_s is None or self.baseline_s is None or self.ours_s <= 0:
            return None
        return self.baseline_s / self.ours_s

    @property
    def met(self) -> bool | None:
        """Whether the target is met; None where there is no target (or it does not apply here)."""
        if self.status != "ok" or self.target is None or not self.target_applies or self.ratio is None:
            return None
        return self.ratio >= self.target and self.memory_ok is not False


@dataclass
class SuiteOutcome:
    """How one suite ended: its JSON (``data``) when it ran, else the reason it did not."""

    name: str
    status: str  # ok | failed | unavailable
    command: str
    seconds: float = 0.0
    load_before: float | None = None
    load_after: float | None = None
    reason: str = ""
    data: dict | None = None


def _mb(ours: float | None, baseline: float | None) -> str:
    if ours is None:
        return ""
    return f"{ours:.0f}" if baseline is None else f"{ours:.0f} / {baseline:.0f}"


def model_rows(data: dict) -> list[ReportRow]:
    """bench_model.py: energy+forces+stress, orb_md vs orb-models on the same weights and threads."""
    rows = []
    for r in data["rows"]:
        label = "incl. graph" if r["variant"] == "full" else "network only, same graph"
        case = f"{r['system']} {r.get('atoms', '')} atoms, {r['model']}, {label}"
        ours, base = r["orb_md"], r["orb-models"]
        if "error" in ours or "error" in base:
            rows.append(ReportRow("model", case, "failed", reason=ours.get("error") or base.get("error", "")))
            continue
        full = r["variant"] == "full"
        rows.append(ReportRow(
            "model", case, ours="orb_md", ours_s=ours["cpu"], baseline=ORB_MODELS, baseline_s=base["cpu"],
            metric="CPU", target=1.5 if full else None, target_text="≥ 1.5, memory ≤ orb-models" if full else "",
            memory_ok=ours["peak_mb"] <= base["peak_mb"] if full else None,
            memory=_mb(ours["peak_mb"], base["peak_mb"]),
        ))
    return rows


NEIGHBOR_BASELINES = {"orb_scipy": f"{ORB_MODELS} knn_scipy", "orb_brute_force": f"{ORB_MODELS} knn_brute_force",
                      "ase": "ASE neighbor list (all pairs, no k-NN)"}


def neighbor_rows(data: dict) -> list[ReportRow]:
    """bench_neighbors.py: the fastest orb_md backend (by CPU time) against each baseline, per system and size."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in data["rows"]:
        groups.setdefault((r["kind"], r["size"]), []).append(r)
    rows = []
    for (kind, size), group in groups.items():
        for r in group:
            if "error" in r:
                rows.append(ReportRow("neighbors", f"{kind} {size} atoms, {r['method']}", "failed", reason=r["error"]))
        ours = [r for r in group if r.get("ours") and "error" not in r]
        if not ours:
            continue
        best = min(ours, key=lambda r: r["cpu_s"])
        for r in group:
            if r["method"] not in NEIGHBOR_BASELINES or "error" in r:
                continue
            gated = r["method"] == "orb_scipy" and size == 10000
            rows.append(ReportRow(
                "neighbors", f"{kind} {best['atoms']} atoms, k=20", ours=f"orb_md {best['method']}",
                ours_s=best["cpu_s"], baseline=NEIGHBOR_BASELINES[r["method"]], baseline_s=r["cpu_s"], metric="CPU",
                target=3.0 if gated else None, target_text="≥ 3 (at 10k atoms)" if gated else "",
                memory=_mb(best["peak_mb"], r["peak_mb"]),
            ))
    return rows


def openmm_rows(data: dict) -> list[ReportRow]:
    """bench_openmm.py: TorchForce step time against a direct call of the same module and against PythonForce."""
    paths = {r["path"]: r for r in data["rows"]}
    metric = "CPU" if all("cpu_s" in r for r in paths.values()) else "wall"
    seconds = {name: r["cpu_s"] if metric == "CPU" else r["wall_s"] for name, r in paths.items()}
    system = "solvated CA II (3KS3)" if data.get("system") == "3ks3" else "water box"
    case = f"{system} {data.get('atoms', '')} atoms, {data.get('model', '')} ({data.get('width', '')} width), per step"
    memory = _mb(data.get("peak_gpu_mib") or data.get("peak_rss_mib"), None)
    out = [ReportRow("openmm", case, ours="TorchForce (Verlet step)", ours_s=seconds.get("TorchForce"),
                     baseline="direct call of the same module", baseline_s=seconds.get("direct call"), metric=metric,
                     target=1 / 1.15, target_text="≥ 0.87 (overhead ≤ 1.15×)", memory=memory)]
    if "PythonForce" in seconds:
        out.append(ReportRow("openmm", case, ours="TorchForce (Verlet step)", ours_s=seconds.get("TorchForce"),
                             baseline="PythonForce (host round trip)", baseline_s=seconds["PythonForce"], metric=metric,
                             target=2.0, target_text="≥ 2 (GPU only)", target_applies=data.get("platform") == "CUDA"))
    return out


def lammps_rows(data: dict) -> list[ReportRow]:
    """bench_lammps.py: LAMMPS s/step (ML-IAP unified) against a direct orb_md call on the same configuration."""
    rows = []
    for r in data["rows"]:
        one_rank = r["ranks"] == 1
        cpu = "lammps_cpu_s" in r and "direct_cpu_s" in r
        memory = _mb(r["lammps_rss_gib"] * 1024, r["direct_rss_gib"] * 1024) if "lammps_rss_gib" in r else ""
        ranks = f"{r['ranks']} rank{'s' if r['ranks'] > 1 else ''}" + (f" ({r['mode']})" if "mode" in r else "")
        rows.append(ReportRow(
            "lammps", f"{r.get('system', 'copper')} {r['atoms']} atoms, {ranks}, {data.get('arch', '')} "
            f"({data.get('width', '')})", ours="LAMMPS pair_style mliap",
            ours_s=r["lammps_cpu_s"] if cpu else r["lammps_s"], baseline="direct orb_md call",
            baseline_s=r["direct_cpu_s"] if cpu else r["direct_s"], metric="CPU" if cpu else "wall",
            target=1 / 1.2 if one_rank else None, target_text="≥ 0.83 (overhead ≤ 1.2×)" if one_rank else "",
            memory=memory,
        ))
    return rows


BATCH_BASELINES = {"alone": "orb_md one system at a time", "ase": f"ASE Langevin + {ORB_MODELS} ORBCalculator"}


def batch_rows(data: dict) -> list[ReportRow]:
    """bench_batch.py: batched MD (one model call per step) against one system at a time and against ASE."""
    phases = {r["phase"]: r for r in data["rows"]}
    if "batched" not in phases:
        return []
    ours = phases["batched"]
    metric = "CPU" if "cpu_s" in ours else "wall"
    key = "cpu_s" if metric == "CPU" else "seconds"
    case = (f"{data.get('systems', '')} systems of {data.get('min_atoms', '')}–{data.get('max_atoms', '')} atoms "
            f"({ours['atoms']} atoms), {data.get('steps', '')} Langevin steps")
    rows = []
    for phase, label in BATCH_BASELINES.items():
        if phase not in phases:
            continue
        gated = phase == "alone"
        rows.append(ReportRow(
            "batch", case, ours="orb_md batched", ours_s=ours[key], baseline=label, baseline_s=phases[phase][key],
            metric=metric, target=3.0 if gated else None, target_text="≥ 3" if gated else "",
            memory=_mb(ours["peak_rss_mb"], phases[phase]["peak_rss_mb"]),
        ))
    return rows


ADAPTERS: dict[str, Callable[[dict], list[ReportRow]]] = {
    "model": model_rows, "neighbors": neighbor_rows, "openmm": openmm_rows, "lammps": lammps_rows, "batch": batch_rows,
}


def report_rows(outcomes: list[SuiteOutcome]) -> list[ReportRow]:
    """Table rows of all suites; a suite that did not run, or ran without rows, still gets a row saying why."""
    rows = []
    for outcome in outcomes:
        if outcome.status != "ok" or outcome.data is None:
            rows.append(ReportRow(outcome.name, "(whole suite)", outcome.status, reason=outcome.reason))
            continue
        try:
            suite_rows = ADAPTERS[outcome.name](outcome.data)
        except (KeyError, TypeError, ValueError) as exc:
            suite_rows = [ReportRow(outcome.name, "(whole suite)", "failed",
                                    reason=f"unreadable JSON rows: {type(exc).__name__}: {exc}")]
        rows.extend(suite_rows or [ReportRow(outcome.name, "(whole suite)", "failed", reason="no result rows")])
    return rows


def _seconds(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    text = f"{value:.3g}" if value < 100 else f"{value:.0f}"
    return f"{text} s {metric}"


def _met(row: ReportRow) -> str:
    if row.status != "ok":
        return row.status
    if row.target is None:
        return "—"
    if not row.target_applies:
        return "n/a here"
    met = row.met
    return "—" if met is None else ("**yes**" if met else "**no**")


def markdown_table(rows: list[ReportRow]) -> str:
    lines = [
        "| suite | case | orb_md path | orb_md time | baseline | baseline time | ratio | target | met? "
        "| peak MB (ours / baseline) |",
        "|---|---|---|---:|---|---:|---:|---|---|---:|",
    ]
    for row in rows:
        if row.status != "ok":
            lines.append(f"| {row.suite} | {row.case} | {row.status}: {_cell(row.reason)} | | | | | | {row.status} | |")
            continue
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(
            f"| {row.suite} | {row.case} | {row.ours} | {_seconds(row.ours_s, row.metric)} | {row.baseline} "
            f"| {_seconds(row.baseline_s, row.metric)} | {ratio} | {row.target_text or '—'} | {_met(row)} "
            f"| {row.memory or '—'} |"
        )
    return "\n".join(lines)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")[:300]


def render_markdown(rows: list[ReportRow], outcomes: list[SuiteOutcome], header: list[str], plot_name: str) -> str:
    """The whole report: header lines, the table, the plot, and the command and timing of every suite."""
    parts = ["# orb_md benchmark report", "", *header, "",
             "Ratio = baseline time / orb_md time, both measured in the same run (> 1: orb_md faster). "
             "`CPU` times are process CPU time (user + sys of all threads), which a shared machine distorts far "
             "less than wall time; `wall` times are elapsed time. Targets are the issues' targets in that same "
             "direction (an overhead target ≤ 1.15× is a ratio ≥ 0.87).", "",
             markdown_table(rows), "", f"![ratios]({plot_name})", "", "## Suites", "",
             "| suite | status | wall time | load average before → after | command |", "|---|---|---:|---|---|"]
    for o in outcomes:
        load = "—" if o.load_before is None else f"{o.load_before:.2f} → {o.load_after:.2f}"
        status = o.status if o.status == "ok" else f"{o.status}: {_cell(o.reason)}"
        parts.append(f"| {o.name} | {status} | {o.seconds:.0f} s | {load} | `{o.command}` |")
    return "\n".join(parts) + "\n"


def render_plot(rows: list[ReportRow], path: Path) -> None:
    """Bars of the ratios from 1 (log scale) with each row's target marked; suites not measured listed in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    shown = [r for r in rows if r.status == "ok" and r.ratio is not None]
    missing = [r for r in rows if r.status != "ok"]
    labels = [f"{r.suite}: {r.case}\nvs {r.baseline}" for r in shown]
    labels += [f"{r.suite}: {r.case}\n{r.status}" for r in missing]
    y = list(range(len(labels)))[::-1]
    fig, ax = plt.subplots(figsize=(11, 1.5 + 0.55 * len(labels)))
    colors = [{True: "tab:green", False: "tab:red", None: "tab:gray"}[r.met] for r in shown]
    ax.barh(y[: len(shown)], [r.ratio - 1 for r in shown], left=1, color=colors, height=0.6)
    for yi, r in zip(y, shown):
        if r.target is not None:
            ax.plot([r.target, r.target], [yi - 0.4, yi + 0.4], color="black", lw=2,
                    ls="-" if r.target_applies else ":")
        ax.annotate(f"{r.ratio:.2f}", (r.ratio, yi), xytext=(3 if r.ratio >= 1 else -3, 0), textcoords="offset points",
                    va="center", ha="left" if r.ratio >= 1 else "right", fontsize=7)
    for yi in y[len(shown):]:
        ax.text(1.0, yi, " not measured", color="tab:red", va="center", fontsize=8)
    values = [1.0] + [r.ratio for r in shown] + [r.target for r in shown if r.target is not None]
    ax.set_xscale("log")
    ax.set_xlim(min(values) / 1.6, max(values) * 1.6)
    ticks = matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}")
    ax.xaxis.set_major_formatter(ticks)
    if max(values) / min(values) < 30:  # minor labels only where they do not crowd
        ax.xaxis.set_minor_formatter(ticks)
    else:
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.tick_params(axis="x", which="both", labelsize=7)
    ax.set_ylim(-0.7, len(labels) - 0.3)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.axvline(1.0, color="gray", lw=0.8)
    ax.set_xlabel("baseline time / orb_md time  (> 1: orb_md faster)")
    ax.set_title("orb_md vs same-run baselines; black tick = target (dotted: not for this device); "
                 "green met, red missed, gray no target here",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
