# FindCAF: the C++ Actor Framework 0.17 as Debian ships it (libcaf-dev), which has no CMake
# config of its own.
#
# Components: core, io, openssl, test (header-only unit test framework).
# Provides imported targets CAF::core, CAF::io, CAF::openssl, CAF::test and sets CAF_FOUND,
# CAF_VERSION, CAF_INCLUDE_DIRS.

find_path(CAF_INCLUDE_DIR caf/config.hpp)

if(CAF_INCLUDE_DIR AND EXISTS "${CAF_INCLUDE_DIR}/caf/config.hpp")
  file(STRINGS "${CAF_INCLUDE_DIR}/caf/config.hpp" _caf_ver REGEX "^#define CAF_VERSION [0-9]+")
  string(REGEX REPLACE "^#define CAF_VERSION ([0-9]+).*" "\\1" _caf_num "${_caf_ver}")
  math(EXPR _caf_major "${_caf_num} / 10000")
  math(EXPR _caf_minor "(${_caf_num} / 100) % 100")
  math(EXPR _caf_patch "${_caf_num} % 100")
  set(CAF_VERSION "${_caf_major}.${_caf_minor}.${_caf_patch}")
endif()

if(NOT CAF_FIND_COMPONENTS)
  set(CAF_FIND_COMPONENTS core io)
endif()

set(_caf_required_vars CAF_INCLUDE_DIR)
foreach(comp IN LISTS CAF_FIND_COMPONENTS)
  if(comp STREQUAL "test")
    if(EXISTS "${CAF_INCLUDE_DIR}/caf/test/dsl.hpp")
      set(CAF_test_FOUND TRUE)
      if(NOT TARGET CAF::test)
        add_library(CAF::test INTERFACE IMPORTED)
        set_target_properties(CAF::test PROPERTIES INTERFACE_LINK_LIBRARIES CAF::core)
      endif()
    endif()
    continue()
  endif()
  find_library(CAF_${comp}_LIBRARY NAMES caf_${comp})
  if(CAF_${comp}_LIBRARY)
    set(CAF_${comp}_FOUND TRUE)
    list(APPEND _caf_required_vars CAF_${comp}_LIBRARY)
    if(NOT TARGET CAF::${comp})
      add_library(CAF::${comp} UNKNOWN IMPORTED)
      set_target_properties(CAF::${comp} PROPERTIES
        IMPORTED_LOCATION "${CAF_${comp}_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}")
      if(NOT comp STREQUAL "core")
        set_property(TARGET CAF::${comp} APPEND PROPERTY INTERFACE_LINK_LIBRARIES CAF::core)
      endif()
      if(comp STREQUAL "core")
        find_package(Threads REQUIRED)
        set_property(TARGET CAF::core APPEND PROPERTY INTERFACE_LINK_LIBRARIES Threads::Threads)
      endif()
    endif()
  endif()
endforeach()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CAF
  REQUIRED_VARS ${_caf_required_vars}
  VERSION_VAR CAF_VERSION
  HANDLE_COMPONENTS)
set(CAF_INCLUDE_DIRS "${CAF_INCLUDE_DIR}")
mark_as_advanced(CAF_INCLUDE_DIR)
