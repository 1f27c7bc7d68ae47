// SysError: what the kernel layer returns when a syscall or ioctl fails. It carries the
// operation's name ("KVM_GET_DIRTY_LOG", "mmap") so one log line says what failed, and
// the errno as a std::error_code. Nothing outside kernel-interfaces reads errno.
#pragma once

#include <cerrno>
#include <string>
#include <system_error>

#include "ferry/kernel-interfaces/result.h"

namespace ferry::kernel {

struct SysError {
  std::error_code code;
  const char* op = "";

  /// "KVM_CREATE_VM: Device or resource busy (errno 16)".
  std::string message() const;
  int errnum() const { return code.value(); }
};

template <class T>
using SysResult = Result<T, SysError>;

/// Builds a SysError from the current errno (call right after the failing syscall).
SysError last_error(const char* op);

/// Builds a SysError from an explicit errno value (for APIs that return -errno).
inline SysError make_error(int errnum, const char* op) {
  return SysError{std::error_code(errnum, std::generic_category()), op};
}

/// Runs `call` until it stops failing with EINTR, at most `kMaxEintrRetries` times.
/// Signals interrupt ioctls such as KVM_CREATE_VM; a bounded retry keeps a signal storm
/// from turning into a hang.
inline constexpr int kMaxEintrRetries = 64;
template <class F>
auto retry_eintr(F&& call) -> decltype(call()) {
  decltype(call()) rc{};
  for (int attempt = 0; attempt < kMaxEintrRetries; ++attempt) {
    rc = call();
    if (!(rc == -1 && errno == EINTR)) {
      return rc;
    }
  }
  return rc;
}

}  // namespace ferry::kernel
