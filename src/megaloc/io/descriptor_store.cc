#include "megaloc/io/descriptor_store.h"
#include "megaloc/io/hdf5_compat.h"
#include "megaloc/io/journal_vfd.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {
namespace {

constexpr const char* kDescriptorDataset = "global_descriptor";
constexpr const char* kImageSizeDataset = "image_size";

// Silences HDF5's automatic error printing once per process; we report our own messages.
void SilenceHdf5Errors() {
  static const bool silenced = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)silenced;
}

uint64_t FileSizeOrZero(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// RAII for HDF5 identifiers.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() {
    if (id_ >= 0) closer_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_;
  Closer closer_;
};

hid_t MakeHalfType() {
  // h5py's float16: IEEE, little-endian, sign bit 15, exponent bits 10..14, mantissa 0..9, bias 15.
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  if (t < 0 || H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 ||
      H5Tset_ebias(t, 15) < 0 || H5Tset_precision(t, 16) < 0) {
    if (t >= 0) H5Tclose(t);
    MEGALOC_THROW(Error, "HDF5: cannot build the float16 type");
  }
  return t;
}

std::vector<std::string> SplitName(const std::string& name) { return Split(name, '/'); }

std::string FormatTypeError(const std::string& path, const std::string& name,
                            const std::string& what) {
  std::ostringstream out;
  out << path << ": image '" << name << "': " << what;
  return out.str();
}

// Per group (path without leading '/'): which datasets it holds.
struct Inventory {
  std::map<std::string, unsigned> groups;  // bit 0: global_descriptor, 1: image_size, 2: other
};

herr_t InventoryCallback(hid_t, const char* name, const hdf5::ObjectInfo* info, void* data) {
  if (info->type != H5O_TYPE_DATASET) return 0;
  const std::string path(name);
  const size_t slash = path.rfind('/');
  const std::string group = slash == std::string::npos ? std::string() : path.substr(0, slash);
  const std::string leaf = slash == std::string::npos ? path : path.substr(slash + 1);
  unsigned bit = 4;
  if (leaf == kDescriptorDataset) bit = 1;
  if (leaf == kImageSizeDataset) bit = 2;
  static_cast<Inventory*>(data)->groups[group] |= bit;
  return 0;
}

