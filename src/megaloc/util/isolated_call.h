#pragma once

// Runs a piece of work in a forked child process, so that a crash (a signal) or an endless loop
// inside a third-party library on hostile input becomes a result the caller can report, instead of
// taking the calling process down. Used to look at untrusted HDF5 files before this process opens
// them (libhdf5 1.10-2.2 crash or hang on some corrupt files; tests/fuzz/findings/hdf5/).
//
// The child shares nothing with the parent after the fork: it must not use threads started before
// it, and whatever it computes is lost (only the way it ended comes back). Call it while this
// process runs a single thread of its own work (e.g. before starting worker pools): the child
// inherits locks held by other threads at the moment of the fork.

#include <functional>
#include <string>

namespace megaloc {

struct IsolatedCallOptions {
  // The child is killed (and the call reports kStalled) when it has not called `progress` for this
  // many seconds. Default 60: far above any single HDF5 metadata operation on a local disk.
  double stall_seconds = 60.0;
  // Up to this many bytes of the child's standard error are kept (the tail) for the report; the
  // child's standard error never reaches this process's.
  int max_stderr_bytes = 4096;

  bool Check() const;  // logs and returns false on a bad value
};

struct IsolatedCallResult {
  enum class Status {
    kCompleted,  // `work` returned (or threw: exceptions are the caller's to meet again in-process)
    kSignaled,   // the child died from a signal (SIGSEGV, SIGABRT from an assertion, ...)
    kStalled,    // no progress for stall_seconds; the child was killed
    kExited,     // the child called exit() with a non-zero status itself
  };
  Status status = Status::kCompleted;
  int signal = 0;           // kSignaled: the signal number
  int exit_code = 0;        // kExited: the status
  std::string stderr_tail;  // the last non-empty line the child wrote to standard error
  double seconds = 0;       // wall time of the call

  bool ok() const { return status == Status::kCompleted; }
  // One line: "crashed with SIGSEGV (Segmentation fault)", "made no progress for 60 s", ...
  std::string Describe() const;
};

// Runs `work(progress)` in a child process and waits for it. `progress` may be called any number of
// times; each call resets the stall clock. Throws IoError when the child cannot be started.
IsolatedCallResult RunIsolated(const std::function<void(const std::function<void()>& progress)>& work,
                               const IsolatedCallOptions& options = IsolatedCallOptions());

}  // namespace megaloc
