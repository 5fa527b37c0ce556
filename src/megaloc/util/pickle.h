#pragma once

// A minimal, generic reader of Python pickle streams (protocols 0-5) that builds a value tree.
//
// Scope: the data pickles that evaluation ground truths use (revisitop's gnd_<dataset>.pkl: dicts,
// lists, tuples, str, int, float; optionally NumPy arrays/scalars written by numpy's __reduce__).
// Nothing is executed: a GLOBAL/STACK_GLOBAL reference and the REDUCE/NEWOBJ/BUILD opcodes applied
// to it become a kObject node recording the callable's module and name, its arguments and its
// state, for the caller to interpret (see e.g. megaloc/eval/revisitop_gnd.cc for numpy arrays).
//
// Persistent ids (PERSID / BINPERSID, how torch.save refers to tensor storages) become kPersistent
// nodes holding the id, for the caller to resolve (model/weights.cc). Unsupported opcodes
// (extension registry, out-of-band buffers) and truncated or inconsistent streams raise
// FormatError naming the file, the byte offset and the opcode.
//
// Limits for untrusted files: the value tree may nest at most kMaxPickleDepth containers deep and
// may not refer to itself (a cycle built with the memo); both are FormatErrors. Destroying a tree
// never recurses, whatever its depth.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace megaloc {

// Deepest container nesting ParsePickle accepts (real data pickles nest < 10 levels).
constexpr int kMaxPickleDepth = 1000;

struct PickleValue;
// Values are shared: the pickle memo can make several containers refer to the same object.
using PickleValuePtr = std::shared_ptr<PickleValue>;

struct PickleValue {
  enum class Type {
    kNone,
    kBool,
    kInt,     // Python int within int64 range (larger ints are rejected)
    kFloat,   // Python float
    kString,  // Python str (UTF-8 encoded) or Python 2 str (raw bytes, protocols 0-2)
    kBytes,   // Python 3 bytes / bytearray
    kList,
    kTuple,
    kSet,     // set / frozenset
    kDict,    // insertion order kept; keys may be any value
    kObject,  // global reference, possibly called (REDUCE / NEWOBJ / OBJ / INST) and built (BUILD)
    kPersistent,  // persistent id (PERSID / BINPERSID); the id is in `args`
  };

  PickleValue() = default;
  PickleValue(const PickleValue&) = default;
  PickleValue& operator=(const PickleValue&) = default;
  // Releases the children iteratively (a deeply nested tree must not overflow the stack).
  ~PickleValue();

  Type type = Type::kNone;
  bool bool_value = false;
  int64_t int_value = 0;
  double float_value = 0.0;
  // kString / kBytes payload.
  std::string string_value;
  // kList / kTuple / kSet elements; for kObject, items appended with APPEND(S).
  std::vector<PickleValuePtr> items;
  // kDict entries; for kObject, entries set with SETITEM(S).
  std::vector<std::pair<PickleValuePtr, PickleValuePtr>> dict_items;

  // kObject: the callable, e.g. module "numpy.core.multiarray", name "_reconstruct".
  std::string module;
  std::string name;
  // kObject: true once the global was called (args is then a kTuple; for NEWOBJ_EX the keyword
  // arguments are in `kwargs`).
  bool called = false;
  PickleValuePtr args;
  PickleValuePtr kwargs;
  // kObject: the argument of BUILD (__setstate__), null if none.
  PickleValuePtr state;

  // Short description for error messages: "int", "str", "list", "numpy.dtype(...)", ...
  std::string TypeName() const;
  bool IsNumber() const { return type == Type::kInt || type == Type::kFloat || type == Type::kBool; }
  bool IsSequence() const { return type == Type::kList || type == Type::kTuple; }
  // kInt / kBool as int64; kFloat as double (int -> double exact for |v| < 2^53).
  double AsDouble() const;
  // Dict lookup by string key (kDict only); null if absent.
  PickleValuePtr Find(const std::string& key) const;
  // Same, for kObject values that describe the given global.
  bool IsGlobal(const std::string& module_name, const std::string& global_name) const;
};

// Parses a complete pickle stream (up to its STOP opcode). `source` names the data in errors
// (usually the file path). Throws FormatError on malformed, truncated or unsupported input.
PickleValuePtr ParsePickle(const std::string& bytes, const std::string& source);

// Reads and parses a pickle file. Throws IoError (missing/unreadable) or FormatError.
PickleValuePtr ReadPickle(const std::string& path);

}  // namespace megaloc
