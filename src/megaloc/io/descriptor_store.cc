#include "megaloc/io/descriptor_store.h"
#include "megaloc/io/hdf5_compat.h"
#include "megaloc/io/journal_vfd.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/isolated_call.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {
namespace {

constexpr const char* kDescriptorDataset = "global_descriptor";
constexpr const char* kImageSizeDataset = "image_size";
// Appended to write errors of the journaling driver (journal_vfd.h).
constexpr const char* kKeepsLastCommit =
    " (the file keeps its content as of the last commit; free space and run again to resume)";

// Silences HDF5's automatic error printing once per process; we report our own messages.
void SilenceHdf5Errors() {
  static const bool silenced = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)silenced;
}

// After a write error (disk full) the driver drops everything (journal_vfd.h): refuse further
// writes before they reach HDF5.
void ThrowOnWriteError(const std::string& file_path, const std::string& path) {
  const std::string error = internal::JournalWriteError(file_path);
  if (!error.empty()) {
    MEGALOC_THROW(IoError, path << ": an earlier write failed (" << error << ")" << kKeepsLastCommit);
  }
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

// Set only inside a probe child (SetDescriptorFileProbe): called every 1024 objects of a visit.
const std::function<void()>* g_probe_progress = nullptr;
size_t g_probe_count = 0;

void ProbeTick() {
  if (g_probe_progress != nullptr && (++g_probe_count & 1023u) == 0) (*g_probe_progress)();
}

herr_t InventoryCallback(hid_t, const char* name, const hdf5::ObjectInfo* info, void* data) {
  ProbeTick();
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

namespace {

__attribute__((target("avx,f16c"))) void HalfToFloatRowF16c(const uint16_t* in, float* out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) out[i] = HalfToFloat(in[i]);
}

bool CpuHasF16c() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  }();
  return has;
}

}  // namespace

void HalfToFloatRow(const uint16_t* in, float* out, size_t n) {
  if (CpuHasF16c()) {
    HalfToFloatRowF16c(in, out, n);
    return;
  }
  for (size_t i = 0; i < n; ++i) out[i] = HalfToFloat(in[i]);
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

DescriptorFile::DescriptorFile(std::string path, Mode mode)
    : path_(std::move(path)), file_path_(path_), mode_(mode) {}

namespace {

DescriptorFileProbeOptions g_probe_options;

// Files already probed in this process: (device, inode, size, modification time).
std::set<std::tuple<dev_t, ino_t, off_t, int64_t>>& ProbedFiles() {
  static std::set<std::tuple<dev_t, ino_t, off_t, int64_t>> probed;
  return probed;
}

}  // namespace

bool DescriptorFileProbeOptions::Check() const {
  CHECK_OPTION(std::isfinite(stall_seconds) && stall_seconds > 0);
  return true;
}

void SetDescriptorFileProbe(const DescriptorFileProbeOptions& options) {
  MEGALOC_CHECK(options.Check());
  g_probe_options = options;
}

DescriptorFileProbeOptions GetDescriptorFileProbe() { return g_probe_options; }

struct DescriptorFile::ProbedStructure {
  std::vector<std::string> groups;  // sorted, unique
  std::vector<uint8_t> bits;        // Inventory bits of each group
  std::vector<Location> locations;  // of each group's global_descriptor (kUnlocated: none)
};

namespace {

// The probe's structure, as the child writes it to a memory file: "MLPS", the count, then per group
// its name (length + bytes), bits, offset, dim, element size; "DONE" last (a child that stopped
// early leaves no "DONE", and its structure is not used).
void AppendBytes(std::string* out, const void* data, size_t n) { out->append(static_cast<const char*>(data), n); }

bool ReadAllFromStart(int fd, std::string* out) {
  if (lseek(fd, 0, SEEK_SET) != 0) return false;
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    out->append(buffer, static_cast<size_t>(n));
  }
}

template <typename T>
bool Take(const std::string& in, size_t* pos, T* value) {
  if (in.size() - *pos < sizeof(T)) return false;
  std::memcpy(value, in.data() + *pos, sizeof(T));
  *pos += sizeof(T);
  return true;
}

}  // namespace

