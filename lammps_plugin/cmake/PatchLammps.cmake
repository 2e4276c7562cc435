# Applies lammps_plugin/patches/*.patch to the LAMMPS source tree, idempotently, at
# configure time (included by the top-level CMakeLists.txt). Per patch (GNU patch, -p1):
#   reverses cleanly  -> already applied, nothing to do
#   applies cleanly   -> applied in place (the tree is modified; make recompiles those files)
#   neither           -> warning: this LAMMPS differs (it may already contain the fix)
# Editing a patch file re-runs the configure step.

function(orb_md_patch_lammps source_dir)
  file(GLOB _patches "${CMAKE_CURRENT_SOURCE_DIR}/lammps_plugin/patches/*.patch")
  if(NOT _patches)
    return()
  endif()
  find_program(ORB_MD_PATCH_EXECUTABLE patch)
  if(NOT ORB_MD_PATCH_EXECUTABLE)
    message(FATAL_ERROR "GNU patch is needed to patch LAMMPS (Debian/Ubuntu: apt-get install patch)")
  endif()
  list(SORT _patches)
  foreach(_patch IN LISTS _patches)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_patch}")
    get_filename_component(_name "${_patch}" NAME)
    # --force: never ask; with -R it also stops patch from "un-reversing" an unapplied patch
    set(_patch_cmd "${ORB_MD_PATCH_EXECUTABLE}" -p1 --force --silent --no-backup-if-mismatch -i "${_patch}")
    execute_process(COMMAND ${_patch_cmd} -R --dry-run WORKING_DIRECTORY "${source_dir}"
                    RESULT_VARIABLE _reverses OUTPUT_QUIET ERROR_QUIET)
    if(_reverses EQUAL 0)
      message(STATUS "LAMMPS patch ${_name}: already applied")
      continue()
    endif()
    execute_process(COMMAND ${_patch_cmd} --forward --dry-run WORKING_DIRECTORY "${source_dir}"
                    RESULT_VARIABLE _applies OUTPUT_VARIABLE _log ERROR_VARIABLE _log)
    if(NOT _applies EQUAL 0)
      message(WARNING "LAMMPS patch ${_name} does not apply to ${source_dir} (a different LAMMPS "
                      "version; see the patch header for what it fixes):\n${_log}")
      continue()
    endif()
    execute_process(COMMAND ${_patch_cmd} --forward WORKING_DIRECTORY "${source_dir}"
                    RESULT_VARIABLE _applied OUTPUT_VARIABLE _log ERROR_VARIABLE _log)
    if(NOT _applied EQUAL 0)
      message(FATAL_ERROR "applying LAMMPS patch ${_name} to ${source_dir} failed:\n${_log}")
    endif()
    message(STATUS "LAMMPS patch ${_name}: applied to ${source_dir}")
  endforeach()
endfunction()
