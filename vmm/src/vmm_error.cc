#include "ferry/vmm/vmm_error.h"

namespace ferry::vmm {

std::string VmmError::message() const {
  std::string out = detail;
  if (cause) {
    out += (out.empty() ? "" : ": ") + cause->message();
  }
  return out;
}

}  // namespace ferry::vmm
