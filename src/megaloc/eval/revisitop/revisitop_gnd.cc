#include "megaloc/eval/revisitop/revisitop_gnd.h"

#include <sys/stat.h>

#include <cstring>
#include <sstream>

#include <nlohmann/json.hpp>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"

namespace megaloc {
namespace {

using Type = PickleValue::Type;

// A NumPy array reconstructed from its pickle (numpy.core.multiarray._reconstruct + BUILD state)
// or a NumPy scalar (numpy.core.multiarray.scalar(dtype, bytes)), as raw little-endian elements.
struct NumpyData {
  char kind = 0;     // 'i', 'u', 'f', 'b'
  int itemsize = 0;  // bytes per element
  std::vector<int64_t> shape;
  std::string bytes;
};

bool IsNumpyModule(const std::string& module) {
  return module == "numpy.core.multiarray" || module == "numpy._core.multiarray" ||
         module == "numpy";
}

// Parses a numpy.dtype pickle: dtype('<i8' | 'i8' | 'f8', ...) with state (3, '<', ...).
void ParseDtype(const PickleValue& dtype, const std::string& where, NumpyData* out) {
  if (!dtype.IsGlobal("numpy", "dtype") || !dtype.called || !dtype.args ||
      dtype.args->items.empty() || dtype.args->items[0]->type != Type::kString) {
    MEGALOC_THROW(FormatError, where << ": expected a numpy.dtype, got " << dtype.TypeName());
  }
  std::string code = dtype.args->items[0]->string_value;
  char order = '|';
  if (!code.empty() && (code[0] == '<' || code[0] == '>' || code[0] == '|' || code[0] == '=')) {
    order = code[0];
    code = code.substr(1);
  }
  if (dtype.state && dtype.state->type == Type::kTuple && dtype.state->items.size() >= 2 &&
      dtype.state->items[1]->type == Type::kString) {
    order = dtype.state->items[1]->string_value.empty() ? order
                                                        : dtype.state->items[1]->string_value[0];
  }
  if (order == '>') {
    MEGALOC_THROW(FormatError, where << ": big-endian NumPy data (dtype " << code
                                     << ") is not supported");
  }
  if (code.size() < 2 || std::strchr("iufb", code[0]) == nullptr) {
    MEGALOC_THROW(FormatError, where << ": unsupported NumPy dtype '" << code << "'");
  }
  out->kind = code[0];
  out->itemsize = std::atoi(code.c_str() + 1);
  const bool ok = (out->kind == 'f' && (out->itemsize == 4 || out->itemsize == 8)) ||
                  (out->kind != 'f' &&
                   (out->itemsize == 1 || out->itemsize == 2 || out->itemsize == 4 ||
                    out->itemsize == 8));
  if (!ok) MEGALOC_THROW(FormatError, where << ": unsupported NumPy dtype '" << code << "'");
}

// Raw bytes of a pickled bytes/str payload.
const std::string& PayloadBytes(const PickleValue& v, const std::string& where) {
  if (v.type != Type::kBytes && v.type != Type::kString) {
    MEGALOC_THROW(FormatError, where << ": NumPy data is a " << v.TypeName() << ", not bytes");
  }
  return v.string_value;
}

bool AsNumpy(const PickleValue& v, const std::string& where, NumpyData* out) {
  if (v.type != Type::kObject || !IsNumpyModule(v.module) || !v.called) return false;
  if (v.name == "scalar") {
    if (!v.args || v.args->items.size() != 2) {
      MEGALOC_THROW(FormatError, where << ": malformed NumPy scalar");
    }
    ParseDtype(*v.args->items[0], where, out);
    out->bytes = PayloadBytes(*v.args->items[1], where);
    out->shape.clear();
  } else if (v.name == "_reconstruct") {
    // state = (version, shape, dtype, is_fortran, data)
    const PickleValuePtr& s = v.state;
    if (!s || s->type != Type::kTuple || s->items.size() != 5 || !s->items[1]->IsSequence()) {
      MEGALOC_THROW(FormatError, where << ": malformed NumPy array state");
    }
    out->shape.clear();
    for (const auto& d : s->items[1]->items) {
      if (d->type != Type::kInt) MEGALOC_THROW(FormatError, where << ": malformed NumPy shape");
      out->shape.push_back(d->int_value);
    }
    ParseDtype(*s->items[2], where, out);
    if (s->items[3]->type == Type::kBool && s->items[3]->bool_value && out->shape.size() > 1) {
      MEGALOC_THROW(FormatError, where << ": Fortran-ordered NumPy arrays are not supported");
    }
    out->bytes = PayloadBytes(*s->items[4], where);
  } else {
    return false;
  }
  int64_t count = 1;
  for (const int64_t d : out->shape) count *= d;
  if (static_cast<int64_t>(out->bytes.size()) != count * out->itemsize) {
    MEGALOC_THROW(FormatError, where << ": NumPy data has " << out->bytes.size()
                                     << " bytes, the shape needs " << count * out->itemsize);
  }
  return true;
}

double NumpyElement(const NumpyData& a, size_t i) {
  const char* p = a.bytes.data() + i * a.itemsize;
  auto read = [p](auto tag) {
    decltype(tag) v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  switch (a.kind) {
    case 'f': return a.itemsize == 4 ? read(float{}) : read(double{});
    case 'i':
      switch (a.itemsize) {
        case 1: return read(int8_t{});
        case 2: return read(int16_t{});
        case 4: return read(int32_t{});
        default: return static_cast<double>(read(int64_t{}));
      }
    default:  // 'u', 'b'
      switch (a.itemsize) {
        case 1: return read(uint8_t{});
        case 2: return read(uint16_t{});
        case 4: return read(uint32_t{});
        default: return static_cast<double>(read(uint64_t{}));
      }
  }
}

// A list/tuple (or NumPy array) of numbers, as doubles.
std::vector<double> NumberList(const PickleValue& v, const std::string& where) {
  std::vector<double> out;
  NumpyData array;
  if (AsNumpy(v, where, &array)) {
    const size_t n = array.itemsize ? array.bytes.size() / array.itemsize : 0;
    for (size_t i = 0; i < n; ++i) out.push_back(NumpyElement(array, i));
    return out;
  }
  if (!v.IsSequence()) {
    MEGALOC_THROW(FormatError, where << " is a " << v.TypeName() << ", not a list of numbers");
  }
  for (size_t i = 0; i < v.items.size(); ++i) {
    const PickleValue& item = *v.items[i];
    NumpyData scalar;
    if (item.IsNumber()) {
      out.push_back(item.AsDouble());
    } else if (AsNumpy(item, where, &scalar) && scalar.shape.empty()) {
      out.push_back(NumpyElement(scalar, 0));
    } else {
      MEGALOC_THROW(FormatError, where << "[" << i << "] is a " << item.TypeName()
                                       << ", not a number");
    }
  }
  return out;
}

std::vector<int64_t> IdList(const PickleValue& v, const std::string& where) {
  std::vector<int64_t> ids;
  for (const double x : NumberList(v, where)) {
    if (x != static_cast<double>(static_cast<int64_t>(x))) {
      MEGALOC_THROW(FormatError, where << " contains the non-integer id " << x);
    }
    ids.push_back(static_cast<int64_t>(x));
  }
  return ids;
}

std::vector<std::string> StringList(const PickleValue& v, const std::string& where) {
  if (!v.IsSequence()) {
    MEGALOC_THROW(FormatError, where << " is a " << v.TypeName() << ", not a list of strings");
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < v.items.size(); ++i) {
    if (v.items[i]->type != Type::kString && v.items[i]->type != Type::kBytes) {
      MEGALOC_THROW(FormatError, where << "[" << i << "] is a " << v.items[i]->TypeName()
                                       << ", not a string");
    }
    out.push_back(v.items[i]->string_value);
  }
  return out;
}

void Validate(const RevisitopGroundTruth& gt, const std::string& source) {
  if (gt.gnd.size() != gt.qimlist.size()) {
    MEGALOC_THROW(FormatError, source << ": 'gnd' has " << gt.gnd.size()
                                      << " entries but 'qimlist' has " << gt.qimlist.size());
  }
  const auto n = static_cast<int64_t>(gt.imlist.size());
  for (size_t q = 0; q < gt.gnd.size(); ++q) {
    const RevisitopQueryGnd& g = gt.gnd[q];
    if (!g.has_bbx) {
      MEGALOC_THROW(FormatError, source << ": gnd[" << q << "] has no 'bbx'");
    }
    const std::vector<int64_t>* lists[3] = {&g.easy, &g.hard, &g.junk};
    const char* names[3] = {"easy", "hard", "junk"};
    for (int l = 0; l < 3; ++l) {
      for (const int64_t id : *lists[l]) {
        if (id < 0 || id >= n) {
          MEGALOC_THROW(FormatError, source << ": gnd[" << q << "]['" << names[l] << "'] has id "
                                            << id << ", outside imlist (" << n
                                            << " images; ids are 0-based)");
        }
      }
    }
  }
}

RevisitopGroundTruth FromJson(const std::string& text, const std::string& path) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    MEGALOC_THROW(FormatError, path << ": not a pickle and not valid JSON (" << e.what() << ")");
  }
  RevisitopGroundTruth gt;
  try {
    if (!root.is_object()) MEGALOC_THROW(FormatError, path << ": top-level JSON is not an object");
    for (const char* key : {"imlist", "qimlist", "gnd"}) {
      if (!root.contains(key)) MEGALOC_THROW(FormatError, path << ": missing key '" << key << "'");
    }
    gt.imlist = root.at("imlist").get<std::vector<std::string>>();
    gt.qimlist = root.at("qimlist").get<std::vector<std::string>>();
    const nlohmann::json& gnd = root.at("gnd");
    if (!gnd.is_array()) MEGALOC_THROW(FormatError, path << ": 'gnd' is not a list");
    for (size_t q = 0; q < gnd.size(); ++q) {
      RevisitopQueryGnd g;
      const nlohmann::json& e = gnd[q];
      if (e.contains("bbx")) {
        const auto bbx = e.at("bbx").get<std::vector<double>>();
        if (bbx.size() != 4) {
          MEGALOC_THROW(FormatError, path << ": gnd[" << q << "]['bbx'] has " << bbx.size()
                                          << " values, expected 4");
        }
        for (int k = 0; k < 4; ++k) g.bbx[k] = bbx[k];
        g.has_bbx = true;
      }
      if (e.contains("easy")) g.easy = e.at("easy").get<std::vector<int64_t>>();
      if (e.contains("hard")) g.hard = e.at("hard").get<std::vector<int64_t>>();
      if (e.contains("junk")) g.junk = e.at("junk").get<std::vector<int64_t>>();
      gt.gnd.push_back(std::move(g));
    }
  } catch (const nlohmann::json::exception& e) {
    MEGALOC_THROW(FormatError, path << ": unexpected JSON content (" << e.what() << ")");
  }
  return gt;
}

}  // namespace

