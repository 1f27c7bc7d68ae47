// Result<T, E>: the project's single alias for fallible returns.
// tl::expected follows the C++23 std::expected design (and_then/transform/or_else);
// switching to std::expected later is a change to this one file.
#pragma once

#include <tl/expected.hpp>

namespace ferry {

template <class T, class E>
using Result = tl::expected<T, E>;

template <class E>
using Unexpected = tl::unexpected<E>;

/// Wraps an error value so it converts to any Result<T, E>.
template <class E>
[[nodiscard]] Unexpected<std::decay_t<E>> fail(E&& error) {
  return Unexpected<std::decay_t<E>>(std::forward<E>(error));
}

}  // namespace ferry
