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
#include "megaloc/util/pickle.h"
#include "megaloc/util/pickle_writer.h"
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
    const int64_t n = tensor.numel();
    int64_t count = 0;
    int64_t i = 0;
    // Blocks of 16 values tested with integer operations the compiler vectorises (an exponent of all
    // ones is Inf or NaN); a block with a hit is counted exactly.
    for (; i + 16 <= n; i += 16) {
      uint32_t hits = 0;
      for (int j = 0; j < 16; ++j) {
        uint32_t bits;
        std::memcpy(&bits, data + i + j, sizeof(bits));
        hits |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
      }
      if (hits != 0) {
        for (int j = 0; j < 16; ++j) count += !std::isfinite(data[i + j]);
      }
    }
    for (; i < n; ++i) count += !std::isfinite(data[i]);
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
// torch.save state dicts: data.pkl is parsed by the project's one pickle reader (util/pickle.h,
// which executes nothing) and its tree is interpreted here: dicts / OrderedDicts of
// torch._utils._rebuild_tensor_v2 calls whose first argument is the persistent id of a storage
// record ('storage', torch.<Type>Storage, key, location, numel).

// Largest data.pkl accepted (uncompressed); the pickle holds names and shapes, not tensor data.
constexpr uint64_t kMaxPickleBytes = uint64_t{256} << 20;

class TorchPickleInterpreter {
 public:
  TorchPickleInterpreter(const std::string& path, caffe2::serialize::PyTorchStreamReader* archive,
                         const std::unordered_map<std::string, uint64_t>* record_sizes)
      : path_(path), archive_(archive), record_sizes_(record_sizes) {}

  // The (key, value) entries of a dict or OrderedDict value; null if `value` is neither.
  static const std::vector<std::pair<PickleValuePtr, PickleValuePtr>>* DictEntries(const PickleValue& value) {
    if (value.type == PickleValue::Type::kDict) return &value.dict_items;
    if (value.type == PickleValue::Type::kObject && value.called &&
        (value.IsGlobal("collections", "OrderedDict") || value.IsGlobal("builtins", "dict") ||
         value.IsGlobal("__builtin__", "dict"))) {
      return &value.dict_items;  // filled by SETITEMS after the call
    }
    return nullptr;
  }

