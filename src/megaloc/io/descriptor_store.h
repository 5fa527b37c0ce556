#pragma once

// Global descriptors of image collections in hloc's HDF5 layout (docs/formats.md).
//
//   /<name>/global_descriptor   (D,) float16 (h5py's custom IEEE half type) or float32, contiguous
//   /<name>/image_size          (2,) int64 = original (width, height)
//
// <name> is the image path relative to the image root with '/' separators; a '/' makes real nested
// groups, as h5py's create_group does. No other datasets are ever written (they would pollute hloc's
// `list_h5_names`); provenance is stored as string attributes on the root group (kAttr* below).
//
// Files written here are read by hloc (`pairs_from_retrieval`, `get_descriptors`) and h5py, and
// files written by hloc are read here (float16 or float32, any libver bounds).
//
// Crash safety (writers): files are written through a journaling HDF5 file driver
// (journal_vfd.h) that makes every Flush() atomic. A process killed at any moment (even inside
// Flush) leaves the file as of the last completed Flush(): every image written before it is
// readable. An interrupted commit is finished (or discarded) by the next Open(). Opening for
// append also removes incomplete image groups (a group holding one of the two datasets but not
// both, e.g. from foreign tools; see RepairIncompleteGroups()). Only one writer at a time: a second
// writer gets an error (file lock).
//
// Thread safety: none. The Debian HDF5 build is not thread-safe; use one DescriptorFile from one
// thread at a time (and do not open the same file twice for writing).

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

namespace megaloc {

// The largest descriptor dimension read from a file (larger datasets are refused before anything
// is allocated; MegaLoc's is 8448).
constexpr int64_t kMaxDescriptorDim = int64_t{1} << 24;

// Row-major float matrix (same type as DescriptorMatrix in megaloc/model/megaloc.h).
using DescriptorBlock = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// On-disk type of `global_descriptor`.
enum class DescriptorDtype {
  kFloat16,  // h5py/numpy float16 (IEEE binary16); hloc's `as_half=True`
  kFloat32,
};
// "float16" / "float32".
std::string DescriptorDtypeName(DescriptorDtype dtype);
// Inverse of DescriptorDtypeName; throws InvalidArgument for anything else.
DescriptorDtype ParseDescriptorDtype(const std::string& text);

// IEEE binary16 conversions. FloatToHalf rounds to nearest, ties to even (like numpy's
// astype(float16)), handles subnormals, overflows to +-inf and keeps NaN a NaN. HalfToFloat is exact.
uint16_t FloatToHalf(float value);
float HalfToFloat(uint16_t bits);
// HalfToFloat over n values (F16C instructions where the CPU has them, detected at run time).
void HalfToFloatRow(const uint16_t* in, float* out, size_t n);

// Names of the provenance attributes (variable-length UTF-8 strings on the root group).
constexpr const char* kAttrModel = "megaloc_model";              // e.g. "MegaLoc"
constexpr const char* kAttrDescriptorDim = "descriptor_dim";     // e.g. "8448"
constexpr const char* kAttrWeightsSha256 = "weights_sha256";     // sha256 of the checkpoint file
constexpr const char* kAttrPreprocessing = "preprocessing";      // PreprocessingOptions::ToString()
constexpr const char* kAttrToolVersion = "megaloc_version";      // MegalocVersion()
constexpr const char* kAttrDtype = "descriptor_dtype";           // "float16" / "float32"
constexpr const char* kAttrPrecision = "inference_precision";    // "float32" / "bfloat16-autocast"

// Isolation from libhdf5 on untrusted files. libhdf5 (1.10.8 to 2.2) crashes or loops forever on
// some corrupt files before it returns an error code (tests/fuzz/findings/hdf5/). When the probe is
// enabled, DescriptorFile::Open first reads the structure of an existing file — every object name,
// the root attributes and their values, each descriptor's type and shape — in a forked child process
// (util/isolated_call.h); if the child crashes or stalls, Open throws FormatError naming the file
// and what happened, and this process never touches the file. Each file (device, inode, size,
// modification time) is probed once per process. Descriptor values are not read by the probe.
// Off by default (library users and tests); the `megaloc` executable turns it on at start.
struct DescriptorFileProbeOptions {
  bool enabled = false;
  // A child that makes no progress for this long is stopped (see IsolatedCallOptions). Default 60.
  double stall_seconds = 60.0;
  bool Check() const;
};
void SetDescriptorFileProbe(const DescriptorFileProbeOptions& options);
DescriptorFileProbeOptions GetDescriptorFileProbe();

class DescriptorFile {
 public:
  enum class Mode {
    kRead,    // read-only; the file must exist
    kAppend,  // read-write; created if missing (hloc's h5py mode "a"); repairs incomplete groups
    kCreate,  // read-write; truncates an existing file
  };

