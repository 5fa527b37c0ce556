#include "megaloc/util/pickle.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <locale>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"

namespace megaloc {
namespace {

using Type = PickleValue::Type;

PickleValuePtr MakeValue(Type type) {
  auto value = std::make_shared<PickleValue>();
  value->type = type;
  return value;
}

PickleValuePtr MakeInt(int64_t v) {
  auto value = MakeValue(Type::kInt);
  value->int_value = v;
  return value;
}

PickleValuePtr MakeString(Type type, std::string s) {
  auto value = MakeValue(type);
  value->string_value = std::move(s);
  return value;
}

// Appends the UTF-8 encoding of a code point.
void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes UTF-8 text whose code points are all < 256 into latin-1 bytes (how Python 3 pickles
// bytes at protocol 2: _codecs.encode(str, 'latin1')). Returns false otherwise.
bool Utf8ToLatin1(const std::string& text, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
      ++i;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < text.size()) {
      const uint32_t cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3Fu);
      if (cp > 0xFF) return false;
      out->push_back(static_cast<char>(cp));
      i += 2;
    } else {
      return false;
    }
  }
  return true;
}

bool IsContainer(const PickleValue& v) {
  return v.type == Type::kList || v.type == Type::kTuple || v.type == Type::kSet ||
         v.type == Type::kDict || v.type == Type::kObject || v.type == Type::kPersistent;
}

// Children of a value in a fixed order: items, dict keys and values, args, kwargs, state.
size_t NumChildren(const PickleValue& v) {
  return v.items.size() + 2 * v.dict_items.size() + 3;
}
const PickleValue* ChildAt(const PickleValue& v, size_t i) {
  if (i < v.items.size()) return v.items[i].get();
  i -= v.items.size();
  if (i < 2 * v.dict_items.size()) {
    const auto& entry = v.dict_items[i / 2];
    return (i % 2 == 0 ? entry.first : entry.second).get();
  }
  i -= 2 * v.dict_items.size();
  return (i == 0 ? v.args : (i == 1 ? v.kwargs : v.state)).get();
}

// Moves every child reference of `v` into `out` (v keeps no children).
void MoveChildren(PickleValue* v, std::vector<PickleValuePtr>* out) {
  for (auto& item : v->items) out->push_back(std::move(item));
  v->items.clear();
  for (auto& entry : v->dict_items) {
    out->push_back(std::move(entry.first));
    out->push_back(std::move(entry.second));
  }
  v->dict_items.clear();
  if (v->args) out->push_back(std::move(v->args));
  if (v->kwargs) out->push_back(std::move(v->kwargs));
  if (v->state) out->push_back(std::move(v->state));
}

std::string OpcodeName(unsigned char op) {
  std::ostringstream out;
  out << "0x" << std::hex << std::setw(2) << std::setfill('0') << static_cast<int>(op);
  if (op >= 0x20 && op < 0x7F) out << " '" << static_cast<char>(op) << "'";
  return out.str();
}

class Unpickler {
 public:
  Unpickler(const std::string& bytes, const std::string& source) : data_(bytes), source_(source) {}

  // Breaks every reference between the containers made while parsing, except inside a validated
  // result: garbage (or everything, after an error) may hold memo cycles, which shared_ptr alone
  // would leak.
  ~Unpickler() {
    std::vector<PickleValuePtr> released;
    for (const PickleValuePtr& value : containers_) {
      if (!validated_.count(value.get())) MoveChildren(value.get(), &released);
    }
  }

  PickleValuePtr Run() {
    while (true) {
      if (pos_ >= data_.size()) {
        Fail(pos_, -1, "truncated stream: end of data before the STOP opcode");
      }
      op_offset_ = pos_;
      op_ = static_cast<unsigned char>(data_[pos_++]);
      if (Dispatch()) {
        Validate(result_);
        return result_;
      }
    }
  }

 private:
  // A new value; containers are registered for the cycle breaking in the destructor.
  PickleValuePtr New(Type type) {
    PickleValuePtr value = MakeValue(type);
    if (IsContainer(*value)) containers_.push_back(value);
    return value;
  }

