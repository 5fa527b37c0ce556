#pragma once

// Error handling and logging of the megaloc library.
//
// Two tiers, as in COLMAP:
//  * Bad user configuration: an options struct's Check() returns false after logging the reason with
//    CHECK_OPTION_* (no exception).
//  * Broken invariants or bad data: MEGALOC_CHECK* throw a typed exception carrying file:line and
//    the values involved. Front ends catch std::exception, print what() and return EXIT_FAILURE.
//
// The macros are prefixed (MEGALOC_*) because LibTorch defines its own CHECK/LOG macros.

#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>

namespace megaloc {

// Base of every exception thrown by the library. what() is a complete, user-facing sentence.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file could not be read or has the wrong content (names the file and the reason).
class IoError : public Error {
 public:
  using Error::Error;
};

// A file was read but its content is not what the format requires.
class FormatError : public IoError {
 public:
  using IoError::IoError;
};

// An image could not be decoded or is unusable (too small, ...).
class ImageError : public IoError {
 public:
  using IoError::IoError;
};

// Invalid argument or broken invariant (programming error or invalid input values).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// Process-wide verbosity of MEGALOC_LOG: 0 = errors only, 1 = warnings, 2 = info (default), 3 = debug.
// The environment variable MEGALOC_LOG_LEVEL (one digit 0-3) sets the starting level.
void SetLogLevel(int level);
int GetLogLevel();

namespace internal {

enum class LogSeverity { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

// Accumulates one log line and writes it (to stderr) on destruction if the level is enabled.
class LogMessage {
 public:
  LogMessage(LogSeverity severity, const char* file, int line);
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  LogSeverity severity_;
  std::ostringstream stream_;
};

// Builds the message of a failed check and throws ExceptionT.
template <typename ExceptionT>
[[noreturn]] void ThrowCheckFailure(const char* file, int line, const std::string& condition,
                                    const std::string& message) {
  std::ostringstream out;
  out << message;
  if (!message.empty() && condition.empty()) {
    throw ExceptionT(out.str());
  }
  if (!message.empty()) out << " ";
  out << "[" << file << ":" << line << "] Check failed: " << condition;
  throw ExceptionT(out.str());
}

std::string StripPath(const char* file);

template <typename A, typename B>
std::string FormatBinary(const char* expr, const A& a, const B& b) {
  std::ostringstream out;
  out << expr << " (" << a << " vs. " << b << ")";
  return out.str();
}

// The lock held while a MEGALOC_LOG line is written (for code that briefly redirects stderr).
std::mutex& LogMutex();

// Logs "[file:line] Check failed: ..." for CHECK_OPTION_* and returns false.
bool LogOptionFailure(const char* file, int line, const std::string& what);

}  // namespace internal
}  // namespace megaloc

#define MEGALOC_LOG(severity)                                                           \
  ::megaloc::internal::LogMessage(::megaloc::internal::LogSeverity::k##severity,       \
                                  __FILE__, __LINE__)                                   \
      .stream()

// Throws megaloc::InvalidArgument when cond is false.
#define MEGALOC_CHECK(cond)                                                                     \
  do {                                                                                          \
    if (!(cond))                                                                                \
      ::megaloc::internal::ThrowCheckFailure<::megaloc::InvalidArgument>(                       \
          ::megaloc::internal::StripPath(__FILE__).c_str(), __LINE__, #cond, "");               \
  } while (0)

// Throws megaloc::InvalidArgument with a message when cond is false (msg is a stream expression).
#define MEGALOC_CHECK_MSG(cond, msg)                                                            \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      std::ostringstream megaloc_check_stream_;                                                 \
      megaloc_check_stream_ << msg;                                                             \
      ::megaloc::internal::ThrowCheckFailure<::megaloc::InvalidArgument>(                       \
          ::megaloc::internal::StripPath(__FILE__).c_str(), __LINE__, #cond,                    \
          megaloc_check_stream_.str());                                                         \
    }                                                                                           \
  } while (0)

#define MEGALOC_CHECK_OP_(a, b, op)                                                             \
  do {                                                                                          \
    const auto& megaloc_a_ = (a);                                                               \
    const auto& megaloc_b_ = (b);                                                               \
    if (!(megaloc_a_ op megaloc_b_))                                                            \
      ::megaloc::internal::ThrowCheckFailure<::megaloc::InvalidArgument>(                       \
          ::megaloc::internal::StripPath(__FILE__).c_str(), __LINE__,                           \
          ::megaloc::internal::FormatBinary(#a " " #op " " #b, megaloc_a_, megaloc_b_), "");    \
  } while (0)

#define MEGALOC_CHECK_EQ(a, b) MEGALOC_CHECK_OP_(a, b, ==)
#define MEGALOC_CHECK_NE(a, b) MEGALOC_CHECK_OP_(a, b, !=)
#define MEGALOC_CHECK_LT(a, b) MEGALOC_CHECK_OP_(a, b, <)
#define MEGALOC_CHECK_LE(a, b) MEGALOC_CHECK_OP_(a, b, <=)
#define MEGALOC_CHECK_GT(a, b) MEGALOC_CHECK_OP_(a, b, >)
#define MEGALOC_CHECK_GE(a, b) MEGALOC_CHECK_OP_(a, b, >=)

// Throws an exception of the given type with a streamed message: MEGALOC_THROW(IoError, path << ": " << why).
#define MEGALOC_THROW(ExceptionType, msg)            \
  do {                                               \
    std::ostringstream megaloc_throw_stream_;        \
    megaloc_throw_stream_ << msg;                    \
    throw ::megaloc::ExceptionType(megaloc_throw_stream_.str()); \
  } while (0)

// For options structs' Check(): log and return false.
#define CHECK_OPTION_IMPL_(cond, text)                                                  \
  if (!(cond)) {                                                                        \
    return ::megaloc::internal::LogOptionFailure(__FILE__, __LINE__, text);             \
  }
#define CHECK_OPTION(cond) CHECK_OPTION_IMPL_(cond, #cond)
#define CHECK_OPTION_OP_(a, b, op) \
  CHECK_OPTION_IMPL_((a)op(b), ::megaloc::internal::FormatBinary(#a " " #op " " #b, (a), (b)))
#define CHECK_OPTION_EQ(a, b) CHECK_OPTION_OP_(a, b, ==)
#define CHECK_OPTION_NE(a, b) CHECK_OPTION_OP_(a, b, !=)
#define CHECK_OPTION_LT(a, b) CHECK_OPTION_OP_(a, b, <)
#define CHECK_OPTION_LE(a, b) CHECK_OPTION_OP_(a, b, <=)
#define CHECK_OPTION_GT(a, b) CHECK_OPTION_OP_(a, b, >)
#define CHECK_OPTION_GE(a, b) CHECK_OPTION_OP_(a, b, >=)