  // Opens `path`. Throws IoError (missing file in kRead, unwritable location, directory, device,
  // FIFO: writers apply CheckOutputFile, so a symbolic link is written through) or FormatError (not
  // an HDF5 file, truncated or corrupt HDF5 file), naming the file and the reason.
  static std::unique_ptr<DescriptorFile> Open(const std::string& path, Mode mode);

  // Flushes (writers) and closes; never throws.
  ~DescriptorFile();
  DescriptorFile(const DescriptorFile&) = delete;
  DescriptorFile& operator=(const DescriptorFile&) = delete;

  const std::string& Path() const { return path_; }
  bool IsWritable() const { return mode_ != Mode::kRead; }

  // ---- names -------------------------------------------------------------------------------
  // hloc's `list_h5_names`: the parent group path (without leading '/') of every dataset in the
  // file, de-duplicated and sorted (byte order). A group is listed iff it holds >= 1 dataset.
  // HDF5 soft, external and user-defined links, and a second hard link to an object (which hloc's
  // listing, like HDF5's object visit, silently drops) are refused with FormatError naming the link
  // (also by ListDescriptorNames and RepairIncompleteGroups).
  std::vector<std::string> ListNames() const;
  // The names whose group holds a `global_descriptor` dataset, sorted (one pass over the file;
  // use this rather than Has() per name on large files).
  std::vector<std::string> ListDescriptorNames() const;
  // True if /<name>/global_descriptor exists (checked component by component; never throws for
  // missing parents; false for invalid names).
  bool Has(const std::string& name) const;

  // ---- reading -----------------------------------------------------------------------------
  // Dimension D and dtype of /<name>/global_descriptor. Throws FormatError naming the file and the
  // image if the group or dataset is missing, or the dataset is not a 1-D float16/32/64 array of
  // 1 .. kMaxDescriptorDim elements (sizes from the file are checked before anything is allocated).
  int Dim(const std::string& name) const;
  DescriptorDtype Dtype(const std::string& name) const;
  // The descriptor, float16 upcast exactly to float32. Every read (also ReadBlock, ReadBlockHalf)
  // refuses NaN and infinite values with FormatError naming the file and the image.
  Eigen::VectorXf Read(const std::string& name) const;
  // Rows [begin, end) of `names` into `out` ((end - begin) x D, row r = names[begin + r]). All
  // descriptors must have the same D (FormatError naming the first one that differs and the image
  // names[begin] it differs from). For streaming large files in blocks.
  void ReadBlock(const std::vector<std::string>& names, size_t begin, size_t end,
                 DescriptorBlock* out) const;
  // Same, as raw IEEE binary16 bit patterns, row-major (end - begin) x *dim (float32 datasets are
  // rounded with FloatToHalf). Half the memory of ReadBlock; convert rows with HalfToFloat.
  void ReadBlockHalf(const std::vector<std::string>& names, size_t begin, size_t end,
                     std::vector<uint16_t>* out, int* dim) const;
  // Where one descriptor's values lie in the file, so that repeated reads of the same images (the
  // streamed retrieval reads its database once per block row) skip HDF5. Kept by the caller, one
  // per name, starting unlocated; ReadBlockLocated fills them.
  struct Location {
    static constexpr int64_t kUnlocated = -2;   // not read yet
    static constexpr int64_t kThroughHdf5 = -1;  // read with HDF5 every time
    int64_t offset = kUnlocated;  // else: byte offset of the contiguous little-endian values
    int32_t dim = 0;
    int32_t element_size = 0;  // 2 (float16) or 4 (float32)
  };
  // ReadBlock into `out` (row-major, (end - begin) x dim) using `locations` (locations->size() ==
  // names.size()). The first read of a name goes through HDF5 (every check of ReadBlock) and records
  // where its values lie when a plain read of bytes gives the same values: a file opened kRead,
  // without a user block, and a contiguous dataset with IEEE little-endian float16/float32 values
  // (hloc's and h5py's layout). Later reads of such a name read its bytes directly (pread), with the
  // same value checks (NaN/infinity refused) and a FormatError naming the image when the bytes are
  // missing (truncated file). Every descriptor must have `dim` values (FormatError naming the image
  // and `reference`, whose dimension `dim` is, otherwise).
  void ReadBlockLocated(const std::vector<std::string>& names, size_t begin, size_t end, int dim,
                        const std::string& reference, std::vector<Location>* locations,
                        float* out) const;
  // True when the listing and the descriptors' locations came from the probe (a kRead file opened
  // with the probe on, unchanged since the probe read it): ListNames and ReadBlockLocated then need
  // no walk over the file and no HDF5 call per descriptor.
  bool UsesProbedStructure() const { return probed_ != nullptr; }
  // /<name>/image_size as (width, height). FormatError if missing or not 2 integers.
  std::pair<int64_t, int64_t> ImageSize(const std::string& name) const;