  // Rejects a result that refers to itself or nests deeper than kMaxPickleDepth containers
  // (iterative depth-first walk; shared sub-trees are visited once).
  void Validate(const PickleValuePtr& root) {
    if (!IsContainer(*root)) return;
    struct Frame {
      const PickleValue* value;
      size_t next_child;
      int height;
    };
    std::unordered_map<const PickleValue*, int> height;  // -1 while on the current path
    std::vector<Frame> path;
    auto too_deep = [this]() {
      MEGALOC_THROW(FormatError, source_ << ": invalid pickle data: containers nest deeper than "
                                         << kMaxPickleDepth << " levels");
    };
    height[root.get()] = -1;
    path.push_back({root.get(), 0, 1});
    while (!path.empty()) {
      Frame& frame = path.back();
      if (frame.next_child < NumChildren(*frame.value)) {
        const PickleValue* child = ChildAt(*frame.value, frame.next_child++);
        if (child == nullptr || !IsContainer(*child)) continue;
        const auto it = height.find(child);
        if (it == height.end()) {
          if (path.size() >= static_cast<size_t>(kMaxPickleDepth)) too_deep();
          height[child] = -1;
          path.push_back({child, 0, 1});
        } else if (it->second < 0) {
          MEGALOC_THROW(FormatError, source_ << ": invalid pickle data: a container contains itself "
                                                "(recursive structures are not supported)");
        } else {
          frame.height = std::max(frame.height, it->second + 1);
        }
        continue;
      }
      const int done = frame.height;
      if (done > kMaxPickleDepth) too_deep();
      height[frame.value] = done;
      path.pop_back();
      if (!path.empty()) path.back().height = std::max(path.back().height, done + 1);
    }
    for (const auto& entry : height) validated_.insert(entry.first);
  }

  [[noreturn]] void Fail(size_t offset, int opcode, const std::string& reason) const {
    std::ostringstream out;
    out << source_ << ": invalid or unsupported pickle data at byte offset " << offset;
    if (opcode >= 0) out << " (opcode " << OpcodeName(static_cast<unsigned char>(opcode)) << ")";
    out << ": " << reason;
    throw FormatError(out.str());
  }
  [[noreturn]] void Fail(const std::string& reason) const { Fail(op_offset_, op_, reason); }

  // --- raw reads ---------------------------------------------------------------------------------
  const char* Take(uint64_t n) {
    if (n > data_.size() - pos_) {
      std::ostringstream out;
      out << "truncated stream: needs " << n << " more bytes, " << (data_.size() - pos_)
          << " left";
      Fail(out.str());
    }
    const char* p = data_.data() + pos_;
    pos_ += static_cast<size_t>(n);
    return p;
  }
  uint64_t ReadLittleEndian(int n) {
    const auto* p = reinterpret_cast<const unsigned char*>(Take(n));
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }
  // A text argument terminated by '\n' (protocol 0 opcodes), without the newline.
  std::string ReadLine() {
    const size_t end = data_.find('\n', pos_);
    if (end == std::string::npos) Fail("truncated stream: text argument without newline");
    std::string line = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }

  // --- stack --------------------------------------------------------------------------------------
  void Push(PickleValuePtr v) { stack_.push_back(std::move(v)); }
  PickleValuePtr Pop() {
    if (stack_.empty()) Fail("stack underflow");
    PickleValuePtr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  PickleValuePtr& Top() {
    if (stack_.empty()) Fail("stack underflow");
    return stack_.back();
  }
  std::vector<PickleValuePtr> PopMark() {
    if (metastack_.empty()) Fail("no MARK on the stack");
    std::vector<PickleValuePtr> items = std::move(stack_);
    stack_ = std::move(metastack_.back());
    metastack_.pop_back();
    return items;
  }
  void Memoize(uint64_t index) {
    memo_[index] = Top();
  }
  void Recall(uint64_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) {
      Fail("memo key " + std::to_string(index) + " was never stored");
    }
    Push(it->second);
  }

