// Where the integration tests find what the build produced, and whether this machine
// can run KVM guests at all.
#pragma once

#include <string>

namespace ferry::testing {

/// $FERRY_BINARY_DIR/tools/ferry (CTest sets FERRY_BINARY_DIR).
std::string ferry_binary();
/// $FERRY_BINARY_DIR/tests/guests/ferry-test-guest.bin.
std::string test_guest();
/// A fresh directory under $TMPDIR (or /tmp), removed by the caller if wanted.
std::string make_temp_dir(const std::string& prefix);
/// Empty if /dev/kvm opens read-write; otherwise why not (for GTEST_SKIP).
std::string kvm_unavailable_reason();

}  // namespace ferry::testing

/// Skips the current test, loudly, when /dev/kvm is not usable on this machine.
#define FERRY_REQUIRE_KVM()                                                          \
  do {                                                                               \
    const std::string ferry_kvm_reason = ::ferry::testing::kvm_unavailable_reason(); \
    if (!ferry_kvm_reason.empty()) {                                                 \
      GTEST_SKIP() << "SKIPPED: needs /dev/kvm: " << ferry_kvm_reason;               \
    }                                                                                \
  } while (0)
