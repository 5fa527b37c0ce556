# Helper functions in the spirit of COLMAP's cmake/CMakeHelper.cmake.

# megaloc_add_library(NAME name SRCS ... [INTERNAL] [PUBLIC_LINK_LIBS ...] [PRIVATE_LINK_LIBS ...])
# A static library of the project, installed and exported as megaloc::<name>; INTERNAL libraries
# (the command-line front ends) are neither installed nor exported.
function(megaloc_add_library)
  cmake_parse_arguments(ARG "INTERNAL" "NAME" "SRCS;PUBLIC_LINK_LIBS;PRIVATE_LINK_LIBS" ${ARGN})
  add_library(${ARG_NAME} STATIC ${ARG_SRCS})
  target_include_directories(${ARG_NAME} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/src>
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
    $<INSTALL_INTERFACE:include>)
  target_link_libraries(${ARG_NAME} PUBLIC ${ARG_PUBLIC_LINK_LIBS} PRIVATE ${ARG_PRIVATE_LINK_LIBS})
  if(NOT ARG_INTERNAL)
    set_property(GLOBAL APPEND PROPERTY MEGALOC_LIBRARIES ${ARG_NAME})
  endif()
endfunction()

# megaloc_add_executable(NAME name SRCS ... [LINK_LIBS ...]) -- installed to bin/.
function(megaloc_add_executable)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;LINK_LIBS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_LINK_LIBS})
  install(TARGETS ${ARG_NAME} RUNTIME DESTINATION bin)
endfunction()

# megaloc_add_test(NAME name SRCS ... [LINK_LIBS ...] [LABELS ...] [TEST_FILTER filter])
# One GoogleTest binary sharing tests/common/gtest_main.cc; every TEST is registered with CTest as
# <name>.<Suite>.<Test> and carries all the given labels. Tests run with MEGALOC_TEST_DATA_DIR=tests/data,
# MEGALOC_BINARY_DIR=<build dir> and OMP_NUM_THREADS=1.
#
# gtest_discover_tests writes PROPERTIES unescaped into the generated CTest file, so list values (several
# labels, several ENVIRONMENT entries) would be split; labels and environment are therefore set by a
# CTest include file that runs after discovery (TEST_LIST variable).
function(megaloc_add_test)
  cmake_parse_arguments(ARG "" "NAME;TEST_FILTER" "SRCS;LINK_LIBS;LABELS" ${ARGN})
  if(NOT TARGET ${ARG_NAME})
    add_executable(${ARG_NAME} ${ARG_SRCS})
    target_link_libraries(${ARG_NAME} PRIVATE megaloc_test_main ${ARG_LINK_LIBS})
  endif()
  set(_filter_args)
  set(_list_var "${ARG_NAME}_TESTS")
  if(ARG_TEST_FILTER)
    set(_filter_args TEST_FILTER "${ARG_TEST_FILTER}")
    string(MAKE_C_IDENTIFIER "${ARG_NAME}_${ARG_TEST_FILTER}_TESTS" _list_var)
  endif()
  gtest_discover_tests(${ARG_NAME}
    TEST_PREFIX "${ARG_NAME}."
    ${_filter_args}
    TEST_LIST ${_list_var}
    DISCOVERY_TIMEOUT 120
    DISCOVERY_MODE PRE_TEST)
  set(_props "${CMAKE_CURRENT_BINARY_DIR}/${_list_var}_properties.cmake")
  file(WRITE "${_props}" "\
set(_env \"MEGALOC_TEST_DATA_DIR=${PROJECT_SOURCE_DIR}/tests/data;MEGALOC_BINARY_DIR=${PROJECT_BINARY_DIR};OMP_NUM_THREADS=1\")
foreach(_t IN LISTS ${_list_var})
  set_tests_properties(\"\${_t}\" PROPERTIES LABELS \"${ARG_LABELS}\" ENVIRONMENT \"\${_env}\")
endforeach()
")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${_props}")
endfunction()
