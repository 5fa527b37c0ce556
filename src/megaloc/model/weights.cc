#include "megaloc/model/weights.h"

#include <caffe2/serialize/inline_container.h>
#include <c10/util/Exception.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "megaloc/model/megaloc_net.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/sha256.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {

namespace fs = std::filesystem;

namespace {

std::string ShapeString(at::IntArrayRef sizes) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < sizes.size(); ++i) out << (i ? "," : "") << sizes[i];
  out << "]";
  return out.str();
}

uint64_t FileSizeOrThrow(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) MEGALOC_THROW(IoError, path << ": no such file");
  if (!fs::is_regular_file(path, ec)) MEGALOC_THROW(IoError, path << ": not a regular file");
  const uint64_t size = fs::file_size(path, ec);
  if (ec) MEGALOC_THROW(IoError, path << ": cannot read the file size (" << ec.message() << ")");
  return size;
}

// ------------------------------------------------------------------------------------------------
// zip central directory (record sizes before reading, against zip bombs)

// Uncompressed size of each record of a zip archive, keyed by the name without its top-level
// folder (as PyTorchStreamReader names records). Handles zip64. Throws FormatError.
std::unordered_map<std::string, uint64_t> ZipRecordSizes(const std::string& path) {
  const uint64_t file_size = fs::file_size(path);
  std::ifstream file(path, std::ios::binary);
  if (!file) MEGALOC_THROW(IoError, path << ": cannot open file");
  auto bad = [&path](const std::string& why) {
    MEGALOC_THROW(FormatError, path << ": not a readable torch.save zip archive (" << why << ")");
  };
  auto read_at = [&](uint64_t offset, uint64_t n) {
    if (offset > file_size || n > file_size - offset) bad("central directory out of range");
    std::string bytes(static_cast<size_t>(n), '\0');
    file.seekg(static_cast<std::streamoff>(offset));
    if (!file.read(bytes.data(), static_cast<std::streamsize>(n))) bad("read error");
    return bytes;
  };
  auto le = [](const std::string& bytes, size_t at, int n) {
    uint64_t value = 0;
    for (int i = n - 1; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
    return value;
  };
  const uint64_t tail_size = std::min<uint64_t>(file_size, 22 + 65535);
  const std::string tail = read_at(file_size - tail_size, tail_size);
  size_t eocd = std::string::npos;
  for (size_t i = tail.size() >= 22 ? tail.size() - 22 + 1 : 0; i-- > 0;) {
    if (le(tail, i, 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) bad("no end of central directory");
  uint64_t num_entries = le(tail, eocd + 10, 2);
  uint64_t directory_size = le(tail, eocd + 12, 4);
  uint64_t directory_offset = le(tail, eocd + 16, 4);
  if (num_entries == 0xFFFF || directory_size == 0xFFFFFFFF || directory_offset == 0xFFFFFFFF) {
    const uint64_t eocd_offset = file_size - tail_size + eocd;
    if (eocd_offset < 20) bad("no zip64 locator");
    const std::string locator = read_at(eocd_offset - 20, 20);
    if (le(locator, 0, 4) != 0x07064b50) bad("no zip64 locator");
    const std::string eocd64 = read_at(le(locator, 8, 8), 56);
    if (le(eocd64, 0, 4) != 0x06064b50) bad("bad zip64 end of central directory");
    num_entries = le(eocd64, 32, 8);
    directory_size = le(eocd64, 40, 8);
    directory_offset = le(eocd64, 48, 8);
  }
  const std::string directory = read_at(directory_offset, directory_size);
  std::unordered_map<std::string, uint64_t> sizes;
  size_t at = 0;
  for (uint64_t entry = 0; entry < num_entries; ++entry) {
    if (directory.size() - at < 46 || le(directory, at, 4) != 0x02014b50) {
      bad("bad central directory entry");
    }
    uint64_t compressed = le(directory, at + 20, 4);
    uint64_t uncompressed = le(directory, at + 24, 4);
    const size_t name_size = le(directory, at + 28, 2);
    const size_t extra_size = le(directory, at + 30, 2);
    const size_t comment_size = le(directory, at + 32, 2);
    if (directory.size() - at - 46 < name_size + extra_size + comment_size) {
      bad("bad central directory entry");
    }
    std::string name = directory.substr(at + 46, name_size);
    // zip64 extended information: the 64-bit sizes replace the saturated 32-bit ones, in order.
    for (size_t x = at + 46 + name_size; x + 4 <= at + 46 + name_size + extra_size;) {
      const uint64_t id = le(directory, x, 2);
      const size_t length = le(directory, x + 2, 2);
      if (x + 4 + length > at + 46 + name_size + extra_size) break;
      if (id == 0x0001) {
        size_t field = x + 4;
        if (uncompressed == 0xFFFFFFFF && field + 8 <= x + 4 + length) {
          uncompressed = le(directory, field, 8);
          field += 8;
        }
        if (compressed == 0xFFFFFFFF && field + 8 <= x + 4 + length) {
          compressed = le(directory, field, 8);
        }
      }
      x += 4 + length;
    }
    const size_t slash = name.find('/');
    if (slash != std::string::npos) name = name.substr(slash + 1);
    sizes[name] = uncompressed;
    at += 46 + name_size + extra_size + comment_size;
  }
  return sizes;
}

// ------------------------------------------------------------------------------------------------
// safetensors

struct SafetensorsDtype {
  const char* name;
  at::ScalarType type;
  int size;
};

const SafetensorsDtype* FindSafetensorsDtype(const std::string& name) {
  static const SafetensorsDtype kDtypes[] = {
      {"F32", at::kFloat, 4},  {"F16", at::kHalf, 2}, {"BF16", at::kBFloat16, 2},
      {"F64", at::kDouble, 8}, {"I64", at::kLong, 8}, {"I32", at::kInt, 4},
      {"I16", at::kShort, 2},  {"I8", at::kChar, 1},  {"U8", at::kByte, 1},
      {"BOOL", at::kBool, 1},
  };
  for (const auto& dtype : kDtypes) {
    if (name == dtype.name) return &dtype;
  }
  return nullptr;
}

const char* SafetensorsDtypeName(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "F32";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kDouble: return "F64";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kShort: return "I16";
    case at::kChar: return "I8";
    case at::kByte: return "U8";
    case at::kBool: return "BOOL";
    default: return nullptr;
  }
}

// Number of NaN/Inf elements of a floating tensor (0 for integer tensors). Float32 contiguous CPU
// tensors are scanned in place, without a temporary mask.
int64_t CountNonFinite(const at::Tensor& tensor) {
  if (!at::isFloatingType(tensor.scalar_type())) return 0;
  if (tensor.scalar_type() == at::kFloat && tensor.is_contiguous() && tensor.device().is_cpu()) {
    const float* data = tensor.data_ptr<float>();
    int64_t count = 0;
    for (int64_t i = 0, n = tensor.numel(); i < n; ++i) count += !std::isfinite(data[i]);
    return count;
  }
  return at::isfinite(tensor).logical_not().sum().item<int64_t>();
}

at::Tensor ToFloatIfFloating(const at::Tensor& tensor) {
  if (at::isFloatingType(tensor.scalar_type()) && tensor.scalar_type() != at::kFloat) {
    return tensor.to(at::kFloat);
  }
  return tensor;
}

// ------------------------------------------------------------------------------------------------
// Minimal pickle interpreter for torch.save state dicts (protocols 2-5, the opcodes Python's
// pickler emits for dicts/OrderedDicts of tensors).

struct PyObject;
using PyRef = std::shared_ptr<PyObject>;

struct PyObject {
  enum class Kind { kNone, kBool, kInt, kFloat, kString, kBytes, kTuple, kList, kDict, kGlobal,
                    kTensor, kStorage, kOther };
  Kind kind = Kind::kNone;
  int64_t int_value = 0;
  double float_value = 0.0;
  std::string text;  // string/bytes value, or "module.name" of a global / other object
  std::vector<PyRef> items;
  std::vector<std::pair<PyRef, PyRef>> dict;
  at::Tensor tensor;  // kTensor, or the 1-D storage of kStorage
  int depth = 0;      // container nesting below this object, as built (see PickleReader::Nest)
};

// Deepest container nesting accepted in data.pkl (a state dict nests < 10 levels).
constexpr int kMaxPickleDepth = 1000;
// Largest data.pkl accepted (uncompressed); the pickle holds names and shapes, not tensor data.
constexpr uint64_t kMaxPickleBytes = uint64_t{256} << 20;

PyRef MakeObject(PyObject::Kind kind) {
  auto object = std::make_shared<PyObject>();
  object->kind = kind;
  return object;
}

class PickleReader {
 public:
  PickleReader(const std::string& path, const char* data, size_t size,
               caffe2::serialize::PyTorchStreamReader* archive,
               const std::unordered_map<std::string, uint64_t>* record_sizes)
      : path_(path), data_(data), size_(size), archive_(archive), record_sizes_(record_sizes) {}

  // Unlinks every container made while parsing: objects built by the pickle may nest millions of
  // levels deep (recursive destruction would overflow the stack) or refer to themselves through
  // the memo (which shared_ptr alone would leak). Results taken from Run() must be used first.
  ~PickleReader() {
    for (const PyRef& object : containers_) {
      object->items.clear();
      object->dict.clear();
    }
  }

  PyRef Run() {
    while (true) {
      const size_t opcode_pos = pos_;
      const uint8_t op = ReadU8();
      switch (op) {
        case 0x80: ReadU8(); break;                      // PROTO
        case 0x95: Skip(8); break;                       // FRAME
        case '(': marks_.push_back(stack_.size()); break;  // MARK
        case '.': {                                      // STOP
          if (stack_.empty()) Fail("empty stack at STOP");
          return stack_.back();
        }
        case 'N': Push(MakeObject(PyObject::Kind::kNone)); break;
        case 0x88: case 0x89: {                          // NEWTRUE / NEWFALSE
          auto object = MakeObject(PyObject::Kind::kBool);
          object->int_value = op == 0x88;
          Push(object);
          break;
        }
        case 'J': PushInt(static_cast<int32_t>(ReadLe(4))); break;  // BININT
        case 'K': PushInt(ReadU8()); break;                          // BININT1
        case 'M': PushInt(static_cast<int64_t>(ReadLe(2))); break;   // BININT2
        case 0x8a: {                                                 // LONG1
          const int n = ReadU8();
          if (n > 8) Fail("integer too large");
          uint64_t value = 0;
          for (int i = 0; i < n; ++i) value |= static_cast<uint64_t>(ReadU8()) << (8 * i);
          if (n > 0 && n < 8 && (value >> (8 * n - 1)) & 1) value |= ~uint64_t{0} << (8 * n);
          PushInt(static_cast<int64_t>(value));
          break;
        }
        case 'G': {                                      // BINFLOAT (big-endian double)
          uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | ReadU8();
          auto object = MakeObject(PyObject::Kind::kFloat);
          std::memcpy(&object->float_value, &bits, 8);
          Push(object);
          break;
        }
        case 'X': PushString(ReadLe(4), PyObject::Kind::kString); break;     // BINUNICODE
        case 0x8c: PushString(ReadU8(), PyObject::Kind::kString); break;     // SHORT_BINUNICODE
        case 0x8d: PushString(ReadLe(8), PyObject::Kind::kString); break;    // BINUNICODE8
        case 'U': PushString(ReadU8(), PyObject::Kind::kString); break;      // SHORT_BINSTRING
        case 'T': PushString(ReadLe(4), PyObject::Kind::kString); break;     // BINSTRING
        case 'C': PushString(ReadU8(), PyObject::Kind::kBytes); break;       // SHORT_BINBYTES
        case 'B': PushString(ReadLe(4), PyObject::Kind::kBytes); break;      // BINBYTES
        case ')': Push(Container(PyObject::Kind::kTuple)); break;           // EMPTY_TUPLE
        case 't': {                                                          // TUPLE
          auto object = Container(PyObject::Kind::kTuple);
          object->items = PopToMark();
          NestAll(*object, object->items);
          Push(object);
          break;
        }
        case 0x85: case 0x86: case 0x87: {                                   // TUPLE1..3
          const size_t n = op - 0x84;
          if (stack_.size() < n) Fail("stack underflow");
          auto object = Container(PyObject::Kind::kTuple);
          object->items.assign(stack_.end() - n, stack_.end());
          stack_.resize(stack_.size() - n);
          NestAll(*object, object->items);
          Push(object);
          break;
        }
        case ']': Push(Container(PyObject::Kind::kList)); break;            // EMPTY_LIST
        case 'a': {                                                          // APPEND
          PyRef value = Pop();
          PyRef list = Top();
          if (list->kind != PyObject::Kind::kList) Fail("APPEND on a non-list");
          Nest(*list, *value);
          list->items.push_back(value);
          break;
        }
        case 'e': {                                                          // APPENDS
          std::vector<PyRef> values = PopToMark();
          PyRef list = Top();
          if (list->kind != PyObject::Kind::kList) Fail("APPENDS on a non-list");
          NestAll(*list, values);
          list->items.insert(list->items.end(), values.begin(), values.end());
          break;
        }
        case '}': Push(Container(PyObject::Kind::kDict)); break;            // EMPTY_DICT
        case 's': {                                                          // SETITEM
          PyRef value = Pop();
          PyRef key = Pop();
          PyRef dict = Top();
          if (dict->kind != PyObject::Kind::kDict) Fail("SETITEM on a non-dict");
          Nest(*dict, *key);
          Nest(*dict, *value);
          dict->dict.emplace_back(key, value);
          break;
        }
        case 'u': {                                                          // SETITEMS
          std::vector<PyRef> values = PopToMark();
          PyRef dict = Top();
          if (dict->kind != PyObject::Kind::kDict) Fail("SETITEMS on a non-dict");
          if (values.size() % 2 != 0) Fail("odd number of SETITEMS values");
          NestAll(*dict, values);
          for (size_t i = 0; i < values.size(); i += 2) {
            dict->dict.emplace_back(values[i], values[i + 1]);
          }
          break;
        }
        case 'c': {                                                          // GLOBAL
          const std::string module = ReadLine();
          const std::string name = ReadLine();
          auto object = MakeObject(PyObject::Kind::kGlobal);
          object->text = module + "." + name;
          Push(object);
          break;
        }
        case 0x93: {                                                         // STACK_GLOBAL
          PyRef name = Pop();
          PyRef module = Pop();
          auto object = MakeObject(PyObject::Kind::kGlobal);
          object->text = module->text + "." + name->text;
          Push(object);
          break;
        }
        case 'R': {                                                          // REDUCE
          PyRef args = Pop();
          PyRef callable = Pop();
          Push(Call(callable, args));
          break;
        }
        case 0x81: {                                                         // NEWOBJ
          PyRef args = Pop();
          PyRef cls = Pop();
          Push(Call(cls, args));
          break;
        }
        case 'b': Pop(); break;  // BUILD: state (e.g. OrderedDict._metadata) is not needed
        case 'Q': Push(LoadPersistent(Pop())); break;                        // BINPERSID
        case 'q': Memo(ReadU8()); break;                                     // BINPUT
        case 'r': Memo(ReadLe(4)); break;                                    // LONG_BINPUT
        case 0x94: Memo(memo_.size()); break;                                // MEMOIZE
        case 'h': Push(Recall(ReadU8())); break;                             // BINGET
        case 'j': Push(Recall(ReadLe(4))); break;                            // LONG_BINGET
        case '0': Pop(); break;                                              // POP
        case '1': PopToMark(); break;                                        // POP_MARK
        case '2': Push(Top()); break;                                        // DUP
        default: {
          char buffer[64];
          std::snprintf(buffer, sizeof(buffer), "unsupported pickle opcode 0x%02x at byte %zu",
                        op, opcode_pos);
          Fail(buffer);
        }
      }
    }
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    MEGALOC_THROW(FormatError, path_ << ": cannot read the torch.save pickle (data.pkl): " << what);
  }

  uint8_t ReadU8() {
    if (pos_ >= size_) Fail("unexpected end of data");
    return static_cast<uint8_t>(data_[pos_++]);
  }
  void Skip(size_t n) {
    if (size_ - pos_ < n) Fail("unexpected end of data");
    pos_ += n;
  }
  uint64_t ReadLe(int n) {
    uint64_t value = 0;
    for (int i = 0; i < n; ++i) value |= static_cast<uint64_t>(ReadU8()) << (8 * i);
    return value;
  }
  std::string ReadLine() {
    std::string line;
    while (true) {
      const char c = static_cast<char>(ReadU8());
      if (c == '\n') return line;
      line.push_back(c);
      if (line.size() > 4096) Fail("GLOBAL name too long");
    }
  }
  void Push(PyRef object) { stack_.push_back(std::move(object)); }
  PyRef Container(PyObject::Kind kind) {
    PyRef object = MakeObject(kind);
    containers_.push_back(object);
    return object;
  }
  // Records that `parent` now holds `child`; rejects nesting deeper than kMaxPickleDepth.
  void Nest(PyObject& parent, const PyObject& child) {
    if (child.depth + 1 > parent.depth) parent.depth = child.depth + 1;
    if (parent.depth > kMaxPickleDepth) {
      Fail("containers nest deeper than " + std::to_string(kMaxPickleDepth) + " levels");
    }
  }
  void NestAll(PyObject& parent, const std::vector<PyRef>& children) {
    for (const PyRef& child : children) Nest(parent, *child);
  }
  void PushInt(int64_t value) {
    auto object = MakeObject(PyObject::Kind::kInt);
    object->int_value = value;
    Push(object);
  }
  void PushString(uint64_t length, PyObject::Kind kind) {
    if (size_ - pos_ < length) Fail("unexpected end of data in a string");
    auto object = MakeObject(kind);
    object->text.assign(data_ + pos_, length);
    pos_ += length;
    Push(object);
  }
  PyRef Pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
      Fail("stack underflow");
    }
    PyRef object = stack_.back();
    stack_.pop_back();
    return object;
  }
  PyRef Top() {
    if (stack_.empty()) Fail("stack underflow");
    return stack_.back();
  }
  std::vector<PyRef> PopToMark() {
    if (marks_.empty()) Fail("MARK expected");
    const size_t mark = marks_.back();
    marks_.pop_back();
    if (mark > stack_.size()) Fail("bad MARK");
    std::vector<PyRef> items(stack_.begin() + mark, stack_.end());
    stack_.resize(mark);
    return items;
  }
  void Memo(uint64_t index) { memo_[index] = Top(); }
  PyRef Recall(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) Fail("memo entry " + std::to_string(index) + " missing");
    return it->second;
  }

  static int64_t AsInt(const PyRef& object, const char* what, const PickleReader& reader) {
    if (object->kind != PyObject::Kind::kInt && object->kind != PyObject::Kind::kBool) {
      reader.Fail(std::string("expected an integer for ") + what);
    }
    return object->int_value;
  }
  std::vector<int64_t> AsIntTuple(const PyRef& object, const char* what) const {
    if (object->kind != PyObject::Kind::kTuple && object->kind != PyObject::Kind::kList) {
      Fail(std::string("expected a tuple for ") + what);
    }
    std::vector<int64_t> values;
    for (const auto& item : object->items) values.push_back(AsInt(item, what, *this));
    return values;
  }

  PyRef Call(const PyRef& callable, const PyRef& args) {
    if (callable->kind != PyObject::Kind::kGlobal) Fail("call of a non-global object");
    const std::string& name = callable->text;
    if (name == "collections.OrderedDict" || name == "builtins.dict" ||
        name == "__builtin__.dict") {
      auto dict = Container(PyObject::Kind::kDict);
      if (!args->items.empty() && args->items[0]->kind == PyObject::Kind::kList) {
        for (const auto& pair : args->items[0]->items) {
          if (pair->items.size() == 2) dict->dict.emplace_back(pair->items[0], pair->items[1]);
        }
      }
      return dict;
    }
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      if (args->items.size() < 4) Fail(name + " with too few arguments");
      const PyRef& storage = args->items[0];
      if (storage->kind != PyObject::Kind::kStorage) Fail(name + ": first argument not a storage");
      const int64_t offset = AsInt(args->items[1], "storage offset", *this);
      const std::vector<int64_t> sizes = AsIntTuple(args->items[2], "tensor size");
      const std::vector<int64_t> strides = AsIntTuple(args->items[3], "tensor stride");
      if (sizes.size() != strides.size()) Fail("size and stride lengths differ");
      const int64_t storage_numel = storage->tensor.numel();
      int64_t extent = offset;
      int64_t numel = 1;
      bool empty = false;
      bool overflow = false;
      for (size_t i = 0; i < sizes.size(); ++i) {
        if (sizes[i] < 0 || strides[i] < 0) Fail("negative size or stride");
        if (sizes[i] == 0) empty = true;
        int64_t step = 0;
        overflow |= __builtin_mul_overflow(sizes[i] == 0 ? 0 : sizes[i] - 1, strides[i], &step);
        overflow |= __builtin_add_overflow(extent, step, &extent);
        overflow |= __builtin_mul_overflow(numel, sizes[i], &numel);
      }
      // A state-dict tensor never has more elements than its storage (no expanded views).
      if (offset < 0 || (!empty && (overflow || extent >= storage_numel || numel > storage_numel))) {
        Fail("tensor of size " + ShapeString(sizes) + " exceeds its storage of " +
             std::to_string(storage_numel) + " elements");
      }
      auto object = MakeObject(PyObject::Kind::kTensor);
      object->tensor = storage->tensor.as_strided(sizes, strides, offset).contiguous();
      return object;
    }
    if (name == "torch._utils._rebuild_parameter" ||
        name == "torch._utils._rebuild_parameter_with_state") {
      if (args->items.empty() || args->items[0]->kind != PyObject::Kind::kTensor) {
        Fail(name + ": first argument not a tensor");
      }
      return args->items[0];
    }
    // Anything else (optimizer state, numpy scalars, ...) is kept as an opaque object; it is an
    // error only if it ends up where a tensor is required.
    auto object = MakeObject(PyObject::Kind::kOther);
    object->text = name;
    return object;
  }

  PyRef LoadPersistent(const PyRef& pid) {
    if (pid->kind != PyObject::Kind::kTuple || pid->items.size() < 5 ||
        pid->items[0]->text != "storage" || pid->items[1]->kind != PyObject::Kind::kGlobal) {
      Fail("unsupported persistent id (expected ('storage', type, key, location, numel))");
    }
    const std::string& type_name = pid->items[1]->text;
    const std::string& key = pid->items[2]->text;
    const int64_t numel = AsInt(pid->items[4], "storage size", *this);
    static const std::unordered_map<std::string, at::ScalarType> kStorageTypes = {
        {"torch.FloatStorage", at::kFloat},   {"torch.DoubleStorage", at::kDouble},
        {"torch.HalfStorage", at::kHalf},     {"torch.BFloat16Storage", at::kBFloat16},
        {"torch.LongStorage", at::kLong},     {"torch.IntStorage", at::kInt},
        {"torch.ShortStorage", at::kShort},   {"torch.CharStorage", at::kChar},
        {"torch.ByteStorage", at::kByte},     {"torch.BoolStorage", at::kBool},
    };
    auto type_it = kStorageTypes.find(type_name);
    if (type_it == kStorageTypes.end()) Fail("unsupported storage type " + type_name);
    auto cached = storages_.find(key);
    if (cached != storages_.end()) return cached->second;
    const std::string record = "data/" + key;
    if (!archive_->hasRecord(record)) Fail("storage record '" + record + "' is missing");
    const size_t element_size = c10::elementSize(type_it->second);
    const auto declared = record_sizes_->find(record);
    if (declared == record_sizes_->end()) Fail("storage record '" + record + "' is missing");
    // Checked before reading: a deflated record could expand to any size.
    if (numel < 0 || static_cast<uint64_t>(numel) > declared->second / element_size) {
      Fail("storage record '" + record + "' has " + std::to_string(declared->second) +
           " bytes, too few for " + std::to_string(numel) + " elements of " +
           std::to_string(element_size) + " bytes");
    }
    at::DataPtr data;
    size_t record_size = 0;
    try {
      std::tie(data, record_size) = archive_->getRecord(record);
    } catch (const c10::Error& error) {
      // LibTorch quotes bytes of the archive in its messages: escaped, so the error stays one line.
      Fail("cannot read storage record '" + EscapeForMessage(record) +
           "': " + EscapeForMessage(error.what_without_backtrace()));
    }
    if (record_size < static_cast<size_t>(numel) * element_size) {
      Fail("storage record '" + record + "' has " + std::to_string(record_size) +
           " bytes, expected " + std::to_string(numel * element_size));
    }
    auto object = MakeObject(PyObject::Kind::kStorage);
    auto owner = std::make_shared<at::DataPtr>(std::move(data));
    void* raw = owner->get();
    object->tensor = at::from_blob(
        raw, {numel}, [owner](void*) mutable { owner.reset(); },
        at::TensorOptions().dtype(type_it->second));
    storages_[key] = object;
    return object;
  }

  const std::string& path_;
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
  caffe2::serialize::PyTorchStreamReader* archive_;
  const std::unordered_map<std::string, uint64_t>* record_sizes_;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PyRef> memo_;
  std::unordered_map<std::string, PyRef> storages_;
  std::vector<PyRef> containers_;
};

