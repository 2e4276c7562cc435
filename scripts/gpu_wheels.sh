#!/usr/bin/env bash
# Prepare, on this (CPU) machine, everything scripts/gpu_check.sh needs on the GPU device machine, which has
# Python 3.12, torch 2.11+cu130, nvcc, g++, CMake, no registry access and takes <= 64 MiB of working tree per call.
#
#   bash scripts/gpu_wheels.sh            # writes .gpu/ (ignored) in this checkout, prints sizes; then on the device:
#   the device tool's run: command 'bash scripts/gpu_check.sh', carry [".gpu"], timeout_s 600
#
# Run it in the checkout the device tool sends (the session's own repo). .gpu/ holds:
#   wheels/  cp312 manylinux wheels of what the device image lacks (KINDS.md lists it): openmm, openmmtorch and their
#            CUDA 13 plugins, vesin, vesin-torch, ase, openmmml, pdbfixer, and orb_md's own wheel (entry points of
#            the openmm-ml potentials). Not carried: numpy, scipy, matplotlib, tqdm, mpi4py, cython, pytest
#            (in the image), mdtraj (nothing under test imports it), libnvrtc.so.12 (see gpu_check.sh: an empty stub suffices);
#   lammps-src.tar.xz  LAMMPS trimmed to what scripts/build_lammps.sh builds (core, PYTHON, ML-IAP, ML-SNAP, STUBS,
#            cmake, python) with orb_md's patches applied, from Debian's source that build_lammps.sh caches in
#            $ORB_MD_CACHE/src (the build itself runs on the device);
#   3ks3.pdb  carbonic anhydrase II for benchmark (c), from ../shared/data/structures.
# Fails when the tree that travels (tracked + untracked-not-ignored files + .gpu) exceeds 64 MiB.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$REPO/.gpu"
CACHE="${ORB_MD_CACHE:-$HOME/.cache/orb-md}"
PIP="${PIP:-$CACHE/venv/bin/pip}"
LAMMPS_TREE="${LAMMPS_SOURCE_DIR:-$CACHE/src/lammps-20260704}"
PDB="${ORB_MD_3KS3_PDB:-$REPO/../shared/data/structures/3ks3.pdb}"
LIMIT=$((64 * 1024 * 1024))
WHEELS=(openmm==8.6.1 openmmtorch==1.5 openmm-cuda-13==8.6.1 openmm-torch-cuda-13==1.5 vesin==0.6.2 vesin-torch==0.6.2
        ase==3.29.0)
PURE_PYTHON=(openmmml==1.8 pdbfixer==1.12.0)  # published as sdists: built into wheels here

die() { echo "gpu_wheels.sh: ERROR: $*" >&2; exit 1; }
git -C "$REPO" check-ignore -q .gpu/ || die "$OUT is not ignored by git (add /.gpu/ to .gitignore)"
[[ -x "$PIP" ]] || PIP="$(command -v pip)" || die "no pip found (set PIP)"
[[ -d "$LAMMPS_TREE/src/ML-IAP" ]] || die "no LAMMPS source at $LAMMPS_TREE (scripts/build_lammps.sh fetches it; or set LAMMPS_SOURCE_DIR)"
[[ -f "$PDB" ]] || die "no 3KS3 structure at $PDB (set ORB_MD_3KS3_PDB)"

rm -rf "$OUT" && mkdir -p "$OUT/wheels"
platforms=()
for tag in manylinux_2_34_x86_64 manylinux_2_28_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  platforms+=(--platform "$tag")
done
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }  # this machine's pip config
quiet "$PIP" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
  -d "$OUT/wheels" "${WHEELS[@]}" || die "pip download failed"
quiet "$PIP" wheel -q --no-deps -w "$OUT/wheels" "${PURE_PYTHON[@]}" || die "pip wheel ${PURE_PYTHON[*]} failed"
build="$(mktemp -d)"
cp -r "$REPO/." "$build/" && rm -rf "$build/.gpu" "$build/.git"
quiet "$PIP" wheel -q --no-deps -w "$OUT/wheels" "$build" || die "building orb_md's wheel failed"
rm -rf "$build"

# the trimmed tree, with lammps_plugin/patches applied here (the device image may lack GNU patch; gpu_check.sh then
# stands in a no-op `patch`, which PatchLammps.cmake reads as "already applied")
trimmed="$(mktemp -d)"
(cd "$LAMMPS_TREE" &&
 { find src -maxdepth 1 -type f; printf '%s\n' LICENSE README cmake python doc/lammps.1 third_party \
     src/PYTHON src/ML-IAP src/ML-SNAP src/STUBS; } | tar -cf - -T - | tar -xf - -C "$trimmed") ||
  die "copying the LAMMPS sources failed"
mkdir -p "$trimmed/bench" "$trimmed/potentials"  # installed by LAMMPS's CMake; their contents are not needed
for p in "$REPO"/lammps_plugin/patches/*.patch; do  # the cached tree may be patched already (build_lammps.sh)
  (cd "$trimmed" && { patch -p1 -R --dry-run --force --silent -i "$p" >/dev/null ||
                      patch -p1 --forward --silent --no-backup-if-mismatch -i "$p"; }) || die "patch $p failed"
done
touch "$trimmed/.orb-md-prepatched"
tar -C "$trimmed" -cf - . | xz -T0 -6 > "$OUT/lammps-src.tar.xz" || die "packing LAMMPS failed"
rm -rf "$trimmed"
cp "$PDB" "$OUT/3ks3.pdb"

ls -l "$OUT/wheels" "$OUT" | awk 'NF >= 9 {printf "%10d  %s\n", $5, $9}'
bundle=$(du -sb "$OUT" | cut -f1)
tree=$(cd "$REPO" && git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -n1 | cut -f1)
total=$((bundle + tree))
printf 'bundle %.1f MiB + working tree %.1f MiB = %.1f MiB (limit 64 MiB per device call)\n' \
  "$(echo "$bundle / 1048576" | bc -l)" "$(echo "$tree / 1048576" | bc -l)" "$(echo "$total / 1048576" | bc -l)"
(( total <= LIMIT )) || die "the tree that travels is $total bytes, over the 64 MiB limit"