// True if `loc/path` exists, checking every component (H5Lexists fails on missing parents).
bool LinkExists(hid_t loc, const std::string& path) {
  std::string prefix;
  for (const std::string& part : SplitName(path)) {
    if (part.empty()) return false;
    prefix += prefix.empty() ? part : "/" + part;
    if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return !prefix.empty();
}

H5O_type_t ObjectType(hid_t loc, const std::string& path) {
  hdf5::ObjectInfo info;
  if (hdf5::GetObjectInfoByName(loc, path.c_str(), &info) < 0) {
    return H5O_TYPE_UNKNOWN;
  }
  return info.type;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// float16

std::string DescriptorDtypeName(DescriptorDtype dtype) {
  return dtype == DescriptorDtype::kFloat16 ? "float16" : "float32";
}

DescriptorDtype ParseDescriptorDtype(const std::string& text) {
  if (text == "float16") return DescriptorDtype::kFloat16;
  if (text == "float32") return DescriptorDtype::kFloat32;
  MEGALOC_THROW(InvalidArgument, "unknown descriptor dtype '" << text
                                     << "' (expected float16 or float32)");
}

uint16_t FloatToHalf(float value) {
  uint32_t x;
  std::memcpy(&x, &value, sizeof(x));
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN
    if (abs == 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u);
    return static_cast<uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));  // quiet NaN
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: rounds to inf
  const uint32_t exponent = abs >> 23;
  if (exponent >= 113) {  // normal half (>= 2^-14)
    uint32_t h = ((exponent - 112) << 10) | ((abs & 0x7fffffu) >> 13);
    const uint32_t rest = abs & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // carry may reach the exponent
    return static_cast<uint16_t>(sign | h);
  }
  if (exponent < 102) return static_cast<uint16_t>(sign);  // < 2^-25 (or == with tie to 0 below)
  // Subnormal half: round(value * 2^24) with ties to even.
  const uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126 - exponent;  // 14 .. 24
  uint32_t h = mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rest > half || (rest == half && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float HalfToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  uint32_t x;
  if (exponent == 0x1f) {
    x = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    x = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    x = sign;
  } else {  // subnormal: normalise
    uint32_t e = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --e;
    }
    x = sign | (e << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float value;
  std::memcpy(&value, &x, sizeof(value));
  return value;
}

// ---------------------------------------------------------------------------------------------
// DescriptorFile

std::string DescriptorFile::CheckName(const std::string& name) {
  if (name.empty()) return "empty image name";
  if (HasWhitespace(name)) return "image name contains whitespace (unsupported by hloc and COLMAP)";
  for (const std::string& part : SplitName(name)) {
    if (part.empty()) return "image name has an empty path component (leading, trailing or double '/')";
    if (part == "." || part == "..") return "image name has a '.' or '..' component";
  }
  return "";
}

DescriptorFile::DescriptorFile(std::string path, Mode mode) : path_(std::move(path)), mode_(mode) {}

std::unique_ptr<DescriptorFile> DescriptorFile::Open(const std::string& path, Mode mode) {
  SilenceHdf5Errors();
  if (path.empty()) MEGALOC_THROW(InvalidArgument, "descriptor file path is empty");
  if (DirectoryExists(path)) MEGALOC_THROW(IoError, path << ": is a directory, not an HDF5 file");
  std::unique_ptr<DescriptorFile> file(new DescriptorFile(path, mode));
  // A zero-byte file (e.g. left by another tool killed at creation) holds nothing: appending to it
  // creates a fresh file.
  const bool exists = FileExists(path) && !(mode == Mode::kAppend && FileSizeOrZero(path) == 0);
  if (mode == Mode::kRead && !exists) {
    MEGALOC_THROW(IoError, path << ": no such descriptor file");
  }
  file->half_type_ = MakeHalfType();
  file->OpenHandle(mode == Mode::kCreate || (mode == Mode::kAppend && !exists));
  if (mode == Mode::kAppend && exists) file->RepairIncompleteGroups();
  return file;
}

void DescriptorFile::OpenHandle(bool create) {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // Through the journaling driver: every flush of a writer is atomic, and "open for writing"
  // superblock flags left by killed writers do not block opening (see journal_vfd.h).
  internal::SetJournalDriver(fapl.get());
  if (create) {
    // The file appears atomically: an empty HDF5 file is made under a temporary name and renamed
    // over `path_`, so a kill never leaves an empty or half-written file (nor, with kCreate, loses
    // the old content before the new file exists). Default (earliest) format bounds: superblock v0
    // has no "file open for writing" flag.
    if (FileExists(path_)) {  // never replace a file another process is writing
      const int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
      const bool locked = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
      if (fd >= 0) close(fd);
      if (locked) MEGALOC_THROW(IoError, path_ << ": cannot replace the file: it is being written by another process");
    }
    const std::string temp = path_ + ".creating";
    const hid_t temp_id = H5Fcreate(temp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
    if (temp_id < 0) {
      MEGALOC_THROW(IoError, path_ << ": cannot create the HDF5 file (directory missing or not writable?)");
    }
    const bool closed = H5Fclose(temp_id) >= 0;
    std::remove(internal::JournalPath(path_).c_str());  // a stale journal of a replaced file
    if (!closed || std::rename(temp.c_str(), path_.c_str()) != 0) {
      std::remove(temp.c_str());
      MEGALOC_THROW(IoError, path_ << ": cannot create the HDF5 file (not writable?)");
    }
  }
  // Finish a commit interrupted by a kill (idempotent; incomplete journals are left to writers).
  internal::RecoverJournal(path_, /*discard_incomplete=*/false);
  const htri_t is_hdf5 = H5Fis_hdf5(path_.c_str());
  if (is_hdf5 <= 0) {
    if (ReadFileToString(path_).empty()) {
      MEGALOC_THROW(FormatError, path_ << ": empty file, not an HDF5 descriptor file");
    }
    MEGALOC_THROW(FormatError, path_ << ": not an HDF5 file (no HDF5 signature)");
  }
  file_id_ = H5Fopen(path_.c_str(), mode_ == Mode::kRead ? H5F_ACC_RDONLY : H5F_ACC_RDWR,
                     fapl.get());

  if (file_id_ < 0) {
    if (mode_ != Mode::kRead && access(path_.c_str(), W_OK) != 0) {
      MEGALOC_THROW(IoError, path_ << ": cannot open the HDF5 file for writing (permission denied)");
    }
    MEGALOC_THROW(FormatError,
                  path_ << ": cannot open the HDF5 file (truncated or corrupt HDF5 file, or "
                           "being written by another process, or already open for "
                        << (mode_ == Mode::kRead ? "writing" : "reading") << " in this one)");
  }
}

void DescriptorFile::CloseHandle() noexcept {
  if (file_id_ >= 0) {
    if (mode_ != Mode::kRead) H5Fflush(file_id_, H5F_SCOPE_GLOBAL);
    H5Fclose(file_id_);
    file_id_ = -1;
  }
}

DescriptorFile::~DescriptorFile() {
  CloseHandle();
  if (half_type_ >= 0) H5Tclose(half_type_);
}

namespace {

Inventory TakeInventory(hid_t file, const std::string& path) {
  Inventory inventory;
  if (hdf5::VisitObjects(file, InventoryCallback, &inventory) < 0) {
    MEGALOC_THROW(FormatError, path << ": cannot list the HDF5 file (corrupt file?)");
  }
  return inventory;
}

}  // namespace

std::vector<std::string> DescriptorFile::ListNames() const {
  std::vector<std::string> names;
  for (const auto& [group, bits] : TakeInventory(file_id_, path_).groups) names.push_back(group);
  return names;  // std::map: sorted, unique
}

std::vector<std::string> DescriptorFile::ListDescriptorNames() const {
  std::vector<std::string> names;
  for (const auto& [group, bits] : TakeInventory(file_id_, path_).groups) {
    if (bits & 1u) names.push_back(group);
  }
  return names;
}

bool DescriptorFile::Has(const std::string& name) const {
  if (!CheckName(name).empty()) return false;
  const std::string dataset = name + "/" + kDescriptorDataset;
  return LinkExists(file_id_, dataset) && ObjectType(file_id_, dataset) == H5O_TYPE_DATASET;
}

namespace {

struct DatasetInfo {
  bool is_half = false;   // h5py float16
  bool is_float = false;  // any float class
  size_t size = 0;        // element size in bytes
  hsize_t length = 0;
};

}  // namespace

static DatasetInfo InspectDescriptor(hid_t file, const std::string& path, const std::string& name,
                                     hid_t* dataset_out) {
  const std::string dataset_path = name + "/" + kDescriptorDataset;
  // Fast path: open directly (the error stack is silenced); diagnose only on failure.
  const hid_t dataset = DescriptorFile::CheckName(name).empty()
                            ? H5Dopen2(file, dataset_path.c_str(), H5P_DEFAULT)
                            : H5I_INVALID_HID;
  if (dataset < 0) {
    if (!DescriptorFile::CheckName(name).empty() || !LinkExists(file, name)) {
      MEGALOC_THROW(FormatError, FormatTypeError(path, name, "no such image in the file"));
    }
    if (!LinkExists(file, dataset_path) || ObjectType(file, dataset_path) != H5O_TYPE_DATASET) {
      MEGALOC_THROW(FormatError, FormatTypeError(path, name, "group has no 'global_descriptor' dataset"));
    }
    MEGALOC_THROW(FormatError, FormatTypeError(path, name, "cannot open 'global_descriptor' (corrupt file?)"));
  }
  DatasetInfo info;
  Handle type(H5Dget_type(dataset), H5Tclose);
  Handle space(H5Dget_space(dataset), H5Sclose);
  const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  hsize_t dims[H5S_MAX_RANK];
  if (rank >= 0) H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  std::string problem;
  if (!type.valid() || H5Tget_class(type.get()) != H5T_FLOAT) {
    problem = "'global_descriptor' is not a floating-point dataset";
  } else if (rank < 1) {
    problem = "'global_descriptor' is not an array";
  } else {
    hsize_t length = 1;
    for (int i = 0; i < rank; ++i) length *= dims[i];
    // hloc writes (D,); accept (1, D) too (squeezed by hloc's readers).
    if (rank > 2 || (rank == 2 && dims[0] != 1) || length == 0) {
      problem = "'global_descriptor' must have shape (D,)";
    }
    info.length = length;
    info.size = H5Tget_size(type.get());
    info.is_float = true;
    if (info.size == 2) {
      info.is_half = true;
      size_t spos, epos, esize, mpos, msize;
      H5Tget_fields(type.get(), &spos, &epos, &esize, &mpos, &msize);
      if (spos != 15 || epos != 10 || esize != 5 || mpos != 0 || msize != 10 ||
          H5Tget_ebias(type.get()) != 15) {
        problem = "'global_descriptor' is a 2-byte float that is not IEEE float16";
      }
    } else if (info.size != 4 && info.size != 8) {
      problem = "'global_descriptor' has an unsupported float size";
    }
  }
  if (!problem.empty()) {
    H5Dclose(dataset);
    MEGALOC_THROW(FormatError, FormatTypeError(path, name, problem));
  }
  *dataset_out = dataset;
  return info;
}

int DescriptorFile::Dim(const std::string& name) const {
  hid_t dataset;
  const DatasetInfo info = InspectDescriptor(file_id_, path_, name, &dataset);
  H5Dclose(dataset);
  return static_cast<int>(info.length);
}

DescriptorDtype DescriptorFile::Dtype(const std::string& name) const {
  hid_t dataset;
  const DatasetInfo info = InspectDescriptor(file_id_, path_, name, &dataset);
  H5Dclose(dataset);
  return info.size == 2 ? DescriptorDtype::kFloat16 : DescriptorDtype::kFloat32;
}

namespace {

// Reads one descriptor either as float (out_float) or as half bits (out_half); `expected_dim` < 0
// accepts any length and returns it.
int ReadOne(hid_t file, hid_t half_type, const std::string& path, const std::string& name,
            int expected_dim, float* out_float, uint16_t* out_half,
            std::vector<uint16_t>* half_scratch, std::vector<float>* float_scratch) {
  hid_t dataset_id;
  const DatasetInfo info = InspectDescriptor(file, path, name, &dataset_id);
  Handle dataset(dataset_id, H5Dclose);
  const int dim = static_cast<int>(info.length);
  if (expected_dim >= 0 && dim != expected_dim) {
    std::ostringstream what;
    what << "descriptor dimension " << dim << " differs from " << expected_dim
         << " of the other images";
    MEGALOC_THROW(FormatError, FormatTypeError(path, name, what.str()));
  }
  herr_t status;
  if (info.size == 2) {
    uint16_t* target = out_half;
    if (target == nullptr) {
      half_scratch->resize(dim);
      target = half_scratch->data();
    }
    status = H5Dread(dataset.get(), half_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, target);
    if (status >= 0 && out_float != nullptr) {
      for (int i = 0; i < dim; ++i) out_float[i] = HalfToFloat(target[i]);
    }
  } else {
    float* target = out_float;
    if (target == nullptr) {
      float_scratch->resize(dim);
      target = float_scratch->data();
    }
    status = H5Dread(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, target);
    if (status >= 0 && out_half != nullptr) {
      for (int i = 0; i < dim; ++i) out_half[i] = FloatToHalf(target[i]);
    }
  }
  if (status < 0) {
    MEGALOC_THROW(FormatError, FormatTypeError(path, name, "cannot read 'global_descriptor' (truncated or corrupt file?)"));
  }
  return dim;
}

}  // namespace

Eigen::VectorXf DescriptorFile::Read(const std::string& name) const {
  const int dim = Dim(name);
  Eigen::VectorXf out(dim);
  std::vector<uint16_t> half_scratch;
  std::vector<float> float_scratch;
  ReadOne(file_id_, half_type_, path_, name, dim, out.data(), nullptr, &half_scratch,
          &float_scratch);
  return out;
}

void DescriptorFile::ReadBlock(const std::vector<std::string>& names, size_t begin, size_t end,
                               DescriptorBlock* out) const {
  MEGALOC_CHECK(begin <= end && end <= names.size());
  if (begin == end) {
    out->resize(0, out->cols());
    return;
  }
  const int dim = Dim(names[begin]);
  out->resize(static_cast<Eigen::Index>(end - begin), dim);
  std::vector<uint16_t> half_scratch;
  std::vector<float> float_scratch;
  for (size_t i = begin; i < end; ++i) {
    ReadOne(file_id_, half_type_, path_, names[i], dim, out->row(i - begin).data(), nullptr,
            &half_scratch, &float_scratch);
  }
}

void DescriptorFile::ReadBlockHalf(const std::vector<std::string>& names, size_t begin,
                                   size_t end, std::vector<uint16_t>* out, int* dim) const {
  MEGALOC_CHECK(begin <= end && end <= names.size());
  out->clear();
  *dim = 0;
  if (begin == end) return;
  *dim = Dim(names[begin]);
  out->resize((end - begin) * static_cast<size_t>(*dim));
  std::vector<uint16_t> half_scratch;
  std::vector<float> float_scratch;
  for (size_t i = begin; i < end; ++i) {
    ReadOne(file_id_, half_type_, path_, names[i], *dim, nullptr,
            out->data() + (i - begin) * static_cast<size_t>(*dim), &half_scratch, &float_scratch);
  }
}

std::pair<int64_t, int64_t> DescriptorFile::ImageSize(const std::string& name) const {
  const std::string dataset_path = name + "/" + kImageSizeDataset;
  if (!CheckName(name).empty() || !LinkExists(file_id_, dataset_path) ||
      ObjectType(file_id_, dataset_path) != H5O_TYPE_DATASET) {
    MEGALOC_THROW(FormatError, FormatTypeError(path_, name, "group has no 'image_size' dataset"));
  }
  Handle dataset(H5Dopen2(file_id_, dataset_path.c_str(), H5P_DEFAULT), H5Dclose);
  Handle space(dataset.valid() ? H5Dget_space(dataset.get()) : -1, H5Sclose);
  Handle type(dataset.valid() ? H5Dget_type(dataset.get()) : -1, H5Tclose);
  if (!space.valid() || !type.valid() || H5Sget_simple_extent_npoints(space.get()) != 2 ||
      (H5Tget_class(type.get()) != H5T_INTEGER && H5Tget_class(type.get()) != H5T_FLOAT)) {
    MEGALOC_THROW(FormatError, FormatTypeError(path_, name, "'image_size' is not 2 numbers"));
  }
  int64_t size[2];
  if (H5Dread(dataset.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, size) < 0) {
    MEGALOC_THROW(FormatError, FormatTypeError(path_, name, "cannot read 'image_size'"));
  }
  return {size[0], size[1]};
}

void DescriptorFile::Write(const std::string& name, const float* descriptor, int dim, int width,
                           int height, DescriptorDtype dtype) {
  if (!IsWritable()) MEGALOC_THROW(InvalidArgument, path_ << ": opened read-only, cannot write '" << name << "'");
  const std::string problem = CheckName(name);
  if (!problem.empty()) MEGALOC_THROW(InvalidArgument, path_ << ": cannot write '" << name << "': " << problem);
  MEGALOC_CHECK_GT(dim, 0);
  if (LinkExists(file_id_, name)) Delete(name);

  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  bool ok = true;
  {
    Handle group(H5Gcreate2(file_id_, name.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    if (!group.valid()) {
      MEGALOC_THROW(IoError, path_ << ": cannot create group '" << name
                                   << "' (a parent is not a group, or the disk is full?)");
    }
    // global_descriptor: contiguous, no filters, maxshape = shape (H5Screate_simple with NULL max).
    const hsize_t length = static_cast<hsize_t>(dim);
    Handle space(H5Screate_simple(1, &length, nullptr), H5Sclose);
    if (dtype == DescriptorDtype::kFloat16) {
      std::vector<uint16_t> bits(dim);
      for (int i = 0; i < dim; ++i) bits[i] = FloatToHalf(descriptor[i]);
      Handle dataset(H5Dcreate2(group.get(), kDescriptorDataset, half_type_, space.get(),
                                H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
      ok = dataset.valid() && H5Dwrite(dataset.get(), half_type_, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                       bits.data()) >= 0;
    } else {
      Handle dataset(H5Dcreate2(group.get(), kDescriptorDataset, H5T_IEEE_F32LE, space.get(),
                                H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
      ok = dataset.valid() && H5Dwrite(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
                                       H5P_DEFAULT, descriptor) >= 0;
    }
    if (ok) {
      const hsize_t two = 2;
      const int64_t size[2] = {width, height};
      Handle size_space(H5Screate_simple(1, &two, nullptr), H5Sclose);
      Handle dataset(H5Dcreate2(group.get(), kImageSizeDataset, H5T_STD_I64LE, size_space.get(),
                                H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
      ok = dataset.valid() && H5Dwrite(dataset.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL,
                                       H5P_DEFAULT, size) >= 0;
    }
  }
  if (!ok) {
    H5Ldelete(file_id_, name.c_str(), H5P_DEFAULT);  // as hloc: remove the partial group
    MEGALOC_THROW(IoError, path_ << ": cannot write the descriptor of '" << name
                                 << "' (disk full or file not writable?)");
  }
}

void DescriptorFile::Delete(const std::string& name) {
  if (!IsWritable()) MEGALOC_THROW(InvalidArgument, path_ << ": opened read-only, cannot delete '" << name << "'");
  if (!CheckName(name).empty() || !LinkExists(file_id_, name)) return;
  if (H5Ldelete(file_id_, name.c_str(), H5P_DEFAULT) < 0) {
    MEGALOC_THROW(IoError, path_ << ": cannot delete '" << name << "'");
  }
}

void DescriptorFile::Flush() {
  if (!IsWritable()) return;
  if (H5Fflush(file_id_, H5F_SCOPE_GLOBAL) < 0) {
    MEGALOC_THROW(IoError, path_ << ": cannot flush the HDF5 file (disk full?)");
  }
}

std::vector<std::string> DescriptorFile::RepairIncompleteGroups() {
  std::vector<std::string> removed;
  if (!IsWritable()) return removed;
  for (const auto& [group, bits] : TakeInventory(file_id_, path_).groups) {
    if (((bits & 1u) != 0) != ((bits & 2u) != 0)) removed.push_back(group);
  }
  for (const std::string& group : removed) {
    // Only the incomplete datasets go, so sub-groups (nested names) survive.
    for (const char* dataset : {kDescriptorDataset, kImageSizeDataset}) {
      const std::string path = group + "/" + dataset;
      if (H5Lexists(file_id_, path.c_str(), H5P_DEFAULT) > 0 &&
          H5Ldelete(file_id_, path.c_str(), H5P_DEFAULT) < 0) {
        MEGALOC_THROW(IoError, path_ << ": cannot delete the incomplete image '" << group << "'");
      }
    }
  }
  if (!removed.empty()) Flush();
  return removed;
}

// ---- attributes ---------------------------------------------------------------------------------

bool DescriptorFile::HasAttribute(const std::string& key) const {
  return H5Aexists(file_id_, key.c_str()) > 0;
}

namespace {

std::string ReadAttributeText(hid_t attribute, const std::string& path, const std::string& key) {
  Handle type(H5Aget_type(attribute), H5Tclose);
  const H5T_class_t cls = type.valid() ? H5Tget_class(type.get()) : H5T_NO_CLASS;
  if (cls == H5T_STRING) {
    if (H5Tis_variable_str(type.get()) > 0) {
      Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
      H5Tset_size(mem.get(), H5T_VARIABLE);
      H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
      char* value = nullptr;
      if (H5Aread(attribute, mem.get(), &value) < 0 || value == nullptr) {
        MEGALOC_THROW(FormatError, path << ": cannot read attribute '" << key << "'");
      }
      std::string text(value);
      Handle space(H5Aget_space(attribute), H5Sclose);
      H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, &value);
      return text;
    }
    const size_t size = H5Tget_size(type.get());
    std::string buffer(size, '\0');
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), size);
    H5Tset_strpad(mem.get(), H5T_STR_NULLPAD);
    if (H5Aread(attribute, mem.get(), &buffer[0]) < 0) {
      MEGALOC_THROW(FormatError, path << ": cannot read attribute '" << key << "'");
    }
    return std::string(buffer.c_str());
  }
  if (cls == H5T_INTEGER) {
    int64_t value = 0;
    if (H5Aread(attribute, H5T_NATIVE_INT64, &value) < 0) {
      MEGALOC_THROW(FormatError, path << ": cannot read attribute '" << key << "'");
    }
    return std::to_string(value);
  }
  if (cls == H5T_FLOAT) {
    double value = 0;
    if (H5Aread(attribute, H5T_NATIVE_DOUBLE, &value) < 0) {
      MEGALOC_THROW(FormatError, path << ": cannot read attribute '" << key << "'");
    }
    std::ostringstream out;
    out << value;
    return out.str();
  }
  MEGALOC_THROW(FormatError, path << ": attribute '" << key << "' is not a string or number");
}

herr_t AttributeNameCallback(hid_t, const char* name, const H5A_info_t*, void* data) {
  static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  return 0;
}

}  // namespace

std::string DescriptorFile::GetAttribute(const std::string& key) const {
  if (!HasAttribute(key)) MEGALOC_THROW(FormatError, path_ << ": no attribute '" << key << "'");
  Handle attribute(H5Aopen(file_id_, key.c_str(), H5P_DEFAULT), H5Aclose);
  if (!attribute.valid()) MEGALOC_THROW(FormatError, path_ << ": cannot open attribute '" << key << "'");
  return ReadAttributeText(attribute.get(), path_, key);
}

void DescriptorFile::SetAttribute(const std::string& key, const std::string& value) {
  if (!IsWritable()) MEGALOC_THROW(InvalidArgument, path_ << ": opened read-only, cannot set attribute '" << key << "'");
  if (HasAttribute(key) && H5Adelete(file_id_, key.c_str()) < 0) {
    MEGALOC_THROW(IoError, path_ << ": cannot replace attribute '" << key << "'");
  }
  // Variable-length UTF-8 scalar string: what h5py writes for `attrs[key] = "text"`.
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attribute(H5Acreate2(file_id_, key.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                   H5Aclose);
  const char* data = value.c_str();
  if (!attribute.valid() || H5Awrite(attribute.get(), type.get(), &data) < 0) {
    MEGALOC_THROW(IoError, path_ << ": cannot write attribute '" << key << "'");
  }
}

void DescriptorFile::DeleteAttribute(const std::string& key) {
  if (!IsWritable()) MEGALOC_THROW(InvalidArgument, path_ << ": opened read-only, cannot delete attribute '" << key << "'");
  if (HasAttribute(key) && H5Adelete(file_id_, key.c_str()) < 0) {
    MEGALOC_THROW(IoError, path_ << ": cannot delete attribute '" << key << "'");
  }
}

std::map<std::string, std::string> DescriptorFile::Attributes() const {
  std::vector<std::string> keys;
  hsize_t index = 0;
  H5Aiterate2(file_id_, H5_INDEX_NAME, H5_ITER_INC, &index, AttributeNameCallback, &keys);
  std::map<std::string, std::string> out;
  for (const std::string& key : keys) out[key] = GetAttribute(key);
  return out;
}

}  // namespace megaloc