// ------------------------------------------------------------------------------------------------
// Minimal pickler (protocol 2) for WriteTorchZip.

class PickleWriter {
 public:
  PickleWriter() { out_ += "\x80\x02"; }
  void Global(const std::string& module, const std::string& name) {
    out_ += 'c';
    out_ += module + "\n" + name + "\n";
  }
  void String(const std::string& text) {
    out_ += 'X';
    AppendLe(text.size(), 4);
    out_ += text;
  }
  void Int(int64_t value) {
    if (value >= INT32_MIN && value <= INT32_MAX) {
      out_ += 'J';
      AppendLe(static_cast<uint32_t>(static_cast<int32_t>(value)), 4);
    } else {
      out_ += '\x8a';
      out_ += '\x08';
      AppendLe(static_cast<uint64_t>(value), 8);
    }
  }
  void Op(char op) { out_ += op; }
  void IntTuple(at::IntArrayRef values) {
    Op('(');
    for (int64_t value : values) Int(value);
    Op('t');
  }
  std::string& bytes() { return out_; }

 private:
  void AppendLe(uint64_t value, int n) {
    for (int i = 0; i < n; ++i) out_ += static_cast<char>((value >> (8 * i)) & 0xff);
  }
  std::string out_;
};

const char* StorageTypeName(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "FloatStorage";
    case at::kDouble: return "DoubleStorage";
    case at::kHalf: return "HalfStorage";
    case at::kBFloat16: return "BFloat16Storage";
    case at::kLong: return "LongStorage";
    case at::kInt: return "IntStorage";
    case at::kShort: return "ShortStorage";
    case at::kChar: return "CharStorage";
    case at::kByte: return "ByteStorage";
    case at::kBool: return "BoolStorage";
    default: return nullptr;
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------

std::string WeightsFormatName(WeightsFormat format) {
  return format == WeightsFormat::kSafetensors ? "safetensors" : "torch-zip";
}

WeightsFormat DetectWeightsFormat(const std::string& path) {
  const uint64_t file_size = FileSizeOrThrow(path);
  if (file_size == 0) MEGALOC_THROW(FormatError, path << ": empty file (0 bytes), not a checkpoint");
  std::ifstream file(path, std::ios::binary);
  if (!file) MEGALOC_THROW(IoError, path << ": cannot open file");
  unsigned char head[16] = {0};
  file.read(reinterpret_cast<char*>(head), sizeof(head));
  const size_t got = static_cast<size_t>(file.gcount());
  if (got >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) {
    return WeightsFormat::kTorchZip;
  }
  if (got >= 9) {
    uint64_t header_size = 0;
    for (int i = 0; i < 8; ++i) header_size |= static_cast<uint64_t>(head[i]) << (8 * i);
    if (header_size >= 2 && header_size <= file_size - 8 && head[8] == '{') {
      return WeightsFormat::kSafetensors;
    }
  }
  if (got >= 2 && head[0] == 0x80 && head[1] <= 5) {
    MEGALOC_THROW(FormatError,
                  path << ": legacy (pre-1.6, non-zip) torch.save format is not supported; re-save "
                          "it with a recent torch or convert it to safetensors");
  }
  MEGALOC_THROW(FormatError,
                path << ": not a checkpoint (neither a safetensors file nor a torch.save zip)");
}

TensorMap ReadSafetensors(const std::string& path,
                          std::map<std::string, std::string>* metadata) {
  const uint64_t file_size = FileSizeOrThrow(path);
  std::ifstream file(path, std::ios::binary);
  if (!file) MEGALOC_THROW(IoError, path << ": cannot open file");
  if (file_size < 8) {
    MEGALOC_THROW(FormatError, path << ": truncated safetensors file (" << file_size
                                    << " bytes, no header)");
  }
  unsigned char size_bytes[8];
  file.read(reinterpret_cast<char*>(size_bytes), 8);
  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) header_size |= static_cast<uint64_t>(size_bytes[i]) << (8 * i);
  if (header_size > file_size - 8 || header_size > (uint64_t{100} << 20)) {
    MEGALOC_THROW(FormatError, path << ": not a valid safetensors file (header length "
                                    << header_size << " for a file of " << file_size
                                    << " bytes; truncated or not safetensors)");
  }
  std::string header(header_size, '\0');
  file.read(header.data(), static_cast<std::streamsize>(header_size));
  if (!file) MEGALOC_THROW(IoError, path << ": read error in the safetensors header");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(header);
  } catch (const std::exception& error) {
    MEGALOC_THROW(FormatError, path << ": safetensors header is not valid JSON (" << error.what()
                                    << ")");
  }
  if (!json.is_object()) MEGALOC_THROW(FormatError, path << ": safetensors header is not an object");
  const uint64_t data_start = 8 + header_size;
  const uint64_t data_size = file_size - data_start;
  TensorMap tensors;
  for (auto it = json.begin(); it != json.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& entry = it.value();
    if (name == "__metadata__") {
      if (metadata && entry.is_object()) {
        for (auto m = entry.begin(); m != entry.end(); ++m) {
          (*metadata)[m.key()] = m.value().is_string() ? m.value().get<std::string>()
                                                       : m.value().dump();
        }
      }
      continue;
    }
    auto bad = [&](const std::string& why) {
      MEGALOC_THROW(FormatError, path << ": safetensors tensor '" << name << "': " << why);
    };
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets")) {
      bad("entry needs dtype, shape and data_offsets");
    }
    if (!entry["dtype"].is_string()) bad("dtype is not a string");
    const std::string dtype_name = entry["dtype"].get<std::string>();
    const SafetensorsDtype* dtype = FindSafetensorsDtype(dtype_name);
    if (!dtype) bad("unsupported dtype " + dtype_name);
    std::vector<int64_t> shape;
    if (!entry["shape"].is_array()) bad("shape is not an array");
    uint64_t numel = 1;
    for (const auto& dim : entry["shape"]) {
      if (!dim.is_number_integer() || dim.get<int64_t>() < 0) bad("bad shape");
      shape.push_back(dim.get<int64_t>());
      if (__builtin_mul_overflow(numel, static_cast<uint64_t>(shape.back()), &numel)) {
        bad("the element count of shape " + entry["shape"].dump() + " overflows 64 bits");
      }
    }
    if (numel > data_size / static_cast<uint64_t>(dtype->size)) {
      bad("shape " + entry["shape"].dump() + " of " + dtype_name + " needs more bytes than the " +
          std::to_string(data_size) + " of the data section");
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      bad("data_offsets must be two non-negative integers");
    }
    const uint64_t begin = offsets[0].get<uint64_t>();
    const uint64_t end = offsets[1].get<uint64_t>();
    if (begin > end || end - begin != numel * static_cast<uint64_t>(dtype->size)) {
      bad("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
          ") do not match shape " + ShapeString(shape) + " of " + dtype_name);
    }
    if (end > data_size) {
      MEGALOC_THROW(FormatError, path << ": truncated safetensors file: tensor '" << name
                                      << "' ends at byte " << data_start + end << " but the file has "
                                      << file_size << " bytes");
    }
    at::Tensor tensor = at::empty(shape, at::TensorOptions().dtype(dtype->type));
    file.seekg(static_cast<std::streamoff>(data_start + begin));
    file.read(static_cast<char*>(tensor.data_ptr()), static_cast<std::streamsize>(end - begin));
    if (!file) MEGALOC_THROW(IoError, path << ": read error in tensor '" << name << "'");
    tensors[name] = ToFloatIfFloating(tensor);
  }
  return tensors;
}

