#!/usr/bin/env bash
# Build LAMMPS with ML-IAP Python coupling (pair_style mliap unified) through the
# top-level CMakeLists.txt and install lmp, liblammps and the `lammps` Python
# package into a Python environment. Idempotent: the build is cached under
# $ORB_MD_CACHE/lammps-<version>-<options hash>/ and a repeated run only checks.
#
#   scripts/build_lammps.sh [--python PY] [--no-mpi] [--jobs N]
#
# Source: $LAMMPS_SOURCE_DIR if set (e.g. a git checkout), else the orig tarball of Debian's
# source package lammps=$ORB_MD_LAMMPS_DEB_VERSION from the sid deb-src archive (md5-checked),
# found through a private apt configuration in $ORB_MD_CACHE/apt (/etc/apt is left alone) from
# $ORB_MD_DEBIAN_MIRROR (default: the system's Debian mirror, else deb.debian.org).
# Debian system packages (cmake, g++, patch, MPICH) are apt-installed when missing and root
# (the only change to the system; logged). The superbuild applies lammps_plugin/patches/*.patch
# to the source tree (in place, once).
set -euo pipefail

DEB_VERSION="${ORB_MD_LAMMPS_DEB_VERSION:-20260704+dfsg-2}"
DEB_ORIG_MD5="${ORB_MD_LAMMPS_ORIG_MD5:-b635f5a814b3f8db20d39bf4494b79a2}"
CACHE="${ORB_MD_CACHE:-$HOME/.cache/orb-md}"
APT_DIR="$CACHE/apt"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}"
WITH_MPI=ON
JOBS="${ORB_MD_BUILD_JOBS:-2}"

die() { echo "build_lammps.sh: ERROR: $*" >&2; exit 1; }
log() { echo "build_lammps.sh: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) PY="$2"; shift 2 ;;
    --no-mpi) WITH_MPI=OFF; shift ;;
    --jobs) JOBS="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ -n "$PY" ]] || PY="$(command -v python3)" || die "no Python found; pass --python"
[[ -x "$PY" ]] || die "--python '$PY' is not an executable"
PY_PREFIX="$("$PY" -c 'import sys; print(sys.prefix)')"

