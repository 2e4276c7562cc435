#!/usr/bin/env bash
# Every CUDA path of orb_md, run and measured in one call on the GPU device machine (at most ~9 minutes):
#
#   bash scripts/gpu_wheels.sh                                   # here, once: builds .gpu/ (wheels, LAMMPS source)
#   then the device tool's run: command 'bash scripts/gpu_check.sh', carry [".gpu"], timeout_s 600
#
# 1. installs .gpu/wheels into /tmp/orb-md-site (no registry there), builds two tiny libraries with the device's g++:
#    an empty libnvrtc.so.12 (openmm-torch's PyPI wheel, built against torch 2.9 + CUDA 12, lists it as NEEDED but
#    uses none of its symbols; torch 2.11 ships CUDA 13's libnvrtc.so.13) and scripts/gpu/torch_abi_shim.cpp
#    (the torch 2.9 signature of c10_cuda_check_implementation that libOpenMMTorchCUDA.so calls), LD_PRELOADed
#    into the test and benchmark processes;
# 2. builds LAMMPS from .gpu/lammps-src.tar.xz with scripts/build_lammps.sh in the background (MPI if mpicxx exists);
# 3. runs tests/gpu (model parity, neighbour backends, OpenMM CUDA platform, batched MD), then
#    benchmarks/bench_gpu.py, then tests/gpu/test_cuda_lammps.py once LAMMPS is built;
# 4. writes benchmarks/results/gpu.md and gpu.json (device name, benchmarks, every test's outcome), the JUnit XML
#    files and the logs, copied to $OUT when the device tool sets it.
# Without a usable CUDA GPU it prints "no GPU" and exits 2 before doing anything. --skip-lammps leaves out 2 and
# the LAMMPS tests; --lammps-only runs only 2 and the LAMMPS tests: issued at once after a first call whose build
# did not finish (the machine stays warm ~30 s and keeps /tmp), it resumes that build (build_lammps.sh is
# incremental). Exit status: 0 when every test that ran passed and the benchmarks completed, else 1.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
BUDGET="${ORB_MD_GPU_CHECK_SECONDS:-530}"   # the whole script; the device allows 600 s per command
SKIP_LAMMPS=0 LAMMPS_ONLY=0
case "${1:-}" in
  --skip-lammps) SKIP_LAMMPS=1 ;;
  --lammps-only) LAMMPS_ONLY=1 ;;
  "") ;;
  *) echo "gpu_check.sh: unknown argument '$1' (--skip-lammps | --lammps-only)"; exit 1 ;;
esac

if ! command -v nvidia-smi >/dev/null 2>&1 ||
   ! "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' >/dev/null 2>&1; then
  echo "gpu_check.sh: no GPU (no nvidia-smi, or torch.cuda.is_available() is False for $PY): nothing was run"
  exit 2
fi
[[ -d "$REPO/.gpu/wheels" ]] || { echo "gpu_check.sh: no .gpu/wheels: run scripts/gpu_wheels.sh and carry .gpu"; exit 1; }

RESULTS="$REPO/benchmarks/results"
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu-check$( (( LAMMPS_ONLY )) && echo -lammps).log"
exec > >(tee "$LOG") 2>&1
left() { echo $((BUDGET - SECONDS)); }
stage() { echo "=== $(date -u +%H:%M:%S) (+${SECONDS}s) $*"; }
status=0

stage "install the carried wheels"
SITE=/tmp/orb-md-site GPULIB=/tmp/orb-md-gpulib
mkdir -p "$GPULIB"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$REPO"/.gpu/wheels/*.whl ||
  { echo "pip install of the carried wheels failed"; exit 1; }