  // --- number parsing -----------------------------------------------------------------------------
  int64_t ParseDecimalInt(std::string text) {
    if (!text.empty() && (text.back() == 'L')) text.pop_back();
    if (text.empty()) Fail("empty integer literal");
    size_t i = 0;
    bool negative = false;
    if (text[0] == '-' || text[0] == '+') {
      negative = text[0] == '-';
      i = 1;
    }
    if (i >= text.size()) Fail("malformed integer literal '" + text + "'");
    uint64_t magnitude = 0;
    for (; i < text.size(); ++i) {
      if (text[i] < '0' || text[i] > '9') Fail("malformed integer literal '" + text + "'");
      const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
      if (magnitude > (UINT64_MAX - digit) / 10) Fail("integer " + text + " exceeds 64 bits");
      magnitude = magnitude * 10 + digit;
    }
    const uint64_t limit = negative ? (uint64_t{1} << 63) : (uint64_t{1} << 63) - 1;
    if (magnitude > limit) Fail("integer " + text + " exceeds the int64 range");
    return negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
  }
  // Little-endian two's complement of n bytes (LONG1 / LONG4).
  int64_t ParseLong(uint64_t n) {
    const auto* p = reinterpret_cast<const unsigned char*>(Take(n));
    if (n == 0) return 0;
    const bool negative = (p[n - 1] & 0x80) != 0;
    // Strip redundant sign-extension bytes, then require at most 8 significant bytes.
    uint64_t significant = n;
    while (significant > 8 && p[significant - 1] == (negative ? 0xFF : 0x00)) --significant;
    if (significant > 8) Fail("integer exceeds the int64 range");
    uint64_t v = 0;
    for (int64_t i = static_cast<int64_t>(significant) - 1; i >= 0; --i) v = (v << 8) | p[i];
    if (significant < 8 && negative) v |= ~uint64_t{0} << (8 * significant);
    const bool value_negative = (v >> 63) != 0;
    if (value_negative != negative) Fail("integer exceeds the int64 range");
    return static_cast<int64_t>(v);
  }
  double ParseDecimalFloat(const std::string& text) {
    std::istringstream in(text);
    in.imbue(std::locale::classic());
    double v = 0;
    in >> v;
    if (in.fail() || !(in >> std::ws).eof()) {
      // Python writes inf/nan as "inf", "-inf", "nan".
      if (text == "inf") return HUGE_VAL;
      if (text == "-inf") return -HUGE_VAL;
      if (text == "nan") return std::nan("");
      Fail("malformed float literal '" + text + "'");
    }
    return v;
  }

  // --- protocol 0 text literals -------------------------------------------------------------------
  // STRING: a Python 2 repr, e.g. 'abc' or "it's", with backslash escapes.
  std::string DecodeQuoted(const std::string& line) {
    if (line.size() < 2 || (line[0] != '\'' && line[0] != '"') || line.back() != line[0]) {
      Fail("STRING argument is not a quoted literal");
    }
    std::string out;
    for (size_t i = 1; i + 1 < line.size(); ++i) {
      char c = line[i];
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (i + 2 >= line.size()) Fail("dangling backslash in STRING literal");
      c = line[++i];
      switch (c) {
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'v': out.push_back('\v'); break;
        case '\\': case '\'': case '"': out.push_back(c); break;
        case 'x': {
          if (i + 2 > line.size() - 2) Fail("bad \\x escape in STRING");
          const std::string hex = line.substr(i + 1, 2);
          if (!std::isxdigit(static_cast<unsigned char>(hex[0])) ||
              !std::isxdigit(static_cast<unsigned char>(hex[1]))) {
            Fail("bad \\x escape in STRING");
          }
          out.push_back(static_cast<char>(std::stoi(hex, nullptr, 16)));
          i += 2;
          break;
        }
        default:
          if (c >= '0' && c <= '7') {
            int v = c - '0';
            for (int k = 0; k < 2 && i + 1 < line.size() - 1 && line[i + 1] >= '0' &&
                            line[i + 1] <= '7';
                 ++k) {
              v = v * 8 + (line[++i] - '0');
            }
            out.push_back(static_cast<char>(v & 0xFF));
          } else {
            out.push_back('\\');
            out.push_back(c);
          }
      }
    }
    return out;
  }
  // UNICODE: raw-unicode-escape (latin-1 bytes plus \uXXXX / \UXXXXXXXX) -> UTF-8.
  std::string DecodeRawUnicodeEscape(const std::string& line) {
    std::string out;
    for (size_t i = 0; i < line.size(); ++i) {
      const auto c = static_cast<unsigned char>(line[i]);
      if (c == '\\' && i + 1 < line.size() && (line[i + 1] == 'u' || line[i + 1] == 'U')) {
        const size_t digits = line[i + 1] == 'u' ? 4 : 8;
        if (i + 2 + digits > line.size()) Fail("bad \\u escape in UNICODE");
        uint32_t cp = 0;
        for (size_t k = 0; k < digits; ++k) {
          const char h = line[i + 2 + k];
          if (!std::isxdigit(static_cast<unsigned char>(h))) Fail("bad \\u escape in UNICODE");
          cp = cp * 16 + static_cast<uint32_t>(std::stoi(std::string(1, h), nullptr, 16));
        }
        if (cp > 0x10FFFF) Fail("code point out of range in UNICODE");
        AppendUtf8(cp, &out);
        i += 1 + digits;
      } else {
        AppendUtf8(c, &out);
      }
    }
    return out;
  }

