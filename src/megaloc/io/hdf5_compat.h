#pragma once

// The few HDF5 C API calls whose signatures differ between the HDF5 releases megaloc builds with
// (1.10 on Debian 12, 1.14 on Debian 13, 2.x on Debian unstable). Which form a library has is found at
// configure time (src/cmake/FindDependencies.cmake: feature checks, not version numbers) and passed as
// compile definitions of megaloc_io:
//   MEGALOC_HDF5_HAVE_OINFO2    H5Oget_info_by_name3 / H5Ovisit3 with H5O_info2_t (HDF5 >= 1.12)
// Private to the io module and its tests; not installed.

#include <hdf5.h>

namespace megaloc {
namespace hdf5 {

#ifdef MEGALOC_HDF5_HAVE_OINFO2
using ObjectInfo = H5O_info2_t;
#else
using ObjectInfo = H5O_info_t;
#endif

// Callback of VisitObjects: `name` is the path relative to the visited object ("." for itself).
using ObjectVisitor = herr_t (*)(hid_t object, const char* name, const ObjectInfo* info, void* data);

// Basic information (type, reference count) of the object at `name` relative to `loc`.
inline herr_t GetObjectInfoByName(hid_t loc, const char* name, ObjectInfo* info) {
#ifdef MEGALOC_HDF5_HAVE_OINFO2
  return H5Oget_info_by_name3(loc, name, info, H5O_INFO_BASIC, H5P_DEFAULT);
#else
  return H5Oget_info_by_name2(loc, name, info, H5O_INFO_BASIC, H5P_DEFAULT);
#endif
}

// Recursively visits every object reachable from `object` once, in increasing name order; `fields`
// selects what the ObjectInfo carries (H5O_INFO_BASIC, H5O_INFO_NUM_ATTRS, H5O_INFO_ALL).
inline herr_t VisitObjects(hid_t object, ObjectVisitor visitor, void* data,
                           unsigned fields = H5O_INFO_BASIC) {
#ifdef MEGALOC_HDF5_HAVE_OINFO2
  return H5Ovisit3(object, H5_INDEX_NAME, H5_ITER_INC, visitor, data, fields);
#else
  return H5Ovisit2(object, H5_INDEX_NAME, H5_ITER_INC, visitor, data, fields);
#endif
}

}  // namespace hdf5
}  // namespace megaloc
