#include <fmt/format.h>

#include "ferry/migration/byte_stream.h"

namespace ferry::migration {

namespace {
const char* errc_text(StreamErrc errc) {
  switch (errc) {
    case StreamErrc::Closed:
      return "stream closed by peer";
    case StreamErrc::TimedOut:
      return "stream timed out";
    case StreamErrc::Io:
      return "stream I/O error";
    case StreamErrc::Tls:
      return "TLS error";
    case StreamErrc::Aborted:
      return "stream aborted";
    case StreamErrc::Invalid:
      break;
  }
  return "stream error";
}
}  // namespace

std::string StreamError::message() const {
  std::string out = errc_text(errc);
  if (!detail.empty()) {
    out += ": " + detail;
  }
  if (code) {
    out += fmt::format(" ({})", code.message());
  }
  return out;
}

}  // namespace ferry::migration
