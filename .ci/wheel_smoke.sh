#!/usr/bin/env bash
# The package as a user gets it: build orb_md's wheel, install it (not editable) into a fresh virtual environment
# and run it there in fresh processes (.ci/wheel_smoke.py): the bundled model through ASE, an OpenMM TorchForce
# and a one-rank LAMMPS run, each against the ASE energy of the same structure.
#
#   .ci/wheel_smoke.sh PYTHON      PYTHON: the bootstrap environment's interpreter (scripts/bootstrap.sh --lammps)
#
# The heavy dependencies (torch, openmm, openmm-torch, the LAMMPS module and lmp) are not reinstalled: a .pth
# line makes the bootstrap environment's site-packages visible after the fresh one's own, which holds orb_md;
# the smoke test asserts that orb_md is imported from the wheel, not from the editable checkout.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BOOT_PY="${1:?usage: .ci/wheel_smoke.sh PYTHON, the interpreter of the bootstrap environment}"
BOOT_BIN="$(dirname "$BOOT_PY")"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/orb-md-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
log() { echo "wheel-smoke: $*"; }

log "building the wheel of $REPO"
"$BOOT_PY" -m pip wheel --no-deps --disable-pip-version-check -q -w "$WORK/dist" "$REPO"
wheel="$(ls "$WORK"/dist/orb_md-*.whl)"
log "built $(basename "$wheel")"

log "fresh virtual environment $WORK/venv"
"$BOOT_PY" -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
# orb_md first (no dependencies: they come from the bootstrap environment below), then the .pth line
"$PY" -m pip install --no-deps --disable-pip-version-check -q "$wheel"
own_site="$("$PY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
boot_site="$("$BOOT_PY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
echo "$boot_site" > "$own_site/zz-orb-md-bootstrap-dependencies.pth"

# fresh processes, outside the checkout, with nothing of it on the path; lmp and the fresh python first on PATH
# (lmp embeds the first python on PATH, so its pair style imports orb_md from the fresh environment too)
cd "$WORK"
run() { env -u PYTHONPATH PATH="$WORK/venv/bin:$BOOT_BIN:$PATH" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" "$@"; }
for check in wheel ase openmm lammps; do
  log "$check"
  run "$PY" "$REPO/.ci/wheel_smoke.py" "$check" "$wheel"
done
log "passed"