TensorMap ReadTorchZip(const std::string& path) {
  FileSizeOrThrow(path);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> archive;
  try {
    archive = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& error) {
    // LibTorch quotes bytes of the archive (e.g. the `version` record) in its messages: escaped, so
    // the error stays one line.
    MEGALOC_THROW(FormatError, path << ": not a readable torch.save zip archive ("
                                    << EscapeForMessage(error.what_without_backtrace()) << ")");
  }
  if (!archive->hasRecord("data.pkl")) {
    MEGALOC_THROW(FormatError, path << ": zip archive has no data.pkl record (not a torch.save file;"
                                       " TorchScript archives are not supported)");
  }
  // Sizes from the central directory, checked before anything is inflated (zip bombs).
  const std::unordered_map<std::string, uint64_t> record_sizes = ZipRecordSizes(path);
  const auto pickle_record = record_sizes.find("data.pkl");
  if (pickle_record == record_sizes.end()) {
    MEGALOC_THROW(FormatError, path << ": zip archive has no data.pkl record");
  }
  if (pickle_record->second > kMaxPickleBytes) {
    MEGALOC_THROW(FormatError, path << ": data.pkl inflates to " << pickle_record->second
                                    << " bytes, more than the limit of " << kMaxPickleBytes
                                    << " (a state dict's pickle is a few hundred KB)");
  }
  at::DataPtr pickle_data;
  size_t pickle_size = 0;
  try {
    std::tie(pickle_data, pickle_size) = archive->getRecord("data.pkl");
  } catch (const c10::Error& error) {
    MEGALOC_THROW(FormatError, path << ": cannot read data.pkl ("
                                    << EscapeForMessage(error.what_without_backtrace()) << ")");
  }
  PickleReader reader(path, static_cast<const char*>(pickle_data.get()), pickle_size,
                      archive.get(), &record_sizes);
  PyRef root = reader.Run();
  if (root->kind != PyObject::Kind::kDict) {
    MEGALOC_THROW(FormatError, path << ": the pickled object is not a dict of tensors");
  }
  // Unwrap {"state_dict": {...}} style training checkpoints.
  for (const char* wrapper : {"state_dict", "model_state_dict", "model"}) {
    for (const auto& item : root->dict) {
      if (item.first->kind == PyObject::Kind::kString && item.first->text == wrapper &&
          item.second->kind == PyObject::Kind::kDict) {
        root = item.second;
        break;
      }
    }
  }
  TensorMap tensors;
  for (const auto& item : root->dict) {
    if (item.first->kind != PyObject::Kind::kString) {
      MEGALOC_THROW(FormatError, path << ": a state-dict key is not a string");
    }
    if (item.second->kind != PyObject::Kind::kTensor) {
      MEGALOC_THROW(FormatError, path << ": entry '" << item.first->text << "' is not a tensor");
    }
    if (tensors.count(item.first->text)) {
      MEGALOC_THROW(FormatError, path << ": duplicate key '" << item.first->text << "'");
    }
    at::Tensor tensor = ToFloatIfFloating(item.second->tensor);
    // A tensor that is exactly its storage record keeps that memory; views of a shared or larger
    // storage get their own copy.
    const bool owns_record = tensor.data_ptr() != item.second->tensor.data_ptr() ||
                             (tensor.storage_offset() == 0 &&
                              tensor.storage().nbytes() ==
                                  static_cast<size_t>(tensor.numel()) * tensor.element_size());
    tensors[item.first->text] = owns_record ? tensor : tensor.clone();
  }
  return tensors;
}

