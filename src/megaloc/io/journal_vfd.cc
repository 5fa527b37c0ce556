#include "megaloc/io/journal_vfd.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"

namespace megaloc {
namespace internal {
namespace {

constexpr uint64_t kPageSize = 4096;
[[maybe_unused]] constexpr int kDriverValue = 0x1a7;  // see MakeDriverClass
// Version 2 journals carry the identity of their file (JournalIdentity); version 1 journals (no
// identity) are treated as incomplete: never replayed, discarded by the next writer.
constexpr char kJournalMagic[8] = {'M', 'G', 'L', 'J', 'R', 'N', 'L', '2'};
constexpr char kCommitMagic[8] = {'C', 'O', 'M', 'M', 'I', 'T', 'T', 'D'};

uint64_t Fnv1a(const unsigned char* data, size_t size) {
  uint64_t hash = 14695981039346656037ull;
  for (size_t i = 0; i < size; ++i) {
    hash ^= data[i];
    hash *= 1099511628211ull;
  }
  return hash;
}

void AppendU64(std::string* out, uint64_t value) {
  out->append(reinterpret_cast<const char*>(&value), sizeof(value));
}

uint64_t ReadU64(const std::string& data, size_t offset) {
  uint64_t value;
  std::memcpy(&value, data.data() + offset, sizeof(value));
  return value;
}

bool WriteAll(int fd, const void* data, size_t size, uint64_t offset) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = pwrite(fd, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

// Reads up to `size` bytes; the part beyond the end of the file is zero-filled.
bool ReadAll(int fd, void* data, size_t size, uint64_t offset) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = pread(fd, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) {
      std::memset(p, 0, size);
      return true;
    }
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

void SyncDirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

// Jenkins' lookup3 "hashlittle" (byte-wise), the checksum of HDF5 metadata (superblock v2/v3).
uint32_t Lookup3(const unsigned char* k, size_t length, uint32_t initval) {
  auto rot = [](uint32_t x, int r) { return (x << r) | (x >> (32 - r)); };
  uint32_t a, b, c;
  a = b = c = 0xdeadbeefu + static_cast<uint32_t>(length) + initval;
  while (length > 12) {
    a += k[0] + (static_cast<uint32_t>(k[1]) << 8) + (static_cast<uint32_t>(k[2]) << 16) +
         (static_cast<uint32_t>(k[3]) << 24);
    b += k[4] + (static_cast<uint32_t>(k[5]) << 8) + (static_cast<uint32_t>(k[6]) << 16) +
         (static_cast<uint32_t>(k[7]) << 24);
    c += k[8] + (static_cast<uint32_t>(k[9]) << 8) + (static_cast<uint32_t>(k[10]) << 16) +
         (static_cast<uint32_t>(k[11]) << 24);
    a -= c; a ^= rot(c, 4);  c += b;
    b -= a; b ^= rot(a, 6);  a += c;
    c -= b; c ^= rot(b, 8);  b += a;
    a -= c; a ^= rot(c, 16); c += b;
    b -= a; b ^= rot(a, 19); a += c;
    c -= b; c ^= rot(b, 4);  b += a;
    length -= 12;
    k += 12;
  }
  switch (length) {
    case 12: c += static_cast<uint32_t>(k[11]) << 24; [[fallthrough]];
    case 11: c += static_cast<uint32_t>(k[10]) << 16; [[fallthrough]];
    case 10: c += static_cast<uint32_t>(k[9]) << 8; [[fallthrough]];
    case 9: c += k[8]; [[fallthrough]];
    case 8: b += static_cast<uint32_t>(k[7]) << 24; [[fallthrough]];
    case 7: b += static_cast<uint32_t>(k[6]) << 16; [[fallthrough]];
    case 6: b += static_cast<uint32_t>(k[5]) << 8; [[fallthrough]];
    case 5: b += k[4]; [[fallthrough]];
    case 4: a += static_cast<uint32_t>(k[3]) << 24; [[fallthrough]];
    case 3: a += static_cast<uint32_t>(k[2]) << 16; [[fallthrough]];
    case 2: a += static_cast<uint32_t>(k[1]) << 8; [[fallthrough]];
    case 1: a += k[0]; break;
    case 0: return c;
  }
  c ^= b; c -= rot(b, 14);
  a ^= c; a -= rot(c, 11);
  b ^= a; b -= rot(a, 25);
  c ^= b; c -= rot(b, 16);
  a ^= c; a -= rot(c, 4);
  b ^= a; b -= rot(a, 14);
  c ^= b; c -= rot(b, 24);
  return c;
}

// Superblocks v3 (files written with libver "latest", e.g. by hloc/h5py) carry "open for writing"
// flags that HDF5 sets while a writer has the file open; a killed writer would leave them set and
// every later open would fail. This driver never lets them reach the disk, and clears them when
// reading (we hold an exclusive lock instead), fixing the superblock checksum. `data` holds bytes
// [addr, addr + size) of the file.
void ClearSuperblockWriteFlags(unsigned char* data, uint64_t addr, size_t size) {
  static const unsigned char kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  if (addr != 0 || size < 12 || std::memcmp(data, kSignature, 8) != 0 || data[8] < 2) return;
  if (data[11] == 0) return;
  data[11] = 0;
  const size_t offsets = data[9];
  const size_t checksum_at = 12 + 4 * offsets;
  if (size >= checksum_at + 4) {
    const uint32_t checksum = Lookup3(data, checksum_at, 0);
    std::memcpy(data + checksum_at, &checksum, 4);  // little-endian host (x86-64, aarch64)
  }
}

// File systems without flock support (some network file systems): run unlocked, as HDF5 does
// with HDF5_USE_FILE_LOCKING=FALSE.
bool LockingUnsupported(int error) { return error == ENOSYS || error == ENOLCK || error == EOPNOTSUPP; }

struct Page {
  unsigned char data[kPageSize];
  uint64_t valid = 0;  // bytes of the page that exist (file content or written)
};

struct JournalFile {
  H5FD_t pub;  // must be first: HDF5 sees a H5FD_t*
  int fd = -1;
  std::string path;
  bool writable = false;
  haddr_t eoa = 0;
  haddr_t eof = 0;              // logical end of file (writes, truncate requests)
  uint64_t committed_size = 0;  // file size at the last commit
  std::map<uint64_t, Page> overlay;
  dev_t device = 0;
  ino_t inode = 0;
  // The first write error (e.g. "No space left on device"). From then on nothing reaches the disk:
  // writes, flushes and the close succeed without effect, so HDF5 can still close the file (it
  // crashes at exit when a close fails), and the file keeps its last commit, as after a kill.
  // Writers learn about it through JournalWriteError().
  bool failed = false;
};

// JournalWriteError() registry: path -> first write error of its current writer.
std::mutex& ErrorMutex() {
  static std::mutex mutex;
  return mutex;
}
std::map<std::string, std::string>& WriteErrors() {
  static std::map<std::string, std::string> errors;
  return errors;
}

// Records the first write error of `f` (errno describes it); returns false.
bool Fail(JournalFile* f, const char* what) {
  const std::string reason = std::string(what) + ": " + std::strerror(errno != 0 ? errno : EIO);
  if (!f->failed) {
    f->failed = true;
    std::lock_guard<std::mutex> lock(ErrorMutex());
    WriteErrors().emplace(f->path, reason);
  }
  return false;
}

// The identity of a file a journal belongs to: device and inode, the file's size when the journal
// was written and after its replay (the only two sizes the file can have while the journal is
// pending), and a checksum of up to 16 pages that the replay does not change (pages below both sizes
// that are not in the journal). A journal whose identity does not match the file (the file was
// replaced or copied over since) is never applied.
struct JournalIdentity {
  uint64_t device = 0;
  uint64_t inode = 0;
  uint64_t size_before = 0;
  std::vector<uint64_t> pages;  // sampled page indices
  uint64_t pages_hash = 0;
};

constexpr size_t kMaxSampledPages = 16;

bool HashPages(int fd, const std::vector<uint64_t>& pages, uint64_t* hash) {
  std::string data;
  unsigned char page[kPageSize];
  for (uint64_t index : pages) {
    if (!ReadAll(fd, page, kPageSize, index * kPageSize)) return false;
    data.append(reinterpret_cast<const char*>(page), kPageSize);
  }
  *hash = Fnv1a(reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return true;
}

// Identity of the file behind `fd` for a journal holding `overlay` and `final_size`.
bool MakeIdentity(int fd, const std::map<uint64_t, Page>& overlay, uint64_t final_size,
                  JournalIdentity* identity) {
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  identity->device = static_cast<uint64_t>(st.st_dev);
  identity->inode = static_cast<uint64_t>(st.st_ino);
  identity->size_before = static_cast<uint64_t>(st.st_size);
  const uint64_t stable_pages = std::min<uint64_t>(identity->size_before, final_size) / kPageSize;
  std::vector<uint64_t> candidates;
  for (uint64_t index = 0; index < stable_pages && candidates.size() < kMaxSampledPages / 2; ++index) {
    if (!overlay.count(index)) candidates.push_back(index);
  }
  std::vector<uint64_t> tail;
  for (uint64_t index = stable_pages; index > 0 && tail.size() < kMaxSampledPages / 2; --index) {
    const uint64_t page = index - 1;
    if (!candidates.empty() && page <= candidates.back()) break;
    if (!overlay.count(page)) tail.push_back(page);
  }
  candidates.insert(candidates.end(), tail.rbegin(), tail.rend());
  identity->pages = candidates;
  return HashPages(fd, identity->pages, &identity->pages_hash);
}

// True if the journal with `identity` and `final_size` belongs to the file behind `fd`.
bool IdentityMatches(int fd, const JournalIdentity& identity, uint64_t final_size) {
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  if (static_cast<uint64_t>(st.st_dev) != identity.device ||
      static_cast<uint64_t>(st.st_ino) != identity.inode) {
    return false;
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size != identity.size_before && size != final_size) return false;
  uint64_t hash = 0;
  return HashPages(fd, identity.pages, &hash) && hash == identity.pages_hash;
}

// A complete journal, parsed (the page data stays in the journal text).
struct ParsedJournal {
  uint64_t final_size = 0;
  JournalIdentity identity;
  struct PageRef {
    uint64_t address;
    uint64_t length;
    size_t offset;  // of the data in the journal text
  };
  std::vector<PageRef> pages;
};

// Layout: magic(8) final_size(8) num_pages(8) device(8) inode(8) size_before(8) num_sampled(8)
// sampled_index(8)*num_sampled sampled_hash(8) {address(8) length(8) data(length)}*num_pages
// checksum(8, FNV-1a of everything before) "COMMITTD".
bool ParseJournal(const std::string& journal, ParsedJournal* out) {
  if (journal.size() < 24 + 16 || std::memcmp(journal.data(), kJournalMagic, 8) != 0 ||
      std::memcmp(journal.data() + journal.size() - 8, kCommitMagic, 8) != 0) {
    return false;
  }
  const size_t body = journal.size() - 16;
  if (ReadU64(journal, body) != Fnv1a(reinterpret_cast<const unsigned char*>(journal.data()), body)) {
    return false;
  }
  out->final_size = ReadU64(journal, 8);
  const uint64_t num_pages = ReadU64(journal, 16);
  size_t offset = 24;
  if (offset + 32 > body) return false;
  out->identity.device = ReadU64(journal, offset);
  out->identity.inode = ReadU64(journal, offset + 8);
  out->identity.size_before = ReadU64(journal, offset + 16);
  const uint64_t num_sampled = ReadU64(journal, offset + 24);
  offset += 32;
  if (num_sampled > kMaxSampledPages || offset + 8 * (num_sampled + 1) > body) return false;
  for (uint64_t i = 0; i < num_sampled; ++i, offset += 8) {
    out->identity.pages.push_back(ReadU64(journal, offset));
  }
  out->identity.pages_hash = ReadU64(journal, offset);
  offset += 8;
  for (uint64_t i = 0; i < num_pages; ++i) {
    if (offset + 16 > body) return false;
    const uint64_t address = ReadU64(journal, offset);
    const uint64_t length = ReadU64(journal, offset + 8);
    offset += 16;
    if (length > body - offset) return false;
    out->pages.push_back({address, length, offset});
    offset += length;
  }
  return true;
}

// Applies a parsed journal to `fd`. Throws IoError (with the system's reason) if a write fails.
void ApplyJournal(const std::string& journal, const ParsedJournal& parsed, int fd) {
  for (const ParsedJournal::PageRef& page : parsed.pages) {
    if (!WriteAll(fd, journal.data() + page.offset, page.length, page.address)) {
      MEGALOC_THROW(IoError, "cannot apply the journal: " << std::strerror(errno));
    }
  }
  if (ftruncate(fd, static_cast<off_t>(parsed.final_size)) != 0 || fsync(fd) != 0) {
    MEGALOC_THROW(IoError, "cannot apply the journal: " << std::strerror(errno));
  }
}

// Replays or discards `<path>.journal`; the caller holds the exclusive lock on `fd` (the file,
// opened read-write if `writable`). Returns true if a journal was applied.
bool RecoverLocked(int fd, bool writable, const std::string& path, bool discard_incomplete) {
  const std::string journal_path = JournalPath(path);
  if (!FileExists(journal_path)) return false;
  std::string journal;
  try {
    journal = ReadFileToString(journal_path);
  } catch (const IoError&) {
    return false;
  }
  ParsedJournal parsed;
  const bool complete = ParseJournal(journal, &parsed);
  // A complete journal of another file (this one was replaced or copied over since) is as useless
  // as an incomplete one: never applied.
  if (!complete || !IdentityMatches(fd, parsed.identity, parsed.final_size)) {
    if (discard_incomplete) unlink(journal_path.c_str());
    return false;
  }
  if (!writable) {
    MEGALOC_THROW(IoError, path << ": an interrupted write left " << journal_path
                                << ", but the file cannot be opened for writing to finish it");
  }
  try {
    ApplyJournal(journal, parsed, fd);
  } catch (const IoError& e) {
    MEGALOC_THROW(IoError, path << ": " << e.what());
  }
  unlink(journal_path.c_str());
  return true;
}

// Makes the overlay and the logical size durable (see the header).
bool Commit(JournalFile* f) {
  if (!f->writable || f->fd < 0 || f->failed) return true;
  struct stat st;
  if (fstat(f->fd, &st) != 0) return Fail(f, "cannot commit");
  const uint64_t actual = static_cast<uint64_t>(st.st_size);
  const uint64_t final_size = f->eof;
  if (f->overlay.empty() && final_size >= actual) {
    // Only fresh space changed: nothing committed is overwritten.
    if (final_size > actual && ftruncate(f->fd, static_cast<off_t>(final_size)) != 0) {
      return Fail(f, "cannot extend the file");
    }
    if (fdatasync(f->fd) != 0) return Fail(f, "cannot sync the file");
    f->committed_size = final_size;
    return true;
  }
  // 1. New raw data and metadata in fresh space must be durable before anything points to it.
  if (fdatasync(f->fd) != 0) return Fail(f, "cannot sync the file");
  // 2. The redo journal, tied to this file.
  JournalIdentity identity;
  if (!MakeIdentity(f->fd, f->overlay, final_size, &identity)) return Fail(f, "cannot read the file");
  std::string journal(kJournalMagic, 8);
  AppendU64(&journal, final_size);
  AppendU64(&journal, f->overlay.size());
  AppendU64(&journal, identity.device);
  AppendU64(&journal, identity.inode);
  AppendU64(&journal, identity.size_before);
  AppendU64(&journal, identity.pages.size());
  for (uint64_t index : identity.pages) AppendU64(&journal, index);
  AppendU64(&journal, identity.pages_hash);
  for (const auto& [index, page] : f->overlay) {
    AppendU64(&journal, index * kPageSize);
    AppendU64(&journal, page.valid);
    journal.append(reinterpret_cast<const char*>(page.data), page.valid);
  }
  AppendU64(&journal, Fnv1a(reinterpret_cast<const unsigned char*>(journal.data()), journal.size()));
  journal.append(kCommitMagic, 8);
  const std::string journal_path = JournalPath(f->path);
  const int jfd = open(journal_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (jfd < 0) return Fail(f, "cannot create the journal");
  const bool written = WriteAll(jfd, journal.data(), journal.size(), 0) && fsync(jfd) == 0;
  const int write_error = errno;
  close(jfd);
  if (!written) {
    unlink(journal_path.c_str());
    errno = write_error;
    return Fail(f, "cannot write the journal");
  }
  SyncDirectoryOf(journal_path);
  // Test hook: die between the journal and its application (tests/io replay test).
  const char* crash_hook = std::getenv("MEGALOC_TEST_CRASH_AFTER_JOURNAL");
  if (crash_hook != nullptr && std::strcmp(crash_hook, "1") == 0) raise(SIGKILL);
  // 3. Apply, 4. forget the journal.
  // (A failure from here on leaves the complete journal: the next open replays it.)
  for (const auto& [index, page] : f->overlay) {
    if (!WriteAll(f->fd, page.data, page.valid, index * kPageSize)) {
      return Fail(f, "cannot apply the journal");
    }
  }
  if (ftruncate(f->fd, static_cast<off_t>(final_size)) != 0 || fdatasync(f->fd) != 0) {
    return Fail(f, "cannot apply the journal");
  }
  unlink(journal_path.c_str());
  f->overlay.clear();
  f->committed_size = final_size;
  return true;
}

// ---- driver callbacks -------------------------------------------------------------------------

H5FD_t* DriverOpen(const char* name, unsigned flags, hid_t, haddr_t maxaddr) {
  if (name == nullptr || *name == '\0' || maxaddr == 0 || maxaddr == HADDR_UNDEF) return nullptr;
  const bool writable = (flags & H5F_ACC_RDWR) != 0;
  int o_flags = writable ? O_RDWR : O_RDONLY;
  if (flags & H5F_ACC_TRUNC) o_flags |= O_TRUNC;
  if (flags & H5F_ACC_CREAT) o_flags |= O_CREAT;
  if (flags & H5F_ACC_EXCL) o_flags |= O_EXCL;
  const int fd = open(name, o_flags | O_CLOEXEC, 0666);
  if (fd < 0) return nullptr;
  if (writable) {
    // One writer at a time; recover or discard a journal only while holding the lock.
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 && !LockingUnsupported(errno)) {
      close(fd);
      return nullptr;
    }
    try {
      if (flags & H5F_ACC_TRUNC) {
        unlink(JournalPath(name).c_str());
      } else {
        RecoverLocked(fd, /*writable=*/true, name, /*discard_incomplete=*/true);
      }
    } catch (const std::exception&) {
      close(fd);
      return nullptr;
    }
    std::lock_guard<std::mutex> lock(ErrorMutex());
    WriteErrors().erase(name);  // a new writer starts without errors
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return nullptr;
  }
  auto* f = new (std::nothrow) JournalFile();
  if (f == nullptr) {
    close(fd);
    return nullptr;
  }
  std::memset(&f->pub, 0, sizeof(f->pub));
  f->fd = fd;
  f->path = name;
  f->writable = writable;
  f->eof = static_cast<haddr_t>(st.st_size);
  f->committed_size = static_cast<uint64_t>(st.st_size);
  f->device = st.st_dev;
  f->inode = st.st_ino;
  return &f->pub;
}

herr_t DriverClose(H5FD_t* file) {
  auto* f = reinterpret_cast<JournalFile*>(file);
  // A failed commit is recorded (JournalWriteError) but not returned: HDF5 frees its file object
  // even when the driver's close fails, yet keeps the file id, and closes it again in
  // H5_term_library (a crash at exit). The file keeps its last commit.
  Commit(f);
  close(f->fd);
  delete f;
  return 0;
}

int DriverCmp(const H5FD_t* a, const H5FD_t* b) {
  const auto* fa = reinterpret_cast<const JournalFile*>(a);
  const auto* fb = reinterpret_cast<const JournalFile*>(b);
  if (fa->device != fb->device) return fa->device < fb->device ? -1 : 1;
  if (fa->inode != fb->inode) return fa->inode < fb->inode ? -1 : 1;
  return 0;
}

herr_t DriverQuery(const H5FD_t*, unsigned long* flags) {
  if (flags != nullptr) {
    *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA | H5FD_FEAT_DATA_SIEVE |
             H5FD_FEAT_AGGREGATE_SMALLDATA;
  }
  return 0;
}

haddr_t DriverGetEoa(const H5FD_t* file, H5FD_mem_t) {
  return reinterpret_cast<const JournalFile*>(file)->eoa;
}

herr_t DriverSetEoa(H5FD_t* file, H5FD_mem_t, haddr_t addr) {
  reinterpret_cast<JournalFile*>(file)->eoa = addr;
  return 0;
}

haddr_t DriverGetEof(const H5FD_t* file, H5FD_mem_t) {
  return reinterpret_cast<const JournalFile*>(file)->eof;
}

herr_t DriverGetHandle(H5FD_t* file, hid_t, void** handle) {
  if (handle == nullptr) return -1;
  *handle = &reinterpret_cast<JournalFile*>(file)->fd;
  return 0;
}

bool RawRead(JournalFile* f, haddr_t addr, size_t size, unsigned char* out) {
  if (f->overlay.empty()) return ReadAll(f->fd, out, size, addr);
  while (size > 0) {
    const uint64_t index = addr / kPageSize;
    const uint64_t in_page = addr % kPageSize;
    size_t n = std::min<uint64_t>(size, kPageSize - in_page);
    const auto it = f->overlay.find(index);
    if (it != f->overlay.end()) {
      std::memcpy(out, it->second.data + in_page, n);
    } else {
      // Read up to the next overlay page in one call.
      const auto next = f->overlay.upper_bound(index);
      const uint64_t limit = next == f->overlay.end() ? UINT64_MAX : next->first * kPageSize;
      n = static_cast<size_t>(std::min<uint64_t>(size, limit - addr));
      if (!ReadAll(f->fd, out, n, addr)) return false;
    }
    out += n;
    addr += n;
    size -= n;
  }
  return true;
}

// Largest superblock v2/v3 (8-byte offsets): 12 + 4 * 8 + 4 = 48 bytes.
constexpr uint64_t kSuperblockBytes = 48;

herr_t DriverRead(H5FD_t* file, H5FD_mem_t, hid_t, haddr_t addr, size_t size, void* buffer) {
  auto* f = reinterpret_cast<JournalFile*>(file);
  if (addr == HADDR_UNDEF) return -1;
  auto* out = static_cast<unsigned char*>(buffer);
  if (!RawRead(f, addr, size, out)) return -1;
  if (addr < kSuperblockBytes && size > 0) {
    // HDF5 may read the superblock in pieces: patch the whole header, copy the overlap.
    unsigned char head[kSuperblockBytes];
    if (!RawRead(f, 0, kSuperblockBytes, head)) return -1;
    ClearSuperblockWriteFlags(head, 0, kSuperblockBytes);
    const uint64_t end = std::min<uint64_t>(addr + size, kSuperblockBytes);
    std::memcpy(out, head + addr, end - addr);
  }
  return 0;
}

herr_t DriverWrite(H5FD_t* file, H5FD_mem_t, hid_t, haddr_t addr, size_t size, const void* buffer) {
  auto* f = reinterpret_cast<JournalFile*>(file);
  if (addr == HADDR_UNDEF || !f->writable) return -1;
  if (f->failed) return 0;  // dropped: see JournalFile::failed
  const auto* in = static_cast<const unsigned char*>(buffer);
  std::vector<unsigned char> superblock;
  if (addr == 0 && size >= 12) {  // never let "open for writing" flags reach the disk
    superblock.assign(in, in + size);
    ClearSuperblockWriteFlags(superblock.data(), addr, size);
    in = superblock.data();
  }
  const uint64_t end = addr + size;
  // Pages that hold committed bytes are overlaid; pages entirely beyond are fresh space.
  const uint64_t boundary = (f->committed_size + kPageSize - 1) / kPageSize * kPageSize;
  uint64_t pos = addr;
  while (pos < end && pos < boundary) {
    const uint64_t index = pos / kPageSize;
    const uint64_t in_page = pos % kPageSize;
    const uint64_t n = std::min<uint64_t>(end - pos, kPageSize - in_page);
    auto it = f->overlay.find(index);
    if (it == f->overlay.end()) {
      it = f->overlay.emplace(index, Page()).first;
      Page& page = it->second;
      if (!ReadAll(f->fd, page.data, kPageSize, index * kPageSize)) {
        f->overlay.erase(it);
        Fail(f, "cannot read the file");
        return -1;
      }
      page.valid = std::min<uint64_t>(kPageSize, f->committed_size - index * kPageSize);
    }
    std::memcpy(it->second.data + in_page, in + (pos - addr), n);
    it->second.valid = std::max<uint64_t>(it->second.valid, in_page + n);
    pos += n;
  }
  if (pos < end && !WriteAll(f->fd, in + (pos - addr), end - pos, pos)) {
    Fail(f, "cannot write");
    return -1;
  }
  f->eof = std::max<haddr_t>(f->eof, end);
  return 0;
}

herr_t DriverFlush(H5FD_t* file, hid_t, hbool_t) {
  // The first failure is returned (H5Fflush fails); later calls succeed without effect (see
  // JournalFile::failed), so a close after it does not fail.
  auto* f = reinterpret_cast<JournalFile*>(file);
  if (f->failed) return 0;
  return Commit(f) ? 0 : -1;
}

herr_t DriverTruncate(H5FD_t* file, hid_t, hbool_t) {
  auto* f = reinterpret_cast<JournalFile*>(file);
  // Deferred to the next commit (shrinking the file now could cut committed data).
  if (f->writable) f->eof = f->eoa;
  return 0;
}

herr_t DriverLock(H5FD_t* file, hbool_t rw) {
  auto* f = reinterpret_cast<JournalFile*>(file);
  if (flock(f->fd, (rw ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 && !LockingUnsupported(errno)) return -1;
  return 0;
}

herr_t DriverUnlock(H5FD_t* file) {
  auto* f = reinterpret_cast<JournalFile*>(file);
  if (flock(f->fd, LOCK_UN) != 0 && !LockingUnsupported(errno)) return -1;
  return 0;
}

H5FD_class_t MakeDriverClass() {
  H5FD_class_t cls;
  std::memset(&cls, 0, sizeof(cls));
#ifdef MEGALOC_HDF5_HAVE_FD_CLASS_VERSION
  // HDF5 >= 1.13 refuses a class without its struct version and a driver value; values 256-511 are
  // HDF5's range for drivers that are not registered with The HDF Group.
  cls.version = H5FD_CLASS_VERSION;
  cls.value = static_cast<H5FD_class_value_t>(kDriverValue);
#endif
  cls.name = "megaloc_journal";
  cls.maxaddr = (static_cast<haddr_t>(1) << 62) - 1;
  cls.fc_degree = H5F_CLOSE_WEAK;
  cls.open = DriverOpen;
  cls.close = DriverClose;
  cls.cmp = DriverCmp;
  cls.query = DriverQuery;
  cls.get_eoa = DriverGetEoa;
  cls.set_eoa = DriverSetEoa;
  cls.get_eof = DriverGetEof;
  cls.get_handle = DriverGetHandle;
  cls.read = DriverRead;
  cls.write = DriverWrite;
  cls.flush = DriverFlush;
  cls.truncate = DriverTruncate;
  cls.lock = DriverLock;
  cls.unlock = DriverUnlock;
  const H5FD_mem_t map[H5FD_MEM_NTYPES] = H5FD_FLMAP_DICHOTOMY;
  std::copy(map, map + H5FD_MEM_NTYPES, cls.fl_map);
  return cls;
}

}  // namespace

std::string JournalPath(const std::string& path) { return path + ".journal"; }

int64_t JournalDriverId() {
  static const H5FD_class_t cls = MakeDriverClass();
  static const hid_t id = H5FDregister(&cls);
  if (id < 0) MEGALOC_THROW(Error, "HDF5: cannot register the journaling file driver");
  return id;
}

void SetJournalDriver(int64_t fapl) {
  if (H5Pset_driver(fapl, JournalDriverId(), nullptr) < 0) {
    MEGALOC_THROW(Error, "HDF5: cannot select the journaling file driver");
  }
}

bool RecoverJournal(const std::string& path, bool discard_incomplete) {
  if (!FileExists(JournalPath(path))) return false;
  bool writable = true;
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
    writable = false;
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) {
    MEGALOC_THROW(IoError, path << ": an interrupted write left " << JournalPath(path)
                                << ", but the file cannot be opened to finish it: "
                                << std::strerror(errno));
  }
  // Never touch a journal a live writer owns: it may be applying it right now.
  if (flock(fd, LOCK_EX | LOCK_NB) != 0 && !LockingUnsupported(errno)) {
    close(fd);
    return false;
  }
  bool applied = false;
  try {
    applied = RecoverLocked(fd, writable, path, discard_incomplete);
  } catch (...) {
    close(fd);
    throw;
  }
  close(fd);  // releases the lock
  return applied;
}

std::string JournalWriteError(const std::string& path) {
  std::lock_guard<std::mutex> lock(ErrorMutex());
  const auto it = WriteErrors().find(path);
  return it == WriteErrors().end() ? std::string() : it->second;
}

}  // namespace internal
}  // namespace megaloc