apt_install() {
  [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null ||
    die "missing system packages: $*  (install them, e.g. sudo apt-get install $*)"
  log "installing Debian packages on this system: apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2; } ||
    die "apt-get install $* failed"
}

ensure_system_deps() {
  local pkgs=()
  command -v cmake >/dev/null || pkgs+=(cmake)
  command -v c++ >/dev/null && command -v make >/dev/null || pkgs+=(g++ make)
  command -v patch >/dev/null || pkgs+=(patch)
  if [[ $WITH_MPI == ON ]] && ! command -v mpicxx >/dev/null; then pkgs+=(mpich libmpich-dev); fi
  "$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' ||
    pkgs+=(python3-dev)
  [[ ${#pkgs[@]} -eq 0 ]] || apt_install "${pkgs[@]}"
  "$PY" -c 'import sysconfig, sys; sys.exit(not sysconfig.get_config_var("Py_ENABLE_SHARED"))' ||
    die "$PY has no shared libpython; LAMMPS's PYTHON package needs one (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared)"
}

ensure_python_deps() {
  "$PY" -c 'import Cython, numpy' 2>/dev/null || {
    log "pip install cython numpy into $PY_PREFIX"
    "$PY" -m pip install -q cython numpy >&2 || die "pip install cython numpy failed"
  }
  # orb_md_lammps needs mpi4py for MPI runs (global pooling). Build it from source against the
  # system MPICH: the manylinux wheel dlopens libmpi.so.12, which Debian's MPICH does not ship,
  # and a broken mpi4py also breaks `import lammps` (core.py imports it when present).
  if [[ $WITH_MPI == ON ]] && ! "$PY" -c 'from mpi4py import MPI' 2>/dev/null; then
    log "pip install --no-binary=mpi4py mpi4py into $PY_PREFIX (compiles against $(command -v mpicc); minutes)"
    MPICC="$(command -v mpicc)" "$PY" -m pip install -q --force-reinstall --no-deps --no-binary=mpi4py mpi4py >&2 ||
      die "pip install mpi4py failed"
  fi
}

# Debian's orig tarball, found in sid's source index (private apt configuration, see apt_private),
# downloaded to a .part file and renamed once its md5 is right. Prints the extracted source tree.
fetch_debian_source() {
  local upstream="${DEB_VERSION%%-*}" dir="$CACHE/src"
  local orig="lammps_${upstream}.orig.tar.gz"
  local tarball="$dir/$orig" tree="$dir/lammps-${upstream%%+*}"
  mkdir -p "$dir"
  if [[ ! -f "$tree/.orb-md-extracted" ]]; then
    if ! echo "$DEB_ORIG_MD5  $tarball" | md5sum -c --status 2>/dev/null; then
      ensure_sid_sources
      local listed url got
      listed="$(source_record | awk -v f="$orig" '$3 == f {print $1; exit}')"
      [[ "$listed" == "$DEB_ORIG_MD5" ]] ||
        die "apt lists md5 '${listed:-none}' for lammps=$DEB_VERSION, expected $DEB_ORIG_MD5 (Debian moved on? set LAMMPS_SOURCE_DIR to a LAMMPS checkout)"
      url="$(apt_private apt-get source --print-uris -qq "lammps=$DEB_VERSION" |
             awk -v f="$orig" '$2 == f {gsub("\047", "", $1); print $1; exit}')"
      [[ -n "$url" ]] || die "apt-get source --print-uris names no $orig for lammps=$DEB_VERSION"
      log "downloading $url into $dir"
      "$PY" -c 'import shutil, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=60) as response, open(sys.argv[2], "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)
except OSError as exc:
    sys.exit(f"build_lammps.sh: {exc}")' "$url" "$tarball.part" ||
        { rm -f "$tarball.part"; die "download of $url failed (see the line above); or set LAMMPS_SOURCE_DIR"; }
      got="$(md5sum "$tarball.part" | cut -d' ' -f1)"
      [[ "$got" == "$DEB_ORIG_MD5" ]] || { rm -f "$tarball.part"; die "downloaded $orig has md5 $got, expected $DEB_ORIG_MD5"; }
      mv "$tarball.part" "$tarball"
    fi
    rm -rf "$tree" && mkdir -p "$tree"
    tar -xzf "$tarball" -C "$tree" || die "cannot extract $tarball"
    touch "$tree/.orb-md-extracted"
  fi
  echo "$tree"
}

# apt's source record of lammps=$DEB_VERSION (empty when apt does not list it). `apt-cache showsrc`
# takes no `=version`, so pick the version's paragraph (index(), not a regex: versions contain '+').
source_record() {
  [[ -f "$APT_DIR/sid-src.list" ]] || return 0
  apt_private apt-cache showsrc lammps 2>/dev/null | awk -v RS= -v v="$DEB_VERSION" 'index($0, "\nVersion: " v "\n")'
}

# apt-get/apt-cache reading only $APT_DIR: sid's deb-src entry, its index and caches live there, so
# neither root nor a change to /etc/apt or /var/lib/apt is needed. As root, apt's download sandbox
# user could not write under $HOME: downloads then run as root.
apt_private() {
  local tool="$1"; shift
  local options=(-o "Dir::Etc::SourceList=$APT_DIR/sid-src.list" -o "Dir::Etc::SourceParts=$APT_DIR/sources.list.d"
                 -o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache")
  [[ $(id -u) -ne 0 ]] || options+=(-o "APT::Sandbox::User=root")
  "$tool" "${options[@]}" "$@"
}

ensure_sid_sources() {
  command -v apt-get >/dev/null ||
    die "apt-get not found: cannot fetch Debian's LAMMPS source; set LAMMPS_SOURCE_DIR to a LAMMPS checkout"
  [[ -r "$KEYRING" ]] || die "missing $KEYRING (apt-get install debian-archive-keyring); or set LAMMPS_SOURCE_DIR"
  [[ ! -f /etc/apt/sources.list.d/orb-md-sid-src.sources ]] ||
    log "note: /etc/apt/sources.list.d/orb-md-sid-src.sources, written by an earlier build_lammps.sh, is no longer used (rm it to restore your apt sources)"
  [[ -n "$(source_record)" ]] && return
  local uri="${ORB_MD_DEBIAN_MIRROR:-}"
  [[ -n "$uri" ]] ||
    uri="$(grep -rhoE 'https?://[^ ]*/debian/?$' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n1)"
  uri="${uri:-http://deb.debian.org/debian}"
  mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/sources.list.d"
  printf 'deb-src [signed-by=%s] %s sid main\n' "$KEYRING" "$uri" > "$APT_DIR/sid-src.list"
  log "reading Debian sid's source index ($uri) into $APT_DIR (private apt configuration; /etc/apt is not changed)"
  apt_private apt-get update -q --error-on=any >&2 ||
    die "apt-get update of Debian sid's source index from $uri failed (see above); or set LAMMPS_SOURCE_DIR"
  [[ -n "$(source_record)" ]] ||
    die "Debian sid has no lammps=$DEB_VERSION (apt-cache showsrc lammps lists the versions); set ORB_MD_LAMMPS_DEB_VERSION or LAMMPS_SOURCE_DIR"
}

# True when PY's env already holds this build: lmp runs, `lammps` imports
# with ML-IAP + PYTHON and the expected version.
installed_ok() {
  local help
  help="$(PATH="$PY_PREFIX/bin:$PATH" "$PY_PREFIX/bin/lmp" -h 2>/dev/null)" && [[ $help == *ML-IAP* ]] || return 1
  "$PY" - "$1" <<'EOF' 2>/dev/null
import sys, lammps
lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
ok = {"ML-IAP", "PYTHON"} <= set(lmp.installed_packages) and lmp.version() == int(sys.argv[1])
lmp.close()
sys.exit(not ok)
EOF
}

main() {
  ensure_system_deps
  ensure_python_deps
  local src="${LAMMPS_SOURCE_DIR:-}" src_id
  if [[ -n "$src" ]]; then
    src="$(cd "$src" && pwd)" || die "LAMMPS_SOURCE_DIR=$LAMMPS_SOURCE_DIR does not exist"
    src_id="$src $(git -C "$src" rev-parse HEAD 2>/dev/null || true)"
  else
    src="$(fetch_debian_source)"
    src_id="debian $DEB_VERSION $DEB_ORIG_MD5"
  fi
  [[ -f "$src/src/version.h" ]] || die "$src is not a LAMMPS source tree"
  local version
  version="$(sed -n 's/^#define LAMMPS_VERSION "\(.*\)"/\1/p' "$src/src/version.h" | xargs -I{} date -d {} +%Y%m%d)"
  [[ -n "$version" ]] || die "cannot read the LAMMPS version from $src/src/version.h"

  # The directory key covers what determines the binaries; edits to the CMake
  # recipe or to the LAMMPS patches (stamp) only trigger an incremental
  # re-configure/build in place (make recompiles the patched files).
  local key hash build_dir stamp installed
  key="$src_id|mpi=$WITH_MPI|$("$PY" -c 'import sys; print(sys.version.split()[0], sys.base_prefix)')"
  key+="|$(c++ --version | head -n1)"
  hash="$(echo "$key" | sha256sum | cut -c1-12)"
  build_dir="$CACHE/lammps-$version-$hash"
  stamp="$(cat "$REPO/CMakeLists.txt" "$REPO"/lammps_plugin/cmake/*.cmake "$REPO"/lammps_plugin/patches/*.patch |
           sha256sum | cut -c1-16)"
  # which build (directory + stamp) is installed in this environment
  installed="$PY_PREFIX/share/lammps/orb-md-build.txt"
  mkdir -p "$build_dir"
  exec 9>"$build_dir/.lock"
  flock 9

  # A user's source tree may have changed: always let make decide there.
  if [[ -z "${LAMMPS_SOURCE_DIR:-}" && "$(cat "$build_dir/.built" 2>/dev/null)" == "$stamp" &&
        "$(cat "$installed" 2>/dev/null)" == "$build_dir $stamp" ]] && installed_ok "$version"; then
    log "up to date: $build_dir installed in $PY_PREFIX"
    return
  fi
  echo "$key" > "$build_dir/key.txt"
  # The superbuild (this checkout's CMakeLists.txt, this environment's Python) gets its own small tree;
  # the LAMMPS tree inside the cached directory is shared, so another checkout or venv only recompiles
  # what depends on its Python (the Cython coupling), then installs.
  local superbuild
  superbuild="$build_dir/superbuild-$(echo "$REPO|$PY_PREFIX" | sha256sum | cut -c1-8)"
  log "building LAMMPS $version in $build_dir (log: $build_dir/build.log)"
  local t0=$SECONDS
  if ! {
    cmake -S "$REPO" -B "$superbuild" -DLAMMPS_SOURCE_DIR="$src" -DPython_EXECUTABLE="$PY" \
          -DORB_MD_WITH_MPI="$WITH_MPI" -DCMAKE_INSTALL_PREFIX="$PY_PREFIX" \
          -DORB_MD_LAMMPS_BINARY_DIR="$build_dir/build/lammps-build" &&
    nice -n "${ORB_MD_NICE:-10}" cmake --build "$superbuild" -j "$JOBS"
  } > "$build_dir/build.log" 2>&1; then
    tail -n 40 "$build_dir/build.log" >&2
    die "LAMMPS configure/build failed; full log: $build_dir/build.log"
  fi
  echo "$stamp" > "$build_dir/.built"
  log "build finished in $((SECONDS - t0)) s; installing into $PY_PREFIX"
  cmake --install "$superbuild" > "$build_dir/install.log" 2>&1 ||
    { tail -n 40 "$build_dir/install.log" >&2; die "install failed; log: $build_dir/install.log"; }
  installed_ok "$version" || die "installed LAMMPS does not import from $PY with ML-IAP + PYTHON"
  echo "$build_dir $stamp" > "$installed"
  log "done: $PY_PREFIX/bin/lmp, lammps Python package in $PY_PREFIX"
}

main
