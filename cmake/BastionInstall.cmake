# Install and export rules, so an integrator's CMake can `find_package(Bastion)` and link
# `Bastion::bastion`. Only include/bastion/ is public; everything else is private.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(_bastion_export_targets bastion bastion_client bastion_gateway bastion_actors bastion_runtime bastion_schemas bastion_kernels
  bastion_model_bundle bastion_tokenizer)
if(TARGET bastion_kernels_hf)
  list(APPEND _bastion_export_targets bastion_kernels_hf)
endif()
if(BASTION_HAVE_CUDA)
  list(APPEND _bastion_export_targets bastion_kernels_cuda)
endif()
install(TARGETS ${_bastion_export_targets}
  EXPORT BastionTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS bastion-node RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/bastion
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")
install(FILES ${PROJECT_BINARY_DIR}/include/bastion/version.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/bastion)

install(EXPORT BastionTargets
  NAMESPACE Bastion::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Bastion)
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/BastionConfig.cmake.in
  ${PROJECT_BINARY_DIR}/BastionConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Bastion)
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/BastionConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/BastionConfig.cmake
  ${PROJECT_BINARY_DIR}/BastionConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Bastion)
