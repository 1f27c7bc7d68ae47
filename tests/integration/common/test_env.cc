#include "test_env.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace ferry::testing {

namespace {
std::string binary_dir() {
  const char* dir = std::getenv("FERRY_BINARY_DIR");
  return dir != nullptr ? dir : ".";
}
}  // namespace

std::string ferry_binary() { return binary_dir() + "/tools/ferry"; }

std::string test_guest() { return binary_dir() + "/tests/guests/ferry-test-guest.bin"; }

std::string make_temp_dir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    return {};
  }
  return buf.data();
}

std::string kvm_unavailable_reason() {
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return std::string("cannot open /dev/kvm: ") + std::strerror(errno);
  }
  close(fd);
  return {};
}

}  // namespace ferry::testing
