# All find_package calls of the project live here (house style: one place).

find_package(Threads REQUIRED)

# LibTorch: Debian's libtorch-dev, or a user's (CUDA) LibTorch through CMAKE_PREFIX_PATH / Torch_DIR.
find_package(Torch REQUIRED)
message(STATUS "Found Torch ${Torch_VERSION} (${TORCH_INSTALL_PREFIX})")
# The project is C++17; LibTorch 2.10 and later need C++20 in every file that includes its headers.
# Found by compiling ATen.h in C++17 (a feature check, not a version number): if that fails, the
# whole project is built as C++20.
include(CheckCXXSourceCompiles)
set(CMAKE_REQUIRED_INCLUDES ${TORCH_INCLUDE_DIRS})
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
check_cxx_source_compiles("#include <ATen/ATen.h>
int main() { return 0; }" MEGALOC_TORCH_BUILDS_AS_CXX17)
if(NOT MEGALOC_TORCH_BUILDS_AS_CXX17)
  set(CMAKE_CXX_STANDARD 20)
  check_cxx_source_compiles("#include <ATen/ATen.h>
int main() { return 0; }" MEGALOC_TORCH_BUILDS_AS_CXX20)
  if(NOT MEGALOC_TORCH_BUILDS_AS_CXX20)
    message(FATAL_ERROR "The LibTorch headers in ${TORCH_INCLUDE_DIRS} compile neither as C++17 nor as "
                        "C++20 with ${CMAKE_CXX_COMPILER} (see CMakeFiles/CMakeError.log)")
  endif()
  message(STATUS "LibTorch needs C++20: building megaloc as C++20")
endif()
unset(CMAKE_TRY_COMPILE_TARGET_TYPE)
unset(CMAKE_REQUIRED_INCLUDES)

find_package(HDF5 REQUIRED COMPONENTS C CXX)
# Eigen 3.3 or newer; Eigen 5 (Debian unstable) keeps the Eigen3 package name, but its version file
# refuses requests for "3.3" (other major version), so the minimum is checked here instead.
find_package(Eigen3 REQUIRED NO_MODULE)
if(Eigen3_VERSION VERSION_LESS 3.3)
  message(FATAL_ERROR "megaloc needs Eigen 3.3 or newer (found ${Eigen3_VERSION})")
endif()
message(STATUS "Found Eigen ${Eigen3_VERSION}")
find_package(Boost REQUIRED COMPONENTS program_options)
find_package(OpenCV REQUIRED COMPONENTS core imgcodecs imgproc)
find_package(SQLite3 REQUIRED)
# libjpeg (the libjpeg-turbo OpenCV links; model/preprocessing decodes JPEGs with it directly) and the
# optional libwebpdemux (first frame of animated WebP, as PIL).
find_package(JPEG REQUIRED)
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(MEGALOC_WEBPDEMUX QUIET libwebpdemux)
endif()
if(MEGALOC_WEBPDEMUX_FOUND)
  message(STATUS "Enabling animated WebP (first frame) with libwebpdemux ${MEGALOC_WEBPDEMUX_VERSION}")
else()
  message(STATUS "Disabling animated WebP (libwebpdemux not found: package libwebp-dev)")
endif()
find_package(nlohmann_json 3.9 REQUIRED)  # ordered_json (vpr_eval)
find_package(BLAS REQUIRED)

# HDF5 API forms (feature checks; see src/megaloc/io/hdf5_compat.h). MEGALOC_HDF5_DEFINITIONS goes to
# megaloc_io and to the code that uses hdf5_compat.h.
include(CheckSymbolExists)
include(CheckStructHasMember)
set(CMAKE_REQUIRED_INCLUDES ${HDF5_INCLUDE_DIRS})
set(CMAKE_REQUIRED_LIBRARIES ${HDF5_C_LIBRARIES})
set(CMAKE_REQUIRED_DEFINITIONS ${HDF5_DEFINITIONS})
check_symbol_exists(H5Ovisit3 "hdf5.h" MEGALOC_HDF5_HAVE_OINFO2)
# HDF5 >= 1.13: a file driver class declares its struct version and a driver value.
check_struct_has_member("H5FD_class_t" version "hdf5.h" MEGALOC_HDF5_HAVE_FD_CLASS_VERSION LANGUAGE C)
unset(CMAKE_REQUIRED_INCLUDES)
unset(CMAKE_REQUIRED_LIBRARIES)
unset(CMAKE_REQUIRED_DEFINITIONS)
set(MEGALOC_HDF5_DEFINITIONS)
foreach(_feature MEGALOC_HDF5_HAVE_OINFO2 MEGALOC_HDF5_HAVE_FD_CLASS_VERSION)
  if(${_feature})
    list(APPEND MEGALOC_HDF5_DEFINITIONS ${_feature})
  endif()
endforeach()
message(STATUS "Found HDF5 ${HDF5_VERSION} (API features: ${MEGALOC_HDF5_DEFINITIONS})")
find_package(OpenMP)

if(MEGALOC_TESTS_ENABLED)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()

set(MEGALOC_FAISS_FOUND OFF)
if(MEGALOC_FAISS_ENABLED)
  find_library(FAISS_LIBRARY NAMES faiss)
  find_path(FAISS_INCLUDE_DIR NAMES faiss/IndexFlat.h)
  if(FAISS_LIBRARY AND FAISS_INCLUDE_DIR)
    message(STATUS "Enabling FAISS (${FAISS_LIBRARY})")
    set(MEGALOC_FAISS_FOUND ON)
  else()
    message(STATUS "Disabling FAISS (libfaiss not found)")
  endif()
endif()

# oneDNN's sgemm for LibTorch's fp32 matmuls (tools/blas_shim.cc): Debian's LibTorch calls the system
# libblas.so.3 and links oneDNN as a shared library; routing sgemm_ to dnnl_sgemm keeps every GEMM on
# LibTorch's OpenMP pool (docs/performance.md). Other LibTorch builds (MKL, bundled oneDNN) skip it.
set(MEGALOC_DNNL_SGEMM OFF)
if(MEGALOC_DNNL_SGEMM_ENABLED)
  find_library(DNNL_LIBRARY NAMES libdnnl.so.2 dnnl)
  if(DNNL_LIBRARY)
    message(STATUS "Enabling the oneDNN sgemm shim (${DNNL_LIBRARY})")
    set(MEGALOC_DNNL_SGEMM ON)
  else()
    message(STATUS "Disabling the oneDNN sgemm shim (libdnnl not found)")
  endif()
endif()

# The COLMAP binary is only needed at run time (plugin, lamar_eval localize, integration tests).
find_program(COLMAP_EXECUTABLE colmap)
if(COLMAP_EXECUTABLE)
  message(STATUS "Found COLMAP binary: ${COLMAP_EXECUTABLE}")
else()
  message(STATUS "COLMAP binary not found: COLMAP integration tests will be skipped")
endif()

# LibTorch's fused attention (at::scaled_dot_product_attention, LibTorch >= 2.0; Debian 12's 1.13 lacks
# it): MEGALOC_HAVE_SDPA for megaloc_model (src/megaloc/model/megaloc_net.cc). Checked by compiling a
# call against this LibTorch's headers, never by version number.
include(CheckCXXSourceCompiles)
set(CMAKE_REQUIRED_INCLUDES ${TORCH_INCLUDE_DIRS})
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)  # the declaration is what matters: compile only
check_cxx_source_compiles("
#include <ATen/ATen.h>
at::Tensor Attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return at::scaled_dot_product_attention(q, k, v);
}
int main() { return 0; }" MEGALOC_HAVE_SDPA)
# LibTorch >= 2.4: autocast set per device type (src/megaloc/model/autocast.h).
check_cxx_source_compiles("
#include <ATen/autocast_mode.h>
void Enable() {
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCPU, true);
}
int main() { return 0; }" MEGALOC_TORCH_HAVE_DEVICE_AUTOCAST)
unset(CMAKE_TRY_COMPILE_TARGET_TYPE)
unset(CMAKE_REQUIRED_INCLUDES)
message(STATUS "LibTorch fused attention (scaled_dot_product_attention): ${MEGALOC_HAVE_SDPA}")
set(MEGALOC_TORCH_DEFINITIONS)
foreach(_feature MEGALOC_HAVE_SDPA MEGALOC_TORCH_HAVE_DEVICE_AUTOCAST)
  if(${_feature})
    list(APPEND MEGALOC_TORCH_DEFINITIONS ${_feature})
  endif()
endforeach()
