"""scripts/build_lammps.sh fails with one clear line and leaves the system's apt configuration as it was.

Run against a temporary cache (never the real one) with a Debian mirror that does not answer, so it stops at
the first step that needs the network, offline and in seconds."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build_lammps.sh"


def _apt_configuration() -> dict[str, str]:
    """Every file under /etc/apt, by path, with the digest of its content."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path("/etc/apt").rglob("*")) if p.is_file() and os.access(p, os.R_OK)}


def test_unreachable_debian_mirror_is_one_line_and_leaves_etc_apt_alone(tmp_path):
    before = _apt_configuration()
    env = {**os.environ, "ORB_MD_CACHE": str(tmp_path), "ORB_MD_DEBIAN_MIRROR": "http://127.0.0.1:9/debian",
           "ORB_MD_LAMMPS_DEB_VERSION": "20990101+dfsg-1"}
    env.pop("LAMMPS_SOURCE_DIR", None)
    result = subprocess.run(["bash", str(SCRIPT), "--python", sys.executable, "--no-mpi"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last == ("build_lammps.sh: ERROR: apt-get update of Debian sid's source index from "
                    "http://127.0.0.1:9/debian failed (see above); or set LAMMPS_SOURCE_DIR"), result.stderr
    assert "private apt configuration; /etc/apt is not changed" in result.stderr
    assert (tmp_path / "apt" / "sid-src.list").read_text().startswith("deb-src [signed-by=")
    assert _apt_configuration() == before
