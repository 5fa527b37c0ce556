#pragma once

// A pickle writer: protocol-2 opcodes laid out as CPython's pickle (and NumPy's __reduce__) lays
// them out. Used to write torch.save zip checkpoints (model/weights.cc) and by the tests to build
// real-format pickles byte by byte. Methods append one opcode (or a small fixed sequence) and
// return *this for chaining; bytes() is the stream so far (Proto(2) first, Stop() last).

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace megaloc {

class PickleWriter {
 public:
  PickleWriter& Proto(int version) { return Op(0x80).Byte(version); }
  PickleWriter& Stop() { return Op('.'); }
  PickleWriter& Mark() { return Op('('); }
  PickleWriter& None() { return Op('N'); }
  PickleWriter& Bool(bool v) { return Op(v ? 0x88 : 0x89); }
  PickleWriter& EmptyDict() { return Op('}'); }
  PickleWriter& EmptyList() { return Op(']'); }
  PickleWriter& EmptyTuple() { return Op(')'); }
  PickleWriter& Append() { return Op('a'); }
  PickleWriter& Appends() { return Op('e'); }
  PickleWriter& SetItem() { return Op('s'); }
  PickleWriter& SetItems() { return Op('u'); }
  PickleWriter& Tuple() { return Op('t'); }
  PickleWriter& Tuple1() { return Op(0x85); }
  PickleWriter& Tuple2() { return Op(0x86); }
  PickleWriter& Tuple3() { return Op(0x87); }
  PickleWriter& Reduce() { return Op('R'); }
  PickleWriter& Build() { return Op('b'); }
  PickleWriter& BinPut(int index) { return Op('q').Byte(index); }
  PickleWriter& BinGet(int index) { return Op('h').Byte(index); }
  PickleWriter& BinPersId() { return Op('Q'); }

  PickleWriter& Int(int64_t v) {
    if (v >= 0 && v < 256) return Op('K').Byte(static_cast<int>(v));
    if (v >= 0 && v < 65536) return Op('M').Le(static_cast<uint64_t>(v), 2);
    if (v >= INT32_MIN && v <= INT32_MAX) return Op('J').Le(static_cast<uint32_t>(v), 4);
    return Op(0x8a).Byte(8).Le(static_cast<uint64_t>(v), 8);
  }
  PickleWriter& Float(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    Op('G');
    for (int i = 7; i >= 0; --i) Byte(static_cast<int>((bits >> (8 * i)) & 0xFF));
    return *this;
  }
  // Python 3 str (BINUNICODE, UTF-8).
  PickleWriter& Str(const std::string& s) {
    Op('X').Le(s.size(), 4);
    bytes_ += s;
    return *this;
  }
  // Python 3 bytes (SHORT_BINBYTES / BINBYTES, protocol 3).
  PickleWriter& Bytes(const std::string& s) {
    if (s.size() < 256) {
      Op('C').Byte(static_cast<int>(s.size()));
    } else {
      Op('B').Le(s.size(), 4);
    }
    bytes_ += s;
    return *this;
  }
  // Protocol-0/2 GLOBAL "module\nname\n".
  PickleWriter& Global(const std::string& module, const std::string& name) {
    Op('c');
    bytes_ += module + "\n" + name + "\n";
    return *this;
  }
  // Python 3 bytes at protocol 2: _codecs.encode(<latin-1 text as str>, 'latin1').
  PickleWriter& BytesProtocol2(const std::string& raw) {
    std::string utf8;
    for (const unsigned char c : raw) {
      if (c < 0x80) {
        utf8.push_back(static_cast<char>(c));
      } else {
        utf8.push_back(static_cast<char>(0xC0 | (c >> 6)));
        utf8.push_back(static_cast<char>(0x80 | (c & 0x3F)));
      }
    }
    return Global("_codecs", "encode").Str(utf8).Str("latin1").Tuple2().Reduce();
  }
  // A 1-d NumPy array pickled at protocol 2 (numpy.ndarray.__reduce__ + __setstate__).
  // dtype e.g. "i8", "f8"; raw = little-endian element bytes.
  PickleWriter& NumpyArray1d(const std::string& dtype, int64_t length, const std::string& raw,
                             const std::string& module = "numpy.core.multiarray") {
    Global(module, "_reconstruct").Global("numpy", "ndarray").Int(0).Tuple1();
    BytesProtocol2("b").Tuple3().Reduce();
    Mark().Int(1).Int(length).Tuple1();
    Dtype(dtype);
    Bool(false).BytesProtocol2(raw).Tuple().Build();
    return *this;
  }
  // numpy.dtype(code, False, True) with state (3, '<', None, None, None, -1, -1, 0).
  PickleWriter& Dtype(const std::string& code, const std::string& order = "<") {
    Global("numpy", "dtype").Str(code).Bool(false).Bool(true).Tuple3().Reduce();
    Mark().Int(3).Str(order).None().None().None().Int(-1).Int(-1).Int(0).Tuple().Build();
    return *this;
  }
  // A NumPy scalar: numpy.core.multiarray.scalar(dtype, bytes).
  PickleWriter& NumpyScalar(const std::string& dtype, const std::string& raw) {
    Global("numpy.core.multiarray", "scalar");
    Dtype(dtype).BytesProtocol2(raw).Tuple2().Reduce();
    return *this;
  }

  // Helpers for common containers.
  PickleWriter& StrList(const std::vector<std::string>& items) {
    EmptyList();
    if (items.empty()) return *this;
    Mark();
    for (const auto& s : items) Str(s);
    return Appends();
  }
  PickleWriter& IntList(const std::vector<int64_t>& items) {
    EmptyList();
    if (items.empty()) return *this;
    Mark();
    for (const int64_t v : items) Int(v);
    return Appends();
  }
  PickleWriter& FloatList(const std::vector<double>& items) {
    EmptyList();
    if (items.empty()) return *this;
    Mark();
    for (const double v : items) Float(v);
    return Appends();
  }

  PickleWriter& Raw(const std::string& s) {
    bytes_ += s;
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

  // One opcode byte (e.g. 'Q' BINPERSID), for the opcodes without a method.
  PickleWriter& Op(int op) { return Byte(op); }

 private:
  PickleWriter& Byte(int b) {
    bytes_.push_back(static_cast<char>(b & 0xFF));
    return *this;
  }
  PickleWriter& Le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) Byte(static_cast<int>((v >> (8 * i)) & 0xFF));
    return *this;
  }
  std::string bytes_;
};

}  // namespace megaloc
