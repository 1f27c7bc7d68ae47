#include "ferry/kernel-interfaces/sys_error.h"

#include <fmt/format.h>

namespace ferry::kernel {

std::string SysError::message() const {
  return fmt::format("{}: {} (errno {})", op, code.message(), code.value());
}

SysError last_error(const char* op) { return make_error(errno, op); }

}  // namespace ferry::kernel
