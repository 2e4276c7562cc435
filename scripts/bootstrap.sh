#!/usr/bin/env bash
# Create (or update) the orb_md environment: a virtual env with torch 2.9.1, orb_md and its
# engine extras, and (with --lammps) LAMMPS built from source with ML-IAP Python coupling.
# Idempotent: a stamp records what was installed; an unchanged recipe returns in seconds.
#
#   scripts/bootstrap.sh [--lammps]      prints the environment's python path on stdout
#
# ORB_MD_VENV overrides the location (default ~/.cache/orb-md/venv).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ORB_MD_VENV:-${ORB_MD_CACHE:-$HOME/.cache/orb-md}/venv}"
TORCH_VERSION="2.9.1"   # openmmtorch 1.5 wheels link against this torch's CUDA libraries
WITH_LAMMPS=0
[[ "${1:-}" == "--lammps" ]] && WITH_LAMMPS=1

log() { echo "bootstrap: $*" >&2; }

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  python3 -m venv "$VENV" >&2
fi
PY="$VENV/bin/python"
stamp="$VENV/.orb-md-stamp"
# the checkout's path is part of the key: orb_md is installed editable from this checkout
want="$( (echo "$REPO"; cat "$REPO/pyproject.toml" "$REPO/scripts/bootstrap.sh") | sha256sum | cut -c1-16)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  log "installing torch==$TORCH_VERSION and orb_md[openmm,lammps,test] (first time: several minutes)"
  "$PY" -m pip install -q --disable-pip-version-check "torch==$TORCH_VERSION" >&2
  "$PY" -m pip install -q --disable-pip-version-check -e "$REPO[openmm,lammps,test]" >&2
  echo "$want" > "$stamp"
fi
if [[ $WITH_LAMMPS == 1 ]]; then
  "$REPO/scripts/build_lammps.sh" --python "$PY" >&2
fi
echo "$PY"
