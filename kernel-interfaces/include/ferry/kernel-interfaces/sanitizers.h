// Which sanitizer this translation unit is built with, said the same way under GCC
// (__SANITIZE_THREAD__, __SANITIZE_ADDRESS__) and clang (__has_feature): defines
// FERRY_UNDER_TSAN and FERRY_UNDER_ASAN to 1 when they apply.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define FERRY_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FERRY_UNDER_TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define FERRY_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FERRY_UNDER_ASAN 1
#endif
#endif
