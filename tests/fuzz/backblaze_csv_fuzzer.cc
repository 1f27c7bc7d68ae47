// Fuzzes the Backblaze day-file CSV parser (parse_backblaze_csv) the predictor trains
// on: header lookup, field splitting, numbers, dates, NaN/inf handling, in both the
// strict mode and the skip-malformed-rows mode (first input byte, bit 0).
#include <cstdint>
#include <string_view>

#include "ferry/predictor/backblaze.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  ferry::predictor::CsvOptions options;
  options.skip_malformed = (data[0] & 1) != 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  auto table = ferry::predictor::parse_backblaze_csv(text, "fuzz.csv", options);
  if (table) {
    const size_t schema = ferry::predictor::disk_schema().channels.size();
    for (const auto& row : table->rows) {
      if (row.values.size() != schema) {
        __builtin_trap();  // every row carries one value per schema channel
      }
    }
  }
  return 0;
}