  // ---- writing (kAppend / kCreate only; InvalidArgument otherwise) ---------------------------
  // Writes (or replaces: the leaf group is deleted and re-created, parents stay, as hloc does)
  // /<name>/global_descriptor (`dim` values, stored as `dtype`) and /<name>/image_size =
  // (width, height). Not durable until Flush(). Throws InvalidArgument for an invalid name (empty,
  // leading/trailing '/', empty, "." or ".." components, whitespace), IoError on write failure
  // (the partial group is removed).
  void Write(const std::string& name, const float* descriptor, int dim, int width, int height,
             DescriptorDtype dtype = DescriptorDtype::kFloat16);
  // Removes the leaf group /<name> (and everything below it). No-op if absent.
  void Delete(const std::string& name);
  // Makes everything written so far durable and atomic (H5Fflush through the journaling driver, with
  // fsync; see the header comment). A write error (disk full) is reported by the call that meets it
  // (Write or Flush: IoError with the system's reason); the file then keeps its last completed
  // Flush, and every later Write/Flush of this object fails the same way.
  void Flush();
  // Deletes groups that hold one of global_descriptor / image_size but not both (left by a crash
  // during a flush or by foreign tools). Returns their names. Called by Open(kAppend).
  std::vector<std::string> RepairIncompleteGroups();

  // ---- attributes (root group, string values) ----------------------------------------------
  bool HasAttribute(const std::string& key) const;
  // Throws FormatError if missing. Reads variable- and fixed-length strings, and integer/float
  // scalars (formatted as text).
  std::string GetAttribute(const std::string& key) const;
  // Replaces the value (writers only).
  void SetAttribute(const std::string& key, const std::string& value);
  // Removes the attribute if present (writers only).
  void DeleteAttribute(const std::string& key);
  // All root attributes as text.
  std::map<std::string, std::string> Attributes() const;

  // Validates a name for writing; returns an empty string if fine, else the reason.
  static std::string CheckName(const std::string& name);

 private:
  DescriptorFile(std::string path, Mode mode);
  // DescriptorFileProbeOptions: reads `path` (`file_path`: the file itself) in a child process.
  // The structure the probe child read: the file's groups (sorted) with their dataset bits, and
  // where each descriptor's values lie. Used by a kRead file instead of walking the file again.
  struct ProbedStructure;
  // Returns the child's structure when it completed (nullptr if the probe is off, or the file was
  // probed before in this process); `identity` gets the file's (device, inode, size, mtime).
  static std::shared_ptr<const ProbedStructure> ProbeInChild(const std::string& path,
                                                             const std::string& file_path,
                                                             std::string* identity);
  // The probe child's work: checks everything the probe checks and writes the structure to `fd`.
  static void ProbeStructure(DescriptorFile* file, int fd);
  void OpenHandle(bool create);
  void CloseHandle() noexcept;

  std::string path_;       // as given (messages)
  std::string file_path_;  // the file itself (a symbolic link resolved): HDF5, journal, lock
  Mode mode_;
  int64_t file_id_ = -1;  // hid_t
  int64_t half_type_ = -1;  // hid_t of the h5py half type
  mutable bool links_checked_ = false;  // CheckLinks ran on this open file (ListNames)
  // ReadBlockLocated: a read-only descriptor of the file for pread (-1: not opened yet), whether
  // direct reads are possible at all (-1: not decided yet, 0: no, 1: yes), and the file's identity
  // when HDF5 opened it (direct reads stop if the path now names another file).
  std::shared_ptr<const ProbedStructure> probed_;
  mutable int raw_fd_ = -1;
  mutable int raw_state_ = -1;
  uint64_t file_device_ = 0;
  uint64_t file_inode_ = 0;
  bool RawReadsPossible() const;
  // probed_'s entry of `name`, or -1.
  int64_t ProbedIndex(const std::string& name) const;
};

// The one provenance check of descriptor caches (extract appending to a file, colmap_matcher's and
// revisitop_eval's caches): compares the attributes stored in `file` with `expected` (key, value).
// Keys whose expected value is empty, keys the file does not have, kAttrToolVersion and kAttrModel
// are not compared. Returns "" if compatible, else the first difference as
// "it was made with <key>=<stored>, this run uses <key>=<value>".
std::string ProvenanceMismatch(const DescriptorFile& file,
                               const std::vector<std::pair<std::string, std::string>>& expected);

// Throws FormatError "<path>: <what>: <ProvenanceMismatch>. <advice>" if there is a difference.
void CheckProvenance(const DescriptorFile& file, const std::vector<std::pair<std::string, std::string>>& expected,
                     const std::string& what, const std::string& advice);

}  // namespace megaloc