RevisitopGroundTruth RevisitopGroundTruthFromPickle(const PickleValue& root,
                                                    const std::string& source) {
  if (root.type != Type::kDict) {
    MEGALOC_THROW(FormatError, source << ": the pickle holds a " << root.TypeName()
                                      << ", not the dict {imlist, qimlist, gnd}");
  }
  RevisitopGroundTruth gt;
  for (const char* key : {"imlist", "qimlist", "gnd"}) {
    if (!root.Find(key)) MEGALOC_THROW(FormatError, source << ": missing key '" << key << "'");
  }
  gt.imlist = StringList(*root.Find("imlist"), source + ": 'imlist'");
  gt.qimlist = StringList(*root.Find("qimlist"), source + ": 'qimlist'");
  const PickleValue& gnd = *root.Find("gnd");
  if (!gnd.IsSequence()) {
    MEGALOC_THROW(FormatError, source << ": 'gnd' is a " << gnd.TypeName() << ", not a list");
  }
  for (size_t q = 0; q < gnd.items.size(); ++q) {
    const PickleValue& entry = *gnd.items[q];
    std::ostringstream where;
    where << source << ": gnd[" << q << "]";
    if (entry.type != Type::kDict) {
      MEGALOC_THROW(FormatError, where.str() << " is a " << entry.TypeName() << ", not a dict");
    }
    RevisitopQueryGnd g;
    if (const PickleValuePtr bbx = entry.Find("bbx")) {
      const std::vector<double> values = NumberList(*bbx, where.str() + "['bbx']");
      if (values.size() != 4) {
        MEGALOC_THROW(FormatError, where.str() << "['bbx'] has " << values.size()
                                               << " values, expected 4");
      }
      for (int k = 0; k < 4; ++k) g.bbx[k] = values[k];
      g.has_bbx = true;
    }
    if (const PickleValuePtr v = entry.Find("easy")) g.easy = IdList(*v, where.str() + "['easy']");
    if (const PickleValuePtr v = entry.Find("hard")) g.hard = IdList(*v, where.str() + "['hard']");
    if (const PickleValuePtr v = entry.Find("junk")) g.junk = IdList(*v, where.str() + "['junk']");
    gt.gnd.push_back(std::move(g));
  }
  return gt;
}

RevisitopGroundTruth ReadRevisitopGroundTruth(const std::string& path) {
  // Opening a FIFO would block forever waiting for a writer; a device could be endless.
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    MEGALOC_THROW(IoError, path << ": not a regular file (a directory, device, FIFO or socket), not a "
                                   "ground-truth file");
  }
  const std::string bytes = ReadFileToString(path);
  RevisitopGroundTruth gt;
  // Pickles of protocol >= 2 start with PROTO (0x80); protocol 0/1 dicts start with '(' or '}'.
  const size_t first = bytes.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && (bytes[first] == '{' || bytes[first] == '[')) {
    gt = FromJson(bytes, path);
  } else {
    gt = RevisitopGroundTruthFromPickle(*ParsePickle(bytes, path), path);
  }
  Validate(gt, path);
  return gt;
}

}  // namespace megaloc
