// Loader for Backblaze "Hard Drive Data and Stats" daily CSV files (plain or .csv.gz,
// read through zlib). Parsing is a pure function over text so tests feed it fixtures;
// the loader turns a directory of day files into a labelled Dataset (one history per
// serial; failure_day = the day Backblaze marked failure=1, the drive's last day).
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/predictor/error.h"
#include "ferry/predictor/telemetry.h"

namespace ferry::predictor {

/// One drive on one day, reduced to the disk schema's channels.
struct DiskDayRow {
  int32_t day = 0;
  std::string serial;
  std::string model;
  bool failure = false;
  std::vector<float> values;  // disk_schema() order; empty CSV field = NaN (not reported)
};

struct CsvOptions {
  // false: the first bad row fails the whole file with its line number (the default, so
  // a truncated download never trains a model silently). true: bad rows are skipped and
  // counted in DayTable::skipped_rows.
  bool skip_malformed = false;
};

struct DayTable {
  std::vector<DiskDayRow> rows;
  std::size_t skipped_rows = 0;
  std::vector<std::string> skipped_reasons;  // the first few, for the log
};

/// Parses one day's CSV text. Errors: MissingColumn (a required header column absent),
/// MalformedCsv (field count, bad number, bad date), NonFinite ("nan"/"inf" in a SMART
/// field), EmptyDay (header but no rows). `source` names the file in messages.
PResult<DayTable> parse_backblaze_csv(std::string_view text, std::string_view source,
                                      const CsvOptions& options = {});

/// Reads a whole file, gunzipping it when it is gzip-compressed (zlib handles both).
PResult<std::string> read_maybe_gz(const std::string& path);

/// The day files (*.csv or *.csv.gz whose name starts with a YYYY-MM-DD date) in `dir`,
/// sorted by date.
PResult<std::vector<std::string>> list_day_files(const std::string& dir);

struct LoadOptions {
  CsvOptions csv;
  std::size_t max_days = 0;  // 0 = all day files
};

/// Loads the day files of `dir` into a disk Dataset. Rows of one serial become one history
/// in date order; a serial seen twice on one day keeps its first row.
PResult<Dataset> load_backblaze_dataset(const std::string& dir, const LoadOptions& options = {});

/// The Backblaze directory to use: `explicit_dir` if given, else $FERRY_DATA_DIR, else
/// $FERRY_SOURCE_DIR/../shared/data, else the source tree's ../shared/data. Each candidate
/// may be the data root (holding backblaze/) or the backblaze directory itself.
std::string resolve_backblaze_dir(const std::optional<std::string>& explicit_dir = std::nullopt);

}  // namespace ferry::predictor