  // --- objects -------------------------------------------------------------------------------------
  PickleValuePtr MakeGlobal(const std::string& module, const std::string& name) {
    auto v = New(Type::kObject);
    v->module = module;
    v->name = name;
    return v;
  }
  // Applies a callable to positional args (REDUCE / NEWOBJ / OBJ / INST). A few side-effect-free
  // builtins are mapped to plain values; everything else is recorded as a called kObject.
  PickleValuePtr Call(const PickleValuePtr& callable, const PickleValuePtr& args,
                      const PickleValuePtr& kwargs) {
    if (callable->type != Type::kObject || callable->called) {
      Fail("cannot call a " + callable->TypeName() + " (only global references are callable)");
    }
    if (args->type != Type::kTuple) Fail("call arguments are a " + args->TypeName() + ", not a tuple");
    const std::string& m = callable->module;
    const std::string& n = callable->name;
    const bool builtin = m == "builtins" || m == "__builtin__";
    if (!kwargs) {
      if (m == "_codecs" && n == "encode" && args->items.size() == 2 &&
          args->items[0]->type == Type::kString && args->items[1]->type == Type::kString &&
          (args->items[1]->string_value == "latin1" || args->items[1]->string_value == "latin-1")) {
        std::string bytes;
        if (!Utf8ToLatin1(args->items[0]->string_value, &bytes)) {
          Fail("_codecs.encode argument is not latin-1 text");
        }
        return MakeString(Type::kBytes, std::move(bytes));
      }
      if (builtin && (n == "bytes" || n == "bytearray") && args->items.empty()) {
        return MakeString(Type::kBytes, "");
      }
      if (builtin && (n == "set" || n == "frozenset") && args->items.size() <= 1) {
        auto set = New(Type::kSet);
        if (!args->items.empty()) {
          if (!args->items[0]->IsSequence() && args->items[0]->type != Type::kSet) {
            Fail(n + "() argument is a " + args->items[0]->TypeName());
          }
          set->items = args->items[0]->items;
        }
        return set;
      }
    }
    auto v = MakeGlobal(m, n);
    v->called = true;
    v->args = args;
    v->kwargs = kwargs;
    return v;
  }

  PickleValuePtr TupleOf(std::vector<PickleValuePtr> items) {
    auto t = New(Type::kTuple);
    t->items = std::move(items);
    return t;
  }

  void AppendTo(const PickleValuePtr& target, std::vector<PickleValuePtr> items) {
    if (target->type == Type::kList || target->type == Type::kObject) {
      for (auto& item : items) target->items.push_back(std::move(item));
    } else {
      Fail("cannot append to a " + target->TypeName());
    }
  }
  void SetItems(const PickleValuePtr& target, std::vector<PickleValuePtr> items) {
    if (items.size() % 2 != 0) Fail("odd number of items for SETITEMS");
    if (target->type != Type::kDict && target->type != Type::kObject) {
      Fail("cannot set items on a " + target->TypeName());
    }
    // Python dict semantics: a repeated str/int key replaces the value in place. A hash index
    // per target keeps this linear in the number of keys.
    auto& index = dict_index_[target.get()];
    for (size_t i = 0; i < items.size(); i += 2) {
      const PickleValue& key = *items[i];
      if (key.type == Type::kString || key.type == Type::kInt) {
        std::string hash_key = key.type == Type::kString ? "s" : "i";
        hash_key += key.type == Type::kString ? key.string_value : std::to_string(key.int_value);
        const auto inserted = index.emplace(std::move(hash_key), target->dict_items.size());
        if (!inserted.second) {
          target->dict_items[inserted.first->second].second = items[i + 1];
          continue;
        }
      }
      target->dict_items.emplace_back(items[i], items[i + 1]);
    }
  }