TensorMap ReadTensorFile(const std::string& path, WeightsFormat* format) {
  const WeightsFormat detected = DetectWeightsFormat(path);
  if (format) *format = detected;
  return detected == WeightsFormat::kSafetensors ? ReadSafetensors(path) : ReadTorchZip(path);
}

void WriteSafetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) {
    nlohmann::json meta = nlohmann::json::object();
    for (const auto& item : metadata) meta[item.first] = item.second;
    header["__metadata__"] = meta;
  }
  std::vector<at::Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& item : tensors) {
    at::Tensor tensor = item.second.detach().to(at::kCPU).contiguous();
    const char* dtype = SafetensorsDtypeName(tensor.scalar_type());
    MEGALOC_CHECK_MSG(dtype != nullptr, path << ": cannot write tensor '" << item.first
                                             << "' of dtype " << tensor.scalar_type());
    const uint64_t bytes = tensor.numel() * tensor.element_size();
    header[item.first] = {{"dtype", dtype},
                          {"shape", tensor.sizes().vec()},
                          {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(tensor);
  }
  std::string header_text = header.dump();
  while ((8 + header_text.size()) % 8 != 0) header_text.push_back(' ');
  // Through the common output helper: refuses devices/FIFOs, writes through symbolic links, fsyncs,
  // and reports a failed write (disk full) with the system's reason, leaving no .tmp.
  WriteFileAtomically(path, [&](const ByteSink& sink) {
    const uint64_t header_size = header_text.size();
    char size_bytes[8];
    for (int i = 0; i < 8; ++i) size_bytes[i] = static_cast<char>((header_size >> (8 * i)) & 0xff);
    if (!sink(size_bytes, 8) || !sink(header_text.data(), header_text.size())) return;
    for (const at::Tensor& tensor : contiguous) {
      if (!sink(tensor.data_ptr(), tensor.numel() * tensor.element_size())) return;
    }
  });
}

void WriteTorchZip(const std::string& path, const TensorMap& tensors) {
  PickleWriter pickle;
  std::vector<at::Tensor> storages;
  pickle.Global("collections", "OrderedDict");
  pickle.Op(')');
  pickle.Op('R');
  pickle.Op('(');
  for (const auto& item : tensors) {
    at::Tensor tensor = item.second.detach().to(at::kCPU).contiguous();
    const char* storage_type = StorageTypeName(tensor.scalar_type());
    MEGALOC_CHECK_MSG(storage_type != nullptr, path << ": cannot write tensor '" << item.first
                                                    << "' of dtype " << tensor.scalar_type());
    const std::string key = std::to_string(storages.size());
    pickle.String(item.first);
    pickle.Global("torch._utils", "_rebuild_tensor_v2");
    pickle.Op('(');
    pickle.Op('(');
    pickle.String("storage");
    pickle.Global("torch", storage_type);
    pickle.String(key);
    pickle.String("cpu");
    pickle.Int(tensor.numel());
    pickle.Op('t');
    pickle.Op('Q');
    pickle.Int(0);
    pickle.IntTuple(tensor.sizes());
    pickle.IntTuple(tensor.strides());
    pickle.Op('\x89');  // requires_grad = False
    pickle.Global("collections", "OrderedDict");
    pickle.Op(')');
    pickle.Op('R');  // backward hooks
    pickle.Op('t');
    pickle.Op('R');
    storages.push_back(tensor);
  }
  pickle.Op('u');
  pickle.Op('.');

  // Through the common output helper (see WriteSafetensors). After a failed write the sink drops
  // the rest and the helper reports the system's reason; the zip writer is told every write
  // succeeded, so it never throws from its destructor (which finishes the archive).
  WriteFileAtomically(path, [&](const ByteSink& sink) {
    try {
      caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t size) -> size_t {
        sink(data, size);
        return size;
      });
      writer.writeRecord("data.pkl", pickle.bytes().data(), pickle.bytes().size());
      for (size_t i = 0; i < storages.size(); ++i) {
        writer.writeRecord("data/" + std::to_string(i), storages[i].data_ptr(),
                           storages[i].numel() * storages[i].element_size());
      }
      writer.writeEndOfFile();
    } catch (const c10::Error& error) {
      MEGALOC_THROW(IoError, path << ": cannot write the zip archive ("
                                  << error.what_without_backtrace() << ")");
    }
  });
}