std::shared_ptr<const DescriptorFile::ProbedStructure> DescriptorFile::ProbeInChild(
    const std::string& path, const std::string& file_path, std::string* identity) {
  if (!g_probe_options.enabled) return nullptr;
  struct stat st;
  if (stat(file_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return nullptr;  // Open reports it
  const auto key = std::make_tuple(st.st_dev, st.st_ino, st.st_size,
                                   int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec);
  std::ostringstream id;
  id << std::get<0>(key) << ":" << std::get<1>(key) << ":" << std::get<2>(key) << ":" << std::get<3>(key);
  *identity = id.str();
  if (ProbedFiles().count(key) != 0) return nullptr;
  // The child writes the structure it read into a memory file the parent reads afterwards.
  const int memory_fd = memfd_create("megaloc-probe", MFD_CLOEXEC);
  IsolatedCallOptions options;
  options.stall_seconds = g_probe_options.stall_seconds;
  const IsolatedCallResult result = RunIsolated(
      [&](const std::function<void()>& progress) {
        g_probe_options.enabled = false;  // the child's own Open
        g_probe_progress = &progress;
        auto file = Open(path, Mode::kRead);
        progress();
        ProbeStructure(file.get(), memory_fd);
      },
      options);
  if (!result.ok()) {
    if (memory_fd >= 0) ::close(memory_fd);
    const std::string detail =
        result.stderr_tail.empty() ? "" : " (it wrote: " + EscapeForMessage(result.stderr_tail, 300) + ")";
    MEGALOC_THROW(FormatError, path << ": corrupt HDF5 file: libhdf5 " << result.Describe()
                                    << " while reading the file's structure in a separate process"
                                    << detail << "; the file was not opened here");
  }
  ProbedFiles().insert(key);
  if (memory_fd < 0) return nullptr;
  std::string data;
  const bool read_ok = ReadAllFromStart(memory_fd, &data);
  ::close(memory_fd);
  if (!read_ok || data.size() < 16 || data.compare(0, 4, "MLPS") != 0 ||
      data.compare(data.size() - 4, 4, "DONE") != 0) {
    return nullptr;  // the child met an error (thrown again in this process) or wrote nothing
  }
  auto structure = std::make_shared<ProbedStructure>();
  size_t pos = 4;
  uint64_t count = 0;
  if (!Take(data, &pos, &count) || count > data.size()) return nullptr;
  structure->groups.reserve(count);
  structure->bits.reserve(count);
  structure->locations.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    uint32_t length = 0;
    if (!Take(data, &pos, &length) || data.size() - pos < length) return nullptr;
    structure->groups.emplace_back(data, pos, length);
    pos += length;
    uint8_t bits = 0;
    Location location;
    if (!Take(data, &pos, &bits) || !Take(data, &pos, &location.offset) || !Take(data, &pos, &location.dim) ||
        !Take(data, &pos, &location.element_size)) {
      return nullptr;
    }
    structure->bits.push_back(bits);
    structure->locations.push_back(location);
  }
  if (pos + 4 != data.size() || !std::is_sorted(structure->groups.begin(), structure->groups.end())) {
    return nullptr;
  }
  return structure;
}

std::unique_ptr<DescriptorFile> DescriptorFile::Open(const std::string& path, Mode mode) {
  SilenceHdf5Errors();
  if (path.empty()) MEGALOC_THROW(InvalidArgument, "descriptor file path is empty");
  if (DirectoryExists(path)) MEGALOC_THROW(IoError, path << ": is a directory, not an HDF5 file");
  std::unique_ptr<DescriptorFile> file(new DescriptorFile(path, mode));
  if (mode == Mode::kRead) {
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      MEGALOC_THROW(IoError, path << ": not a regular file (a device, FIFO or socket), not an HDF5 "
                                     "descriptor file");
    }
    // The journal lives next to the file itself, also when it is opened through a symbolic link.
    char* real = realpath(path.c_str(), nullptr);
    if (real != nullptr) {
      file->file_path_ = real;
      std::free(real);
    }
  } else {
    file->file_path_ = CheckOutputFile(path);  // refuses devices, FIFOs; follows symbolic links
  }
  // A zero-byte file (e.g. left by another tool killed at creation) holds nothing: appending to it
  // creates a fresh file.
  const std::string& real = file->file_path_;
  const bool exists = FileExists(real) && !(mode == Mode::kAppend && FileSizeOrZero(real) == 0);
  if (mode == Mode::kRead && !exists) {
    MEGALOC_THROW(IoError, path << ": no such descriptor file");
  }
  std::string identity;
  std::shared_ptr<const ProbedStructure> probed;
  if (exists) probed = ProbeInChild(path, real, &identity);
  file->half_type_ = MakeHalfType();
  file->OpenHandle(mode == Mode::kCreate || (mode == Mode::kAppend && !exists));
  // The probe's structure describes the file HDF5 opened only if it is still the same, unchanged file.
  struct stat st;
  if (probed != nullptr && mode == Mode::kRead && stat(real.c_str(), &st) == 0) {
    std::ostringstream id;
    id << st.st_dev << ":" << st.st_ino << ":" << st.st_size << ":"
       << int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
    if (id.str() == identity && static_cast<uint64_t>(st.st_ino) == file->file_inode_) {
      file->probed_ = std::move(probed);
      file->links_checked_ = true;
    }
  }
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
    // Never replace a file another process is writing: its lock is held until the new file is in
    // place (and its journal gone).
    int old_fd = FileExists(file_path_) ? open(file_path_.c_str(), O_RDONLY | O_CLOEXEC) : -1;
    if (old_fd >= 0 && flock(old_fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
      close(old_fd);
      MEGALOC_THROW(IoError, path_ << ": cannot replace the file: it is being written by another process");
    }
    const std::string temp = file_path_ + ".creating";
    errno = 0;
    const hid_t temp_id = H5Fcreate(temp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
    const int create_error = errno;
    const bool closed = temp_id >= 0 && H5Fclose(temp_id) >= 0;
    const std::string write_error = internal::JournalWriteError(temp);
    if (closed && write_error.empty()) {
      std::remove(internal::JournalPath(file_path_).c_str());  // a stale journal of a replaced file
    }
    const bool renamed =
        closed && write_error.empty() && std::rename(temp.c_str(), file_path_.c_str()) == 0;
    const int rename_error = errno;
    if (old_fd >= 0) close(old_fd);
    if (temp_id < 0) {
      MEGALOC_THROW(IoError, path_ << ": cannot create the HDF5 file: "
                                   << (create_error != 0 ? std::strerror(create_error)
                                                         : "directory missing or not writable?"));
    }
    if (!renamed) {
      std::remove(temp.c_str());
      MEGALOC_THROW(IoError, path_ << ": cannot create the HDF5 file: "
                                   << (!write_error.empty() ? write_error
                                                            : std::string(std::strerror(rename_error))));
    }
  }
  // Finish a commit interrupted by a kill: only while no writer holds the file's lock, and only if
  // the journal belongs to this file (journal_vfd.h). Writers also drop incomplete journals.
  internal::RecoverJournal(file_path_, /*discard_incomplete=*/mode_ != Mode::kRead);
  const htri_t is_hdf5 = H5Fis_hdf5(file_path_.c_str());
  if (is_hdf5 <= 0) {
    if (ReadFileToString(file_path_).empty()) {
      MEGALOC_THROW(FormatError, path_ << ": empty file, not an HDF5 descriptor file");
    }
    MEGALOC_THROW(FormatError, path_ << ": not an HDF5 file (no HDF5 signature)");
  }
  file_id_ = H5Fopen(file_path_.c_str(), mode_ == Mode::kRead ? H5F_ACC_RDONLY : H5F_ACC_RDWR,
                     fapl.get());
  struct stat st;
  if (file_id_ >= 0 && stat(file_path_.c_str(), &st) == 0) {
    file_device_ = static_cast<uint64_t>(st.st_dev);
    file_inode_ = static_cast<uint64_t>(st.st_ino);
  }

  if (file_id_ < 0) {
    if (mode_ != Mode::kRead && access(file_path_.c_str(), W_OK) != 0) {
      MEGALOC_THROW(IoError, path_ << ": cannot open the HDF5 file for writing (permission denied)");
    }
    MEGALOC_THROW(FormatError,
                  path_ << ": cannot open the HDF5 file (truncated or corrupt HDF5 file, or "
                           "being written by another process, or already open for "
                        << (mode_ == Mode::kRead ? "writing" : "reading") << " in this one)");
  }
}

void DescriptorFile::CloseHandle() noexcept {
  if (raw_fd_ >= 0) {
    ::close(raw_fd_);
    raw_fd_ = -1;
  }
  raw_state_ = -1;
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

namespace {

// What a walk over every link of a file finds (H5Lvisit: each link once; a group reached by a second
// hard link is not entered again, exactly as the object visit behind Inventory).
struct LinkScan {
  std::string problem;  // the first soft, external or user-defined link
  size_t num_descriptor_links = 0;  // hard links named global_descriptor
  // Hard links whose children were not visited and that are not named like a dataset of the
  // layout: an empty group, a foreign dataset, or a second link to a group already visited.
  std::vector<std::string> childless;
  std::string pending;  // the previous such link, until the next callback shows its children
  std::vector<std::string>* descriptor_links = nullptr;  // collected on demand
};

herr_t LinkScanCallback(hid_t, const char* name, const H5L_info_t* info, void* data) {
  ProbeTick();
  auto* scan = static_cast<LinkScan*>(data);
  const std::string path(name);
  if (!scan->pending.empty()) {
    if (path.compare(0, scan->pending.size() + 1, scan->pending + "/") != 0) {
      scan->childless.push_back(scan->pending);
    }
    scan->pending.clear();
  }
  if (info->type != H5L_TYPE_HARD) {
    scan->problem = "'" + path + "' is an HDF5 " +
                    (info->type == H5L_TYPE_SOFT       ? "soft link"
                     : info->type == H5L_TYPE_EXTERNAL ? "external link"
                                                       : "user-defined link");
    return 1;  // stop
  }
  const size_t slash = path.rfind('/');
  const std::string leaf = slash == std::string::npos ? path : path.substr(slash + 1);
  if (leaf == kDescriptorDataset) {
    ++scan->num_descriptor_links;
    if (scan->descriptor_links != nullptr) scan->descriptor_links->push_back(path);
  } else if (leaf != kImageSizeDataset) {
    scan->pending = path;
  }
  return 0;
}

// HDF5's object visit (and hloc's list_h5_names, which uses it) sees an object once, whatever the
// number of hard links to it, and never follows soft or external links: images behind such links
// would vanish from the listing without a word. Refuse them, naming the link.
void CheckLinks(hid_t file, const std::string& path, const Inventory& inventory) {
  LinkScan scan;
  const herr_t status = H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, LinkScanCallback, &scan);
  if (status < 0) MEGALOC_THROW(FormatError, path << ": cannot list the links of the HDF5 file (corrupt file?)");
  if (!scan.pending.empty()) scan.childless.push_back(scan.pending);
  std::string problem = scan.problem;
  // A group whose links were not visited although it has some was visited under another name.
  for (size_t i = 0; problem.empty() && i < scan.childless.size(); ++i) {
    if (ObjectType(file, scan.childless[i]) != H5O_TYPE_GROUP) continue;
    Handle group(H5Gopen2(file, scan.childless[i].c_str(), H5P_DEFAULT), H5Gclose);
    H5G_info_t info;
    if (group.valid() && H5Gget_info(group.get(), &info) >= 0 && info.nlinks > 0) {
      problem = "'" + scan.childless[i] + "' is a second hard link to an HDF5 group that is listed under another name";
    }
  }
  size_t num_descriptors = 0;
  for (const auto& [group, bits] : inventory.groups) num_descriptors += (bits & 1u) ? 1 : 0;
  if (problem.empty() && scan.num_descriptor_links != num_descriptors) {
    // A global_descriptor reached by two hard links counts once in the inventory: find it.
    std::vector<std::string> links;
    LinkScan named;
    named.descriptor_links = &links;
    H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, LinkScanCallback, &named);
    for (const std::string& link : links) {
      const std::string group = link.substr(0, link.size() - std::strlen(kDescriptorDataset) - 1);
      const auto it = inventory.groups.find(group);
      if (it == inventory.groups.end() || !(it->second & 1u)) {
        problem = "'" + link + "' is a second hard link to a dataset that is listed under another name, or not a dataset";
        break;
      }
    }
  }
  if (!problem.empty()) {
    MEGALOC_THROW(FormatError, path << ": " << problem
                                    << "; images behind such links would not be listed (by megaloc or "
                                       "hloc): store every image as its own group of datasets");
  }
}

// The inventory, with the link check on the first listing of an open file (`*links_checked`).
Inventory CheckedInventory(hid_t file, const std::string& path, bool* links_checked) {
  Inventory inventory = TakeInventory(file, path);
  if (!*links_checked) {
    CheckLinks(file, path, inventory);
    *links_checked = true;
  }
  return inventory;
}

}  // namespace

