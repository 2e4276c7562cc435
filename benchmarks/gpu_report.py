"""Adds the outcome of the tests/gpu runs (JUnit XML from pytest) to the GPU benchmark report gpu.json / gpu.md.

    python benchmarks/gpu_report.py RESULTS_DIR gpu-tests.xml [gpu-lammps-tests.xml ...]

Each test is listed as passed, failed (with the first line of its message), skipped (with the reason) or errored;
properties a test recorded (the float32-high errors) are listed with it. A missing XML file is reported as such.
Exit status 1 when a test failed, a file is missing or no test passed (all skipped is no GPU check).
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path


def outcomes(path: Path) -> list[dict]:
    """One row per test case of a JUnit XML file."""
    rows = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        row = {"test": f"{case.get('classname')}::{case.get('name')}", "seconds": float(case.get("time", 0.0)),
               "outcome": "passed"}
        for tag in ("failure", "error", "skipped"):
            element = case.find(tag)
            if element is not None:
                message = (element.get("message") or element.text or "").strip().splitlines()
                row.update(outcome={"failure": "failed", "error": "error", "skipped": "skipped"}[tag],
                           message=message[0][:300] if message else "")
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        if properties:
            row["properties"] = properties
        rows.append(row)
    return rows


def main(argv: list[str]) -> int:
    results, xml_files = Path(argv[0]), [Path(p) for p in argv[1:]]
    report = json.loads((results / "gpu.json").read_text()) if (results / "gpu.json").exists() else {}
    tests, missing, lines = [], [], ["", "## tests/gpu", ""]
    for path in xml_files:
        if not path.exists():
            missing.append(path.name)
            lines.append(f"- {path.name}: not written (that stage did not run or was stopped; see gpu-check.log)")
            continue
        rows = outcomes(path)
        tests += rows
        counts = {k: sum(r["outcome"] == k for r in rows) for k in ("passed", "failed", "error", "skipped")}
        lines.append(f"{path.name}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        lines.append("")
        for row in rows:
            extra = f": {row['message']}" if row.get("message") else ""
            props = f" {row['properties']}" if row.get("properties") else ""
            lines.append(f"- {row['outcome']} `{row['test']}` ({row['seconds']:.1f} s){extra}{props}")
        lines.append("")
    report["tests"] = tests
    (results / "gpu.json").write_text(json.dumps(report, indent=1))
    with open(results / "gpu.md", "a") as out:
        out.write("\n".join(lines) + "\n")
    failed = [r for r in tests if r["outcome"] in ("failed", "error")]
    passed = sum(r["outcome"] == "passed" for r in tests)
    print(f"gpu_report: {len(tests)} tests, {passed} passed, {len(failed)} failed or errored; missing: {missing or 'none'}")
    return 1 if failed or missing or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