TensorMap CanonicalizeMegaLocKeys(const TensorMap& raw, const std::string& path) {
  TensorMap canonical;
  for (const auto& item : raw) {
    std::string key = item.first;
    if (key.rfind("module.", 0) == 0) key = key.substr(7);
    if (key.rfind("backbone.model.", 0) == 0) key = "backbone." + key.substr(15);
    if (key == "backbone.mask_token") continue;
    if (canonical.count(key)) {
      MEGALOC_THROW(FormatError, path << ": two checkpoint keys map to '" << key
                                      << "' (v1 and v2 names mixed?)");
    }
    canonical[key] = item.second;
  }
  return canonical;
}

NetConfig InferNetConfig(const TensorMap& canonical, int num_heads) {
  NetConfig config;
  auto dim = [&](const std::string& key, int index, int64_t* out) {
    auto it = canonical.find(key);
    if (it != canonical.end() && it->second.dim() > index) *out = it->second.size(index);
  };
  dim("backbone.cls_token", 2, &config.embed_dim);
  dim("backbone.patch_embed.proj.weight", 2, &config.patch_size);
  auto pos = canonical.find("backbone.pos_embed");
  if (pos != canonical.end() && pos->second.dim() == 3) {
    const int64_t grid = static_cast<int64_t>(
        std::llround(std::sqrt(static_cast<double>(pos->second.size(1) - 1))));
    config.pos_embed_grid = grid;
  }
  int64_t depth = 0;
  while (canonical.count("backbone.blocks." + std::to_string(depth) + ".norm1.weight")) ++depth;
  config.depth = depth;
  dim("backbone.blocks.0.mlp.fc1.weight", 0, &config.mlp_hidden_dim);
  dim("aggregator.agg.score.3.weight", 0, &config.num_clusters);
  dim("aggregator.agg.cluster_features.3.weight", 0, &config.cluster_dim);
  dim("aggregator.agg.token_features.2.weight", 0, &config.token_dim);
  dim("aggregator.agg.token_features.0.weight", 0, &config.salad_mlp_dim);
  dim("aggregator.linear.weight", 0, &config.descriptor_dim);
  config.num_heads = num_heads > 0 ? num_heads : std::max<int64_t>(1, config.embed_dim / 64);
  return config;
}

