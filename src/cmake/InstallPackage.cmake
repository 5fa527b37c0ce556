# Install rules and an exported CMake package: find_package(megaloc) then link megaloc::megaloc.
include(CMakePackageConfigHelpers)

get_property(_megaloc_libs GLOBAL PROPERTY MEGALOC_LIBRARIES)
install(TARGETS megaloc_lib ${_megaloc_libs}
  EXPORT megalocTargets
  ARCHIVE DESTINATION lib
  LIBRARY DESTINATION lib
  RUNTIME DESTINATION bin
  INCLUDES DESTINATION include)
install(DIRECTORY "${PROJECT_SOURCE_DIR}/src/megaloc" DESTINATION include
  FILES_MATCHING PATTERN "*.h" PATTERN "*_test.h" EXCLUDE)
install(EXPORT megalocTargets NAMESPACE megaloc:: DESTINATION lib/cmake/megaloc)
configure_package_config_file("${PROJECT_SOURCE_DIR}/src/cmake/megalocConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/megalocConfig.cmake" INSTALL_DESTINATION lib/cmake/megaloc)
write_basic_package_version_file("${PROJECT_BINARY_DIR}/megalocConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES "${PROJECT_BINARY_DIR}/megalocConfig.cmake" "${PROJECT_BINARY_DIR}/megalocConfigVersion.cmake"
  DESTINATION lib/cmake/megaloc)