  // Executes one opcode; returns true at STOP.
  bool Dispatch() {
    switch (op_) {
      case 0x80: {  // PROTO
        const auto version = static_cast<int>(ReadLittleEndian(1));
        if (version > 5) Fail("unsupported pickle protocol " + std::to_string(version));
        return false;
      }
      case 0x95: {  // FRAME
        const uint64_t n = ReadLittleEndian(8);
        if (n > data_.size() - pos_) Fail("truncated stream: frame longer than the data");
        return false;
      }
      case '.':  // STOP
        result_ = Pop();
        return true;
      case '(':  // MARK
        metastack_.push_back(std::move(stack_));
        stack_.clear();
        return false;
      case '0':  // POP
        if (!stack_.empty()) {
          stack_.pop_back();
        } else {
          PopMark();
        }
        return false;
      case '1':  // POP_MARK
        PopMark();
        return false;
      case '2':  // DUP
        Push(Top());
        return false;

      case 'N': Push(New(Type::kNone)); return false;
      case 0x88:
      case 0x89: {  // NEWTRUE / NEWFALSE
        auto v = New(Type::kBool);
        v->bool_value = op_ == 0x88;
        Push(v);
        return false;
      }
      case 'I': {  // INT (text); "01"/"00" are True/False in protocol 0
        const std::string line = ReadLine();
        if (line == "01" || line == "00") {
          auto v = New(Type::kBool);
          v->bool_value = line == "01";
          Push(v);
        } else {
          Push(MakeInt(ParseDecimalInt(line)));
        }
        return false;
      }
      case 'L': Push(MakeInt(ParseDecimalInt(ReadLine()))); return false;
      case 'J': Push(MakeInt(static_cast<int32_t>(ReadLittleEndian(4)))); return false;
      case 'K': Push(MakeInt(static_cast<int64_t>(ReadLittleEndian(1)))); return false;
      case 'M': Push(MakeInt(static_cast<int64_t>(ReadLittleEndian(2)))); return false;
      case 0x8a: {  // LONG1
        const uint64_t n = ReadLittleEndian(1);
        Push(MakeInt(ParseLong(n)));
        return false;
      }
      case 0x8b: {  // LONG4
        const auto n = static_cast<int32_t>(ReadLittleEndian(4));
        if (n < 0) Fail("negative LONG4 length");
        Push(MakeInt(ParseLong(static_cast<uint64_t>(n))));
        return false;
      }
      case 'F': {
        auto v = New(Type::kFloat);
        v->float_value = ParseDecimalFloat(ReadLine());
        Push(v);
        return false;
      }
      case 'G': {  // BINFLOAT, big-endian IEEE 754 double
        const auto* p = reinterpret_cast<const unsigned char*>(Take(8));
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
        auto v = New(Type::kFloat);
        std::memcpy(&v->float_value, &bits, sizeof(bits));
        Push(v);
        return false;
      }

      case 'S': Push(MakeString(Type::kString, DecodeQuoted(ReadLine()))); return false;
      case 'T': {  // BINSTRING
        const auto n = static_cast<int32_t>(ReadLittleEndian(4));
        if (n < 0) Fail("negative BINSTRING length");
        Push(MakeString(Type::kString, std::string(Take(n), static_cast<size_t>(n))));
        return false;
      }
      case 'U': {  // SHORT_BINSTRING
        const uint64_t n = ReadLittleEndian(1);
        Push(MakeString(Type::kString, std::string(Take(n), n)));
        return false;
      }
      case 'V': Push(MakeString(Type::kString, DecodeRawUnicodeEscape(ReadLine()))); return false;
      case 'X':
      case 0x8c:
      case 0x8d: {  // BINUNICODE / SHORT_BINUNICODE / BINUNICODE8
        const uint64_t n = ReadLittleEndian(op_ == 'X' ? 4 : (op_ == 0x8c ? 1 : 8));
        const char* p = Take(n);
        Push(MakeString(Type::kString, std::string(p, static_cast<size_t>(n))));
        return false;
      }
      case 'B':
      case 'C':
      case 0x8e:
      case 0x96: {  // BINBYTES / SHORT_BINBYTES / BINBYTES8 / BYTEARRAY8
        const uint64_t n = ReadLittleEndian(op_ == 'B' ? 4 : (op_ == 'C' ? 1 : 8));
        const char* p = Take(n);
        Push(MakeString(Type::kBytes, std::string(p, static_cast<size_t>(n))));
        return false;
      }

      case ']': Push(New(Type::kList)); return false;
      case ')': Push(New(Type::kTuple)); return false;
      case '}': Push(New(Type::kDict)); return false;
      case 0x8f: Push(New(Type::kSet)); return false;
      case 'l': {
        auto v = New(Type::kList);
        v->items = PopMark();
        Push(v);
        return false;
      }
      case 't': Push(TupleOf(PopMark())); return false;
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        const size_t n = static_cast<size_t>(op_ - 0x84);
        if (stack_.size() < n) Fail("stack underflow");
        std::vector<PickleValuePtr> items(stack_.end() - n, stack_.end());
        stack_.resize(stack_.size() - n);
        Push(TupleOf(std::move(items)));
        return false;
      }
      case 'd': {
        auto v = New(Type::kDict);
        SetItems(v, PopMark());
        Push(v);
        return false;
      }
      case 0x91: {  // FROZENSET
        auto v = New(Type::kSet);
        v->items = PopMark();
        Push(v);
        return false;
      }
      case 'a': {
        PickleValuePtr item = Pop();
        AppendTo(Top(), {item});
        return false;
      }
      case 'e': {
        std::vector<PickleValuePtr> items = PopMark();
        AppendTo(Top(), std::move(items));
        return false;
      }
      case 's': {
        PickleValuePtr value = Pop();
        PickleValuePtr key = Pop();
        SetItems(Top(), {key, value});
        return false;
      }
      case 'u': {
        std::vector<PickleValuePtr> items = PopMark();
        SetItems(Top(), std::move(items));
        return false;
      }
      case 0x90: {  // ADDITEMS
        std::vector<PickleValuePtr> items = PopMark();
        if (Top()->type != Type::kSet) Fail("ADDITEMS on a " + Top()->TypeName());
        for (auto& item : items) Top()->items.push_back(std::move(item));
        return false;
      }

      case 'p': Memoize(static_cast<uint64_t>(ParseDecimalInt(ReadLine()))); return false;
      case 'q': Memoize(ReadLittleEndian(1)); return false;
      case 'r': Memoize(ReadLittleEndian(4)); return false;
      case 0x94: Memoize(memo_.size()); return false;  // MEMOIZE
      case 'g': Recall(static_cast<uint64_t>(ParseDecimalInt(ReadLine()))); return false;
      case 'h': Recall(ReadLittleEndian(1)); return false;
      case 'j': Recall(ReadLittleEndian(4)); return false;

      case 'c': {  // GLOBAL
        const std::string module = ReadLine();
        const std::string name = ReadLine();
        Push(MakeGlobal(module, name));
        return false;
      }
      case 0x93: {  // STACK_GLOBAL
        PickleValuePtr name = Pop();
        PickleValuePtr module = Pop();
        if (name->type != Type::kString || module->type != Type::kString) {
          Fail("STACK_GLOBAL operands are not strings");
        }
        Push(MakeGlobal(module->string_value, name->string_value));
        return false;
      }
      case 'R': {  // REDUCE
        PickleValuePtr args = Pop();
        PickleValuePtr callable = Pop();
        Push(Call(callable, args, nullptr));
        return false;
      }
      case 0x81: {  // NEWOBJ
        PickleValuePtr args = Pop();
        PickleValuePtr cls = Pop();
        Push(Call(cls, args, nullptr));
        return false;
      }
      case 0x92: {  // NEWOBJ_EX
        PickleValuePtr kwargs = Pop();
        PickleValuePtr args = Pop();
        PickleValuePtr cls = Pop();
        Push(Call(cls, args, kwargs));
        return false;
      }
      case 'o': {  // OBJ
        std::vector<PickleValuePtr> items = PopMark();
        if (items.empty()) Fail("OBJ without a class");
        PickleValuePtr cls = items.front();
        items.erase(items.begin());
        Push(Call(cls, TupleOf(std::move(items)), nullptr));
        return false;
      }
      case 'i': {  // INST
        const std::string module = ReadLine();
        const std::string name = ReadLine();
        std::vector<PickleValuePtr> items = PopMark();
        Push(Call(MakeGlobal(module, name), TupleOf(std::move(items)), nullptr));
        return false;
      }
      case 'b': {  // BUILD
        PickleValuePtr state = Pop();
        PickleValuePtr& target = Top();
        if (target->type != Type::kObject) Fail("BUILD on a " + target->TypeName());
        target->state = state;
        return false;
      }

      case 'P': {  // PERSID (protocol 0: the id is a line of text)
        auto v = New(Type::kPersistent);
        v->args = MakeString(Type::kString, ReadLine());
        Push(v);
        return false;
      }
      case 'Q': {  // BINPERSID
        auto v = New(Type::kPersistent);
        v->args = Pop();
        Push(v);
        return false;
      }
      case 0x82: case 0x83: case 0x84: Fail("the extension registry (EXT1/2/4) is not supported");
      case 0x97: case 0x98: Fail("out-of-band buffers (protocol 5) are not supported");
      default:
        Fail("unknown opcode");
    }
  }

  const std::string& data_;
  const std::string& source_;
  size_t pos_ = 0;
  size_t op_offset_ = 0;
  unsigned char op_ = 0;
  std::vector<PickleValuePtr> stack_;
  std::vector<std::vector<PickleValuePtr>> metastack_;
  std::unordered_map<uint64_t, PickleValuePtr> memo_;
  PickleValuePtr result_;
  // Every container made (kept alive until the end of the parse, so the index keys stay valid).
  std::vector<PickleValuePtr> containers_;
  // SETITEM(S) targets: str/int key -> position in dict_items.
  std::unordered_map<const PickleValue*, std::unordered_map<std::string, size_t>> dict_index_;
  // Containers of the validated result (their references are kept).
  std::unordered_set<const PickleValue*> validated_;
};

}  // namespace

