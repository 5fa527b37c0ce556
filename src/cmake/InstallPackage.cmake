# Install rules and an exported CMake package: find_package(megaloc) then link megaloc::megaloc.
include(CMakePackageConfigHelpers)

get_property(_megaloc_libs GLOBAL PROPERTY MEGALOC_LIBRARIES)
install(TARGETS megaloc_lib ${_megaloc_libs}
  EXPORT megalocTargets
  ARCHIVE DESTINATION lib
  LIBRARY DESTINATION lib
  RUNTIME DESTINATION bin
  INCLUDES DESTINATION include)
# Public headers only: they include no LibTorch, HDF5 or Boost header (tests/install checks it).
# Internal headers (LibTorch types, HDF5 compatibility, the front ends' option helpers) stay in the
# source tree.
install(DIRECTORY "${PROJECT_SOURCE_DIR}/src/megaloc" DESTINATION include
  FILES_MATCHING PATTERN "*.h"
  PATTERN "*_test.h" EXCLUDE
  PATTERN "*_internal.h" EXCLUDE
  PATTERN "megaloc_net.h" EXCLUDE
  PATTERN "weights.h" EXCLUDE
  PATTERN "autocast.h" EXCLUDE
  PATTERN "losses.h" EXCLUDE
  PATTERN "hdf5_compat.h" EXCLUDE
  PATTERN "cli" EXCLUDE
  PATTERN "CMakeLists.txt" EXCLUDE)
install(EXPORT megalocTargets NAMESPACE megaloc:: DESTINATION lib/cmake/megaloc)
configure_package_config_file("${PROJECT_SOURCE_DIR}/src/cmake/megalocConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/megalocConfig.cmake" INSTALL_DESTINATION lib/cmake/megaloc)
write_basic_package_version_file("${PROJECT_BINARY_DIR}/megalocConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES "${PROJECT_BINARY_DIR}/megalocConfig.cmake" "${PROJECT_BINARY_DIR}/megalocConfigVersion.cmake"
  DESTINATION lib/cmake/megaloc)