TORCH_SITE="$("$PY" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')"
libs="$TORCH_SITE/torch/lib"
for d in "$TORCH_SITE"/nvidia/*/lib "$TORCH_SITE"/nvidia/cu13/lib; do [[ -d "$d" ]] && libs="$libs:$d"; done
export LD_LIBRARY_PATH="$GPULIB:$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONPATH="$REPO:$REPO/openmm_plugin:$REPO/lammps_plugin:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$SITE/bin:$PATH" PYTHONUNBUFFERED=1 ORB_MD_CACHE=/tmp/orb-md-cache

stage "ABI helpers for openmm-torch 1.5 (built against torch 2.9) under torch $("$PY" -c 'import torch; print(torch.__version__)')"
ldconfig -p | grep -q 'libnvrtc.so.12 ' || gcc -shared -Wl,-soname,libnvrtc.so.12 -o "$GPULIB/libnvrtc.so.12" -x c /dev/null
with_shim=()  # the processes that load openmm-torch get the shim (not the compilers of the LAMMPS build)
if ! nm -D --defined-only "$TORCH_SITE/torch/lib/libc10_cuda.so" | grep -q '_ZN3c104cuda29c10_cuda_check_implementationEiPKcS2_ib'; then
  g++ -O2 -shared -fPIC -o "$GPULIB/libtorch_abi_shim.so" "$REPO/scripts/gpu/torch_abi_shim.cpp" \
    -L"$TORCH_SITE/torch/lib" -lc10_cuda -Wl,-rpath,"$TORCH_SITE/torch/lib" &&
    with_shim=(env "LD_PRELOAD=$GPULIB/libtorch_abi_shim.so${LD_PRELOAD:+:$LD_PRELOAD}")
fi
nvidia-smi -L
"$PY" -c 'import sysconfig as s, os; print("python", s.get_python_version(), "Py_ENABLE_SHARED", s.get_config_var("Py_ENABLE_SHARED"),
  "Python.h", os.path.exists(s.get_paths()["include"] + "/Python.h"), "prefix writable", os.access(s.get_paths()["purelib"], os.W_OK))'
for tool in gcc g++ make ninja cmake patch mpicxx mpirun cythonize; do printf '%s=%s ' "$tool" "$(command -v "$tool" || echo -)"; done; echo
"${with_shim[@]}" "$PY" - <<'PY'
import openmm, torch
import orb_md_openmm.force  # noqa: F401  (retries openmm-torch's plugins once torch is imported)
names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}; OpenMM {openmm.__version__} platforms {names}")
print("plugin load failures:", openmm.Platform.getPluginLoadFailures() or "none")
PY

if (( ! SKIP_LAMMPS )); then
  stage "LAMMPS build in the background (log: lammps-build.log)"
  [[ -f /tmp/lammps-src/.orb-md-prepatched ]] ||
    { mkdir -p /tmp/lammps-src && tar -xJf "$REPO/.gpu/lammps-src.tar.xz" -C /tmp/lammps-src; }
  mpi=(--no-mpi); command -v mpicxx >/dev/null && mpi=()
  if ! command -v patch >/dev/null && [[ -f /tmp/lammps-src/.orb-md-prepatched ]]; then
    mkdir -p "$GPULIB/bin" && printf '#!/bin/sh\nexit 0\n' > "$GPULIB/bin/patch" && chmod +x "$GPULIB/bin/patch"
    export PATH="$PATH:$GPULIB/bin"  # no GNU patch there: the carried tree is patched already (gpu_wheels.sh)
  fi
  # PIP_NO_BUILD_ISOLATION=0 (sic: pip reads it as --no-build-isolation): the lammps package installs with the
  # image's setuptools, as no registry can be reached there
  PIP_NO_BUILD_ISOLATION=0 LAMMPS_SOURCE_DIR=/tmp/lammps-src timeout $(( $(left) - 60 )) \
    nice bash "$REPO/scripts/build_lammps.sh" --python "$PY" "${mpi[@]}" --jobs 12 > "$RESULTS/lammps-build.log" 2>&1 &
  build_pid=$!
fi

run_tests() {  # junit-name timeout pytest-arguments...
  local xml="$RESULTS/$1" limit="$2"; shift 2
  (( limit > 20 )) || { echo "no time left for $xml"; status=1; return; }
  timeout "$limit" "${with_shim[@]}" "$PY" -m pytest -q -p no:cacheprovider -o addopts="" -rA --junitxml="$xml" "$@" || status=1
}

xmls=()
if (( ! LAMMPS_ONLY )); then
stage "tests/gpu without LAMMPS"
run_tests gpu-tests.xml $(( $(left) - 260 )) "$REPO/tests/gpu" --ignore="$REPO/tests/gpu/test_cuda_lammps.py"
xmls+=("$RESULTS/gpu-tests.xml")

stage "benchmarks/bench_gpu.py"
timeout $(( $(left) - 90 )) "${with_shim[@]}" "$PY" "$REPO/benchmarks/bench_gpu.py" --device cuda --out "$RESULTS" --pdb "$REPO/.gpu/3ks3.pdb" ||
  { echo "bench_gpu.py failed or was stopped"; status=1; }
fi

if (( ! SKIP_LAMMPS )); then
  stage "waiting for the LAMMPS build"
  wait "$build_pid" && echo "LAMMPS built" || { echo "LAMMPS build failed or was stopped: tail of lammps-build.log:"; tail -n 30 "$RESULTS/lammps-build.log"; status=1; }
  stage "tests/gpu/test_cuda_lammps.py"
  run_tests gpu-lammps-tests.xml $(( $(left) - 10 )) "$REPO/tests/gpu/test_cuda_lammps.py"
  xmls+=("$RESULTS/gpu-lammps-tests.xml")
fi

stage "report"
"$PY" "$REPO/benchmarks/gpu_report.py" "$RESULTS" "${xmls[@]}" || status=1
if [[ -n "${OUT:-}" ]]; then
  for f in gpu.md gpu.json gpu-tests.xml gpu-lammps-tests.xml "$(basename "$LOG")" lammps-build.log; do
    [[ -f "$RESULTS/$f" ]] && cp "$RESULTS/$f" "$OUT/"
  done
fi
stage "done, status $status"
exit $status