PickleValue::~PickleValue() {
  std::vector<PickleValuePtr> pending;
  MoveChildren(this, &pending);
  while (!pending.empty()) {
    PickleValuePtr value = std::move(pending.back());
    pending.pop_back();
    // The last owner empties the value before it dies, so no destructor recurses.
    if (value && value.use_count() == 1) MoveChildren(value.get(), &pending);
  }
}

std::string PickleValue::TypeName() const {
  switch (type) {
    case Type::kNone: return "None";
    case Type::kBool: return "bool";
    case Type::kInt: return "int";
    case Type::kFloat: return "float";
    case Type::kString: return "str";
    case Type::kBytes: return "bytes";
    case Type::kList: return "list";
    case Type::kTuple: return "tuple";
    case Type::kSet: return "set";
    case Type::kDict: return "dict";
    case Type::kObject: return module + "." + name + (called ? "(...)" : "");
    case Type::kPersistent: return "persistent id";
  }
  return "?";
}

double PickleValue::AsDouble() const {
  switch (type) {
    case Type::kBool: return bool_value ? 1.0 : 0.0;
    case Type::kInt: return static_cast<double>(int_value);
    case Type::kFloat: return float_value;
    default:
      MEGALOC_THROW(InvalidArgument, "pickle value is a " << TypeName() << ", not a number");
  }
}

PickleValuePtr PickleValue::Find(const std::string& key) const {
  if (type != Type::kDict) return nullptr;
  for (const auto& entry : dict_items) {
    if (entry.first->type == Type::kString && entry.first->string_value == key) return entry.second;
  }
  return nullptr;
}

bool PickleValue::IsGlobal(const std::string& module_name, const std::string& global_name) const {
  return type == Type::kObject && module == module_name && name == global_name;
}

PickleValuePtr ParsePickle(const std::string& bytes, const std::string& source) {
  if (bytes.empty()) {
    MEGALOC_THROW(FormatError, source << ": empty file (not a pickle)");
  }
  Unpickler unpickler(bytes, source);
  return unpickler.Run();
}

PickleValuePtr ReadPickle(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    MEGALOC_THROW(IoError, path << ": not a regular file (a directory, device, FIFO or socket)");
  }
  return ParsePickle(ReadFileToString(path), path);
}

}  // namespace megaloc