std::vector<std::string> DescriptorFile::ListNames() const {
  if (probed_ != nullptr) return probed_->groups;
  std::vector<std::string> names;
  for (const auto& [group, bits] : CheckedInventory(file_id_, path_, &links_checked_).groups) names.push_back(group);
  return names;  // std::map: sorted, unique
}

std::vector<std::string> DescriptorFile::ListDescriptorNames() const {
  std::vector<std::string> names;
  if (probed_ != nullptr) {
    for (size_t i = 0; i < probed_->groups.size(); ++i) {
      if (probed_->bits[i] & 1u) names.push_back(probed_->groups[i]);
    }
    return names;
  }
  for (const auto& [group, bits] : CheckedInventory(file_id_, path_, &links_checked_).groups) {
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
  std::string problem;
  if (!type.valid() || H5Tget_class(type.get()) != H5T_FLOAT) {
    problem = "'global_descriptor' is not a floating-point dataset";
  } else if (rank < 0 || rank > H5S_MAX_RANK ||
             (rank > 0 && H5Sget_simple_extent_dims(space.get(), dims, nullptr) < 0)) {
    problem = "cannot read the shape of 'global_descriptor' (corrupt file?)";
  } else if (rank < 1) {
    problem = "'global_descriptor' is not an array";
  } else {
    // Sizes come from the file: multiply without overflow, and bound them before any allocation.
    hsize_t length = 1;
    bool too_large = false;
    for (int i = 0; i < rank; ++i) {
      if (dims[i] != 0 && length > static_cast<hsize_t>(kMaxDescriptorDim) / dims[i]) too_large = true;
      length = too_large ? length : length * dims[i];
    }
    std::ostringstream shape;
    for (int i = 0; i < rank; ++i) shape << (i ? ", " : "(") << dims[i];
    shape << (rank == 1 ? ",)" : ")");
    info.size = H5Tget_size(type.get());
    info.is_float = true;
    // hloc writes (D,); accept (1, D) too (squeezed by hloc's readers).
    if (rank > 2 || (rank == 2 && dims[0] != 1) || length == 0) {
      problem = "'global_descriptor' must have shape (D,), not " + shape.str();
    } else if (too_large || length > static_cast<hsize_t>(kMaxDescriptorDim)) {
      problem = "'global_descriptor' has shape " + shape.str() + ": more than " +
                std::to_string(kMaxDescriptorDim) + " values, not a global descriptor";
    }
    info.length = length;
    if (problem.empty() && info.size == 2) {
      info.is_half = true;
      size_t spos, epos, esize, mpos, msize;
      if (H5Tget_fields(type.get(), &spos, &epos, &esize, &mpos, &msize) < 0) {
        problem = "cannot read the float type of 'global_descriptor' (corrupt file?)";
      } else if (spos != 15 || epos != 10 || esize != 5 || mpos != 0 || msize != 10 ||
                 H5Tget_ebias(type.get()) != 15) {
        problem = "'global_descriptor' is a 2-byte float that is not IEEE float16";
      }
    } else if (problem.empty() && info.size != 4 && info.size != 8) {
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

// Byte offset of a dataset's values when they are one contiguous run of IEEE little-endian
// float16/float32 values that a plain read returns exactly as H5Dread would; -1 otherwise (chunked,
// compact, external or not allocated storage, another byte order or float layout).
int64_t ContiguousLittleEndianOffset(hid_t dataset, const DatasetInfo& info) {
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
  (void)dataset;
  (void)info;
  return -1;
#else
  Handle plist(H5Dget_create_plist(dataset), H5Pclose);
  if (!plist.valid() || H5Pget_layout(plist.get()) != H5D_CONTIGUOUS ||
      H5Pget_external_count(plist.get()) != 0 || H5Pget_nfilters(plist.get()) != 0) {
    return -1;
  }
  Handle type(H5Dget_type(dataset), H5Tclose);
  if (!type.valid() || H5Tget_order(type.get()) != H5T_ORDER_LE || H5Tget_offset(type.get()) != 0 ||
      H5Tget_precision(type.get()) != 8 * info.size) {
    return -1;
  }
  if (info.size == 4 && H5Tequal(type.get(), H5T_IEEE_F32LE) <= 0) return -1;
  // float16: InspectDescriptor checked the IEEE binary16 fields and bias.
  if (H5Dget_storage_size(dataset) != info.length * info.size) return -1;
  const haddr_t offset = H5Dget_offset(dataset);
  if (offset == HADDR_UNDEF || offset > static_cast<haddr_t>(INT64_MAX / 2)) return -1;
  return static_cast<int64_t>(offset);
#endif
}

// Reads one descriptor either as float (out_float) or as half bits (out_half); `expected_dim` < 0
// accepts any length and returns it, else it is the dimension of the image `reference`.
int ReadOne(hid_t file, hid_t half_type, const std::string& path, const std::string& name,
            int expected_dim, const std::string& reference, float* out_float, uint16_t* out_half,
            std::vector<uint16_t>* half_scratch, std::vector<float>* float_scratch,
            DescriptorFile::Location* location = nullptr) {
  hid_t dataset_id;
  const DatasetInfo info = InspectDescriptor(file, path, name, &dataset_id);
  Handle dataset(dataset_id, H5Dclose);
  if (location != nullptr) {
    location->offset = DescriptorFile::Location::kThroughHdf5;
    location->dim = static_cast<int32_t>(info.length);
    location->element_size = static_cast<int32_t>(info.size);
    if (info.size == 2 || info.size == 4) {
      const int64_t offset = ContiguousLittleEndianOffset(dataset.get(), info);
      if (offset >= 0) location->offset = offset;
    }
  }
  const int dim = static_cast<int>(info.length);  // <= kMaxDescriptorDim
  if (expected_dim >= 0 && dim != expected_dim) {
    std::ostringstream what;
    what << "descriptor dimension " << dim << " differs from " << expected_dim
         << ", the dimension of '" << reference << "' (all images must have the same dimension)";
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
      HalfToFloatRow(target, out_float, static_cast<size_t>(dim));
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
  // NaN or infinite values (e.g. from broken weights) would rank arbitrarily; refuse them.
  const uint16_t* half = out_half != nullptr ? out_half : (info.size == 2 ? half_scratch->data() : nullptr);
  const float* single = out_float != nullptr ? out_float : (info.size != 2 ? float_scratch->data() : nullptr);
  for (int i = 0; i < dim; ++i) {
    const bool finite = single != nullptr ? std::isfinite(single[i]) : (half[i] & 0x7c00u) != 0x7c00u;
    if (!finite) {
      std::ostringstream what;
      what << "'global_descriptor' holds NaN or infinite values (first at index " << i << ")";
      MEGALOC_THROW(FormatError, FormatTypeError(path, name, what.str()));
    }
  }
  return dim;
}

}  // namespace

Eigen::VectorXf DescriptorFile::Read(const std::string& name) const {
  const int dim = Dim(name);
  Eigen::VectorXf out(dim);
  std::vector<uint16_t> half_scratch;
  std::vector<float> float_scratch;
  ReadOne(file_id_, half_type_, path_, name, dim, name, out.data(), nullptr, &half_scratch,
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
    ReadOne(file_id_, half_type_, path_, names[i], dim, names[begin], out->row(i - begin).data(),
            nullptr, &half_scratch, &float_scratch);
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
    ReadOne(file_id_, half_type_, path_, names[i], *dim, names[begin], nullptr,
            out->data() + (i - begin) * static_cast<size_t>(*dim), &half_scratch, &float_scratch);
  }
}

void DescriptorFile::ProbeStructure(DescriptorFile* file, int fd) {
  const Inventory inventory = CheckedInventory(file->file_id_, file->path_, &file->links_checked_);
  ProbeTick();
  file->Attributes();
  std::string out = "MLPS";
  const uint64_t count = inventory.groups.size();
  AppendBytes(&out, &count, sizeof(count));
  for (const auto& [group, bits] : inventory.groups) {
    Location location;
    if (bits & 1u) {  // the dataset's header: type and shape (FormatError for a bad one)
      hid_t dataset;
      const DatasetInfo info = InspectDescriptor(file->file_id_, file->path_, group, &dataset);
      Handle handle(dataset, H5Dclose);
      location.offset = Location::kThroughHdf5;
      location.dim = static_cast<int32_t>(info.length);
      location.element_size = static_cast<int32_t>(info.size);
      if (info.size == 2 || info.size == 4) {
        const int64_t offset = ContiguousLittleEndianOffset(dataset, info);
        if (offset >= 0) location.offset = offset;
      }
      ProbeTick();
    }
    const uint32_t length = static_cast<uint32_t>(group.size());
    const uint8_t bits8 = static_cast<uint8_t>(bits);
    AppendBytes(&out, &length, sizeof(length));
    out += group;
    AppendBytes(&out, &bits8, sizeof(bits8));
    AppendBytes(&out, &location.offset, sizeof(location.offset));
    AppendBytes(&out, &location.dim, sizeof(location.dim));
    AppendBytes(&out, &location.element_size, sizeof(location.element_size));
  }
  out += "DONE";
  if (fd < 0) return;
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = write(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the parent walks the file itself
    done += static_cast<size_t>(n);
  }
}

int64_t DescriptorFile::ProbedIndex(const std::string& name) const {
  if (probed_ == nullptr) return -1;
  const auto it = std::lower_bound(probed_->groups.begin(), probed_->groups.end(), name);
  if (it == probed_->groups.end() || *it != name) return -1;
  return it - probed_->groups.begin();
}

bool DescriptorFile::RawReadsPossible() const {
  if (raw_state_ >= 0) return raw_state_ == 1;
  raw_state_ = 0;
  if (mode_ != Mode::kRead || file_id_ < 0 || file_inode_ == 0) return false;
  // Offsets are relative to the HDF5 base address: files with a user block are read through HDF5.
  Handle fcpl(H5Fget_create_plist(file_id_), H5Pclose);
  hsize_t userblock = 1;
  if (!fcpl.valid() || H5Pget_userblock(fcpl.get(), &userblock) < 0 || userblock != 0) return false;
  const int fd = ::open(file_path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  if (fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_dev) != file_device_ ||
      static_cast<uint64_t>(st.st_ino) != file_inode_) {
    ::close(fd);  // the path names another file now
    return false;
  }
  raw_fd_ = fd;
  raw_state_ = 1;
  return true;
}

void DescriptorFile::ReadBlockLocated(const std::vector<std::string>& names, size_t begin, size_t end,
                                      int dim, const std::string& reference,
                                      std::vector<Location>* locations, float* out) const {
  MEGALOC_CHECK(begin <= end && end <= names.size());
  MEGALOC_CHECK_EQ(locations->size(), names.size());
  MEGALOC_CHECK_GT(dim, 0);
  const bool raw = RawReadsPossible();
  std::vector<uint16_t> half_scratch;
  std::vector<float> float_scratch;
  for (size_t i = begin; i < end; ++i) {
    Location& location = (*locations)[i];
    float* row = out + (i - begin) * static_cast<size_t>(dim);
    if (raw && location.offset == Location::kUnlocated) {
      // Located by the probe child (which checked the dataset's type and shape).
      const int64_t probed = ProbedIndex(names[i]);
      if (probed >= 0 && probed_->locations[probed].offset >= 0) location = probed_->locations[probed];
    }
    if (!raw || location.offset < 0) {
      const bool locate = raw && location.offset == Location::kUnlocated;
      ReadOne(file_id_, half_type_, path_, names[i], dim, reference, row, nullptr, &half_scratch,
              &float_scratch, locate ? &location : nullptr);
      continue;
    }
    if (location.dim != dim) {
      std::ostringstream what;
      what << "descriptor dimension " << location.dim << " differs from " << dim << ", the dimension of '"
           << reference << "' (all images must have the same dimension)";
      MEGALOC_THROW(FormatError, FormatTypeError(path_, names[i], what.str()));
    }
    const size_t bytes = static_cast<size_t>(location.dim) * location.element_size;
    char* target = location.element_size == 4 ? reinterpret_cast<char*>(row) : nullptr;
    if (target == nullptr) {
      half_scratch.resize(location.dim);
      target = reinterpret_cast<char*>(half_scratch.data());
    }
    size_t done = 0;
    while (done < bytes) {
      const ssize_t got = ::pread(raw_fd_, target + done, bytes - done, location.offset + done);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        MEGALOC_THROW(FormatError, FormatTypeError(path_, names[i], got < 0 ? std::string("cannot read 'global_descriptor': ") + std::strerror(errno)
                                                                         : std::string("cannot read 'global_descriptor' (truncated or corrupt file?)")));
      }
      done += static_cast<size_t>(got);
    }
    int bad = -1;
    if (location.element_size == 2) {
      for (int d = 0; d < location.dim; ++d) {
        if ((half_scratch[d] & 0x7c00u) == 0x7c00u) {
          bad = d;
          break;
        }
      }
      if (bad < 0) HalfToFloatRow(half_scratch.data(), row, location.dim);
    } else {
      for (int d = 0; d < location.dim; ++d) {
        if (!std::isfinite(row[d])) {
          bad = d;
          break;
        }
      }
    }
    if (bad >= 0) {
      std::ostringstream what;
      what << "'global_descriptor' holds NaN or infinite values (first at index " << bad << ")";
      MEGALOC_THROW(FormatError, FormatTypeError(path_, names[i], what.str()));
    }
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
  ThrowOnWriteError(file_path_, path_);
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
  const std::string write_error = internal::JournalWriteError(file_path_);
  if (!ok || !write_error.empty()) {
    H5Ldelete(file_id_, name.c_str(), H5P_DEFAULT);  // as hloc: remove the partial group
    MEGALOC_THROW(IoError, path_ << ": cannot write the descriptor of '" << name << "': "
                                 << (write_error.empty() ? "disk full or file not writable?"
                                                         : write_error + kKeepsLastCommit));
  }
}

void DescriptorFile::Delete(const std::string& name) {
  if (!IsWritable()) MEGALOC_THROW(InvalidArgument, path_ << ": opened read-only, cannot delete '" << name << "'");
  ThrowOnWriteError(file_path_, path_);
  if (!CheckName(name).empty() || !LinkExists(file_id_, name)) return;
  if (H5Ldelete(file_id_, name.c_str(), H5P_DEFAULT) < 0) {
    MEGALOC_THROW(IoError, path_ << ": cannot delete '" << name << "'");
  }
}

void DescriptorFile::Flush() {
  if (!IsWritable()) return;
  std::string write_error = internal::JournalWriteError(file_path_);
  const bool flushed = write_error.empty() && H5Fflush(file_id_, H5F_SCOPE_GLOBAL) >= 0;
  if (write_error.empty()) write_error = internal::JournalWriteError(file_path_);
  if (!flushed || !write_error.empty()) {
    MEGALOC_THROW(IoError, path_ << ": cannot flush the HDF5 file: "
                                 << (write_error.empty() ? "disk full?" : write_error + kKeepsLastCommit));
  }
}

std::vector<std::string> DescriptorFile::RepairIncompleteGroups() {
  std::vector<std::string> removed;
  if (!IsWritable()) return removed;
  for (const auto& [group, bits] : CheckedInventory(file_id_, path_, &links_checked_).groups) {
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
  ThrowOnWriteError(file_path_, path_);
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
  if (H5Aiterate2(file_id_, H5_INDEX_NAME, H5_ITER_INC, &index, AttributeNameCallback, &keys) < 0) {
    MEGALOC_THROW(FormatError, path_ << ": cannot list the attributes of the root group (corrupt file?)");
  }
  std::map<std::string, std::string> out;
  for (const std::string& key : keys) out[key] = GetAttribute(key);
  return out;
}

std::string ProvenanceMismatch(const DescriptorFile& file,
                               const std::vector<std::pair<std::string, std::string>>& expected) {
  for (const auto& [key, value] : expected) {
    if (key == kAttrToolVersion || key == kAttrModel) continue;
    if (value.empty() || !file.HasAttribute(key)) continue;
    const std::string stored = file.GetAttribute(key);
    if (stored != value) return "it was made with " + key + "=" + stored + ", this run uses " + key + "=" + value;
  }
  return "";
}

void CheckProvenance(const DescriptorFile& file, const std::vector<std::pair<std::string, std::string>>& expected,
                     const std::string& what, const std::string& advice) {
  const std::string mismatch = ProvenanceMismatch(file, expected);
  if (!mismatch.empty()) MEGALOC_THROW(FormatError, file.Path() << ": " << what << ": " << mismatch << ". " << advice);
}

}  // namespace megaloc
