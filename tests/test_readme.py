"""Every snippet of README.md runs as written: each section's blocks in order, in one fresh folder.

``python`` blocks run in a fresh interpreter, ``lammps`` blocks are written to the file their first comment names,
``sh`` lines run through bash with this checkout first on the import path. Lines that set up a machine (``make``,
``pip install``, ``scripts/``) are not run here (CI runs them) but checked: the target, extras and script exist.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def sections() -> dict[str, list[tuple[str, str]]]:
    """``## `` heading -> its fenced blocks (language, code), in order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for part in re.split(r"^## ", README.read_text(), flags=re.M)[1:]:
        title, _, body = part.partition("\n")
        blocks = BLOCK.findall(body)
        if blocks:
            out[title.strip()] = blocks
    return out


def environment() -> dict[str, str]:
    """This checkout (and its plugins) first on the import path; the environment's bin/ (lmp, orb-md) on PATH."""
    env = dict(os.environ)
    paths = [str(REPO), str(REPO / "openmm_plugin"), str(REPO / "lammps_plugin"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["PATH"] = f"{Path(sys.prefix) / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = sys.prefix
    env.setdefault("OMP_NUM_THREADS", "1")
    env["TQDM_DISABLE"] = "1"
    return env


def check_setup_line(line: str) -> bool:
    """A machine-setup line (not run in a test): check what it names exists. False: an ordinary line."""
    words = shlex.split(line, comments=True)
    if words[0] == "make":
        targets = re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), flags=re.M)
        assert words[1] in targets, f"README: make {words[1]}: no such Makefile target"
        return True
    if words[:2] == ["pip", "install"]:
        extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        for spec in words[2:]:
            for extra in re.findall(r"\[(.*)\]", spec)[0].split(","):
                assert extra in extras, f"README: pip install {spec}: no extra {extra!r} in pyproject.toml"
        return True
    if words[0].startswith("scripts/"):
        assert os.access(REPO / words[0], os.X_OK), f"README: {words[0]} is not an executable script"
        return True
    return False


def run(cmd: list[str], cwd: Path, what: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"README snippet failed: {what}\n{(proc.stdout + proc.stderr)[-4000:]}"


def test_readme_names_the_two_commands():
    assert {"Two commands", "Install", "ASE", "OpenMM", "LAMMPS", "Batched MD", "Training"} <= set(sections())
    assert "make test" in (REPO / ".ci" / "run").read_text()


@pytest.mark.parametrize("title", list(sections()))
def test_readme_section_runs(title, tmp_path):
    for language, code in sections()[title]:
        if language == "python":
            run([sys.executable, "-c", code], tmp_path, code)
        elif language == "lammps":
            name = re.match(r"# ([\w.]+):", code)
            assert name, "a lammps block starts with '# FILE: ...'"
            (tmp_path / name.group(1)).write_text(code)
        elif language == "sh":
            for line in code.splitlines():
                if line.strip() and not line.lstrip().startswith("#") and not check_setup_line(line):
                    run(["bash", "-euo", "pipefail", "-c", line], tmp_path, line)
        else:
            raise AssertionError(f"README: a {language!r} block in {title!r}: this test cannot check it")