  // The tensor a state-dict value describes; FormatError naming `key` otherwise.
  at::Tensor Tensor(const PickleValue& value, const std::string& key) {
    if (value.type == PickleValue::Type::kObject && value.called &&
        (value.IsGlobal("torch._utils", "_rebuild_parameter") ||
         value.IsGlobal("torch._utils", "_rebuild_parameter_with_state"))) {
      const PickleValue& args = *value.args;
      if (args.items.empty()) Fail("entry '" + key + "': " + value.TypeName() + " without a tensor");
      return Tensor(*args.items[0], key);  // Parameter(tensor, ...): one level
    }
    if (value.type != PickleValue::Type::kObject || !value.called ||
        !(value.IsGlobal("torch._utils", "_rebuild_tensor_v2") || value.IsGlobal("torch._utils", "_rebuild_tensor"))) {
      Fail("entry '" + key + "' is not a tensor (a " + value.TypeName() + ")");
    }
    const std::vector<PickleValuePtr>& args = value.args->items;
    if (args.size() < 4) Fail("entry '" + key + "': " + value.name + " with too few arguments");
    const at::Tensor storage = Storage(*args[0], key);
    const int64_t offset = Int(*args[1], "storage offset", key);
    const std::vector<int64_t> sizes = IntTuple(*args[2], "tensor size", key);
    const std::vector<int64_t> strides = IntTuple(*args[3], "tensor stride", key);
    if (sizes.size() != strides.size()) Fail("entry '" + key + "': size and stride lengths differ");
    const int64_t storage_numel = storage.numel();
    int64_t extent = offset;
    int64_t numel = 1;
    bool empty = false;
    bool overflow = false;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (sizes[i] < 0 || strides[i] < 0) Fail("entry '" + key + "': negative size or stride");
      if (sizes[i] == 0) empty = true;
      int64_t step = 0;
      overflow |= __builtin_mul_overflow(sizes[i] == 0 ? 0 : sizes[i] - 1, strides[i], &step);
      overflow |= __builtin_add_overflow(extent, step, &extent);
      overflow |= __builtin_mul_overflow(numel, sizes[i], &numel);
    }
    // A state-dict tensor never has more elements than its storage (no expanded views).
    if (offset < 0 || (!empty && (overflow || extent >= storage_numel || numel > storage_numel))) {
      Fail("entry '" + key + "': tensor of size " + ShapeString(sizes) + " exceeds its storage of " +
           std::to_string(storage_numel) + " elements");
    }
    return storage.as_strided(sizes, strides, offset).contiguous();
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    MEGALOC_THROW(FormatError, path_ << ": cannot read the torch.save pickle (data.pkl): " << what);
  }

  int64_t Int(const PickleValue& value, const char* what, const std::string& key) const {
    if (value.type != PickleValue::Type::kInt && value.type != PickleValue::Type::kBool) {
      Fail("entry '" + key + "': expected an integer for " + what + ", got a " + value.TypeName());
    }
    return value.int_value;
  }
  std::vector<int64_t> IntTuple(const PickleValue& value, const char* what, const std::string& key) const {
    if (!value.IsSequence()) Fail("entry '" + key + "': expected a tuple for " + what);
    std::vector<int64_t> values;
    for (const PickleValuePtr& item : value.items) values.push_back(Int(*item, what, key));
    return values;
  }

  // The storage a persistent id names, read from the archive once per key.
  at::Tensor Storage(const PickleValue& value, const std::string& key) {
    const PickleValue* pid = value.type == PickleValue::Type::kPersistent ? value.args.get() : nullptr;
    if (pid == nullptr || pid->type != PickleValue::Type::kTuple || pid->items.size() < 5 ||
        pid->items[0]->type != PickleValue::Type::kString || pid->items[0]->string_value != "storage" ||
        pid->items[1]->type != PickleValue::Type::kObject || pid->items[2]->type != PickleValue::Type::kString) {
      Fail("entry '" + key + "': unsupported storage reference (expected the persistent id ('storage', type, "
           "key, location, numel))");
    }
    const std::string type_name = pid->items[1]->module + "." + pid->items[1]->name;
    const std::string& storage_key = pid->items[2]->string_value;
    const int64_t numel = Int(*pid->items[4], "storage size", key);
    static const std::unordered_map<std::string, at::ScalarType> kStorageTypes = {
        {"torch.FloatStorage", at::kFloat},   {"torch.DoubleStorage", at::kDouble},
        {"torch.HalfStorage", at::kHalf},     {"torch.BFloat16Storage", at::kBFloat16},
        {"torch.LongStorage", at::kLong},     {"torch.IntStorage", at::kInt},
        {"torch.ShortStorage", at::kShort},   {"torch.CharStorage", at::kChar},
        {"torch.ByteStorage", at::kByte},     {"torch.BoolStorage", at::kBool},
    };
    auto type_it = kStorageTypes.find(type_name);
    if (type_it == kStorageTypes.end()) Fail("unsupported storage type " + type_name);
    auto cached = storages_.find(storage_key);
    if (cached != storages_.end()) return cached->second;
    const std::string record = "data/" + storage_key;
    if (!archive_->hasRecord(record)) Fail("storage record '" + record + "' is missing");
    const size_t element_size = c10::elementSize(type_it->second);
    const auto declared = record_sizes_->find(record);
    if (declared == record_sizes_->end()) Fail("storage record '" + record + "' is missing");
    // Checked before reading: a deflated record could expand to any size.
    if (numel < 0 || static_cast<uint64_t>(numel) > declared->second / element_size) {
      Fail("storage record '" + record + "' has " + std::to_string(declared->second) + " bytes, too few for " +
           std::to_string(numel) + " elements of " + std::to_string(element_size) + " bytes");
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
      Fail("storage record '" + record + "' has " + std::to_string(record_size) + " bytes, expected " +
           std::to_string(numel * element_size));
    }
    auto owner = std::make_shared<at::DataPtr>(std::move(data));
    void* raw = owner->get();
    at::Tensor storage = at::from_blob(
        raw, {numel}, [owner](void*) mutable { owner.reset(); }, at::TensorOptions().dtype(type_it->second));
    storages_[storage_key] = storage;
    return storage;
  }

  const std::string& path_;
  caffe2::serialize::PyTorchStreamReader* archive_;
  const std::unordered_map<std::string, uint64_t>* record_sizes_;
  std::unordered_map<std::string, at::Tensor> storages_;
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
  const PickleValuePtr root_value =
      ParsePickle(std::string(static_cast<const char*>(pickle_data.get()), pickle_size), path + " (data.pkl)");
  const auto* entries = TorchPickleInterpreter::DictEntries(*root_value);
  if (entries == nullptr) {
    MEGALOC_THROW(FormatError, path << ": the pickled object is not a dict of tensors (a "
                                    << root_value->TypeName() << ")");
  }
  // Unwrap {"state_dict": {...}} style training checkpoints.
  for (const char* wrapper : {"state_dict", "model_state_dict", "model"}) {
    const std::vector<std::pair<PickleValuePtr, PickleValuePtr>>* inner = nullptr;
    for (const auto& item : *entries) {
      if (item.first->type == PickleValue::Type::kString && item.first->string_value == wrapper) {
        inner = TorchPickleInterpreter::DictEntries(*item.second);
        break;
      }
    }
    if (inner != nullptr) {
      entries = inner;
      break;
    }
  }
  TorchPickleInterpreter interpreter(path, archive.get(), &record_sizes);
  TensorMap tensors;
  for (const auto& item : *entries) {
    if (item.first->type != PickleValue::Type::kString) {
      MEGALOC_THROW(FormatError, path << ": a state-dict key is not a string (a " << item.first->TypeName() << ")");
    }
    const std::string& key = item.first->string_value;
    if (tensors.count(key)) MEGALOC_THROW(FormatError, path << ": duplicate key '" << key << "'");
    const at::Tensor read = interpreter.Tensor(*item.second, key);
    at::Tensor tensor = ToFloatIfFloating(read);
    // A tensor that is exactly its storage record keeps that memory; views of a shared or larger
    // storage get their own copy.
    const bool owns_record = tensor.data_ptr() != read.data_ptr() ||
                             (tensor.storage_offset() == 0 &&
                              tensor.storage().nbytes() == static_cast<size_t>(tensor.numel()) * tensor.element_size());
    tensors[key] = owns_record ? tensor : tensor.clone();
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
  // The layout torch.save writes: OrderedDict() filled by SETITEMS with name ->
  // _rebuild_tensor_v2((persistent id of the storage), offset, size, stride, requires_grad, hooks).
  PickleWriter pickle;
  std::vector<at::Tensor> storages;
  auto int_tuple = [&pickle](at::IntArrayRef values) {
    pickle.Mark();
    for (int64_t value : values) pickle.Int(value);
    pickle.Tuple();
  };
  pickle.Proto(2).Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark();
  for (const auto& item : tensors) {
    at::Tensor tensor = item.second.detach().to(at::kCPU).contiguous();
    const char* storage_type = StorageTypeName(tensor.scalar_type());
    MEGALOC_CHECK_MSG(storage_type != nullptr, path << ": cannot write tensor '" << item.first
                                                    << "' of dtype " << tensor.scalar_type());
    const std::string key = std::to_string(storages.size());
    pickle.Str(item.first).Global("torch._utils", "_rebuild_tensor_v2").Mark();
    pickle.Mark().Str("storage").Global("torch", storage_type).Str(key).Str("cpu").Int(tensor.numel()).Tuple();
    pickle.BinPersId().Int(0);
    int_tuple(tensor.sizes());
    int_tuple(tensor.strides());
    pickle.Bool(false);  // requires_grad
    pickle.Global("collections", "OrderedDict").EmptyTuple().Reduce();  // backward hooks
    pickle.Tuple().Reduce();
    storages.push_back(tensor);
  }
  pickle.SetItems().Stop();

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
  MegaLocNet net{nullptr};
  {
    const SkipParameterInit skip;  // replaced by the checkpoint's tensors below
    net = MegaLocNet(config);
  }
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
