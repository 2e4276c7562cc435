# Included by the top-level CMakeLists.txt when ORB_MD_WITH_KOKKOS_CUDA=ON.
# Adds PKG_KOKKOS with the CUDA backend to the LAMMPS build. The Debian LAMMPS
# source has no lib/kokkos, so a CUDA-enabled Kokkos (>= 5.1) comes from either
#   Kokkos_ROOT=<install of Kokkos configured with Kokkos_ENABLE_CUDA=ON>, or
#   ORB_MD_KOKKOS_SOURCE_DIR=<Kokkos source tree> + ORB_MD_KOKKOS_ARCH=<e.g. HOPPER90>,
#     which is built and installed into the build tree first.
# LAMMPS is then compiled with that Kokkos's nvcc_wrapper (needs nvcc on PATH).
set(ORB_MD_KOKKOS_SOURCE_DIR "" CACHE PATH "Kokkos source tree to build with CUDA (alternative to Kokkos_ROOT)")
set(ORB_MD_KOKKOS_ARCH "" CACHE STRING "Kokkos GPU arch for ORB_MD_KOKKOS_SOURCE_DIR: HOPPER90 (H100/H200), AMPERE80 (A100), ...")

if(NOT Kokkos_ROOT AND DEFINED ENV{Kokkos_ROOT})
  set(Kokkos_ROOT "$ENV{Kokkos_ROOT}")
endif()

if(ORB_MD_KOKKOS_SOURCE_DIR)
  if(NOT EXISTS "${ORB_MD_KOKKOS_SOURCE_DIR}/CMakeLists.txt" OR NOT EXISTS "${ORB_MD_KOKKOS_SOURCE_DIR}/bin/nvcc_wrapper")
    message(FATAL_ERROR "ORB_MD_KOKKOS_SOURCE_DIR='${ORB_MD_KOKKOS_SOURCE_DIR}' is not a Kokkos source tree")
  endif()
  if(NOT ORB_MD_KOKKOS_ARCH)
    message(FATAL_ERROR "Set ORB_MD_KOKKOS_ARCH (e.g. HOPPER90 for H100/H200, AMPERE80 for A100)")
  endif()
  set(Kokkos_ROOT "${CMAKE_BINARY_DIR}/kokkos-install")
  ExternalProject_Add(kokkos
    SOURCE_DIR "${ORB_MD_KOKKOS_SOURCE_DIR}"
    BINARY_DIR "${CMAKE_BINARY_DIR}/kokkos-build"
    CMAKE_ARGS
      -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_INSTALL_PREFIX=${Kokkos_ROOT}
      -DCMAKE_INSTALL_LIBDIR=lib
      -DCMAKE_CXX_COMPILER=${ORB_MD_KOKKOS_SOURCE_DIR}/bin/nvcc_wrapper
      -DCMAKE_CXX_STANDARD=20
      -DCMAKE_POSITION_INDEPENDENT_CODE=ON
      -DBUILD_SHARED_LIBS=OFF
      -DKokkos_ENABLE_SERIAL=ON
      -DKokkos_ENABLE_CUDA=ON
      -DKokkos_ARCH_${ORB_MD_KOKKOS_ARCH}=ON
      -DKokkos_ENABLE_IMPL_VIEW_LEGACY=ON
      -DKokkos_ENABLE_DEPRECATION_WARNINGS=OFF
    USES_TERMINAL_BUILD ON)
  list(APPEND _lammps_depends kokkos)
elseif(NOT Kokkos_ROOT)
  message(FATAL_ERROR
    "ORB_MD_WITH_KOKKOS_CUDA=ON needs Kokkos_ROOT (a CUDA-enabled Kokkos >= 5.1 install) "
    "or ORB_MD_KOKKOS_SOURCE_DIR + ORB_MD_KOKKOS_ARCH (see lammps_plugin/README.md)")
elseif(NOT EXISTS "${Kokkos_ROOT}/bin/nvcc_wrapper")
  message(FATAL_ERROR "${Kokkos_ROOT}/bin/nvcc_wrapper not found: Kokkos_ROOT must be a Kokkos install built with CUDA")
endif()

list(APPEND _lammps_args
  -DPKG_KOKKOS=ON
  -DEXTERNAL_KOKKOS=ON
  -DKokkos_ROOT=${Kokkos_ROOT}
  -DKokkos_ENABLE_CUDA=ON
  -DCMAKE_CXX_COMPILER=${Kokkos_ROOT}/bin/nvcc_wrapper
  -DKOKKOS_PREC=double
  -DKOKKOS_LAYOUT=legacy)
