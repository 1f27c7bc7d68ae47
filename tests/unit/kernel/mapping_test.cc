#include "ferry/kernel-interfaces/mapping.h"

#include <gtest/gtest.h>

namespace ferry::kernel {
namespace {

TEST(Mapping, AnonymousSharedIsZeroedWritableAndMovable) {
  auto map = Mapping::anonymous_shared(1 << 20, false);
  ASSERT_TRUE(map) << map.error().message();
  EXPECT_EQ(map->size(), 1u << 20);
  EXPECT_EQ(map->data()[12345], 0);
  map->data()[12345] = 9;
  Mapping moved = std::move(*map);
  EXPECT_TRUE(map->empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(moved.data()[12345], 9);
}

TEST(Mapping, FailureNamesTheCall) {
  auto map = Mapping::anonymous_shared(0, false);
  ASSERT_FALSE(map);
  EXPECT_NE(map.error().message().find("mmap"), std::string::npos);
}

}  // namespace
}  // namespace ferry::kernel