int ReadNumHeadsFromConfigJson(const std::string& weights_path) {
  const fs::path config_path = fs::path(weights_path).parent_path() / "config.json";
  std::error_code ec;
  if (!fs::is_regular_file(config_path, ec)) return -1;
  std::ifstream file(config_path);
  if (!file) return -1;
  try {
    const nlohmann::json json = nlohmann::json::parse(file);
    if (json.is_object() && json.contains("num_heads") && json["num_heads"].is_number_integer()) {
      return json["num_heads"].get<int>();
    }
  } catch (const std::exception&) {
  }
  return -1;
}

TensorMap NetStateDict(MegaLocNetImpl& net) {
  TensorMap state;
  for (const auto& item : net.named_parameters(/*recurse=*/true)) {
    state[item.key()] = item.value().detach().to(at::kCPU).clone();
  }
  for (const auto& item : net.named_buffers(/*recurse=*/true)) {
    state[item.key()] = item.value().detach().to(at::kCPU).clone();
  }
  return state;
}

void LoadStateDictStrict(MegaLocNetImpl& net, const TensorMap& canonical,
                         const std::string& path, bool share_memory) {
  std::vector<std::string> missing;
  std::vector<std::string> unexpected;
  std::vector<std::string> misshaped;
  auto parameters = net.named_parameters(/*recurse=*/true);
  std::set<std::string> expected;
  for (const auto& item : parameters) {
    expected.insert(item.key());
    auto it = canonical.find(item.key());
    if (it == canonical.end()) {
      missing.push_back(item.key());
    } else if (it->second.sizes() != item.value().sizes()) {
      misshaped.push_back(item.key() + ": file " + ShapeString(it->second.sizes()) + " vs model " +
                          ShapeString(item.value().sizes()));
    } else if (!at::isFloatingType(it->second.scalar_type())) {
      misshaped.push_back(item.key() + ": non-floating dtype in the file");
    }
  }
  for (const auto& item : canonical) {
    if (!expected.count(item.first)) unexpected.push_back(item.first);
  }
  if (!missing.empty() || !unexpected.empty() || !misshaped.empty()) {
    std::ostringstream out;
    out << path << ": checkpoint does not match the MegaLoc architecture (" << net.config.ToString()
        << "):";
    auto list = [&out](const char* what, const std::vector<std::string>& keys) {
      if (keys.empty()) return;
      out << " " << keys.size() << " " << what << " [";
      for (size_t i = 0; i < keys.size(); ++i) out << (i ? ", " : "") << keys[i];
      out << "];";
    };
    list("missing keys", missing);
    list("unexpected keys", unexpected);
    list("mis-shaped keys", misshaped);
    std::string message = out.str();
    if (!message.empty() && message.back() == ';') message.pop_back();
    throw FormatError(message);
  }
  // NaN/Inf weights would load silently and turn every descriptor into NaN.
  for (const auto& item : parameters) {
    const at::Tensor& source = canonical.at(item.key());
    const int64_t non_finite = CountNonFinite(source);
    if (non_finite > 0) {
      MEGALOC_THROW(FormatError, path << ": tensor '" << item.key() << "' has " << non_finite
                                      << " NaN/Inf value(s) of " << source.numel()
                                      << "; refusing to load a corrupt checkpoint");
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& item : parameters) {
    const at::Tensor& source = canonical.at(item.key());
    if (share_memory && source.is_contiguous() && source.scalar_type() == at::kFloat &&
        source.device() == item.value().device() &&
        item.value().scalar_type() == at::kFloat) {
      item.value().set_data(source);
    } else {
      item.value().copy_(source);
    }
  }
}

ConversionStats ConvertMegaLocCheckpoint(const std::string& input_path,
                                         const std::string& output_path, int num_heads) {
  ConversionStats stats;
  const TensorMap canonical =
      CanonicalizeMegaLocKeys(ReadTensorFile(input_path, &stats.input_format), input_path);
  if (num_heads <= 0) num_heads = ReadNumHeadsFromConfigJson(input_path);
  const NetConfig config = InferNetConfig(canonical, num_heads);
  MegaLocNet net(config);
  LoadStateDictStrict(*net, canonical, input_path);
  const TensorMap state = NetStateDict(*net);
  WriteSafetensors(output_path, state);
  stats.num_tensors = static_cast<int64_t>(state.size());
  stats.num_parameters = CountParameters(*net);
  stats.architecture = config.ToString();
  stats.output_sha256 = Sha256File(output_path);
  return stats;
}

}  // namespace megaloc
