#include "ferry/predictor/backblaze.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <cstdlib>
#include <filesystem>
#include <unordered_map>

namespace ferry::predictor {

namespace {

constexpr std::size_t kMaxReasons = 8;

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = line.find(',', start);
    if (comma == std::string_view::npos) {
      out.push_back(line.substr(start));
      return out;
    }
    out.push_back(line.substr(start, comma - start));
    start = comma + 1;
  }
}

bool is_non_finite_word(std::string_view s) {
  std::string lower;
  for (char c : s) {
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (!lower.empty() && (lower[0] == '-' || lower[0] == '+')) {
    lower.erase(0, 1);
  }
  return lower == "nan" || lower == "inf" || lower == "infinity";
}

struct Columns {
  std::size_t count = 0;
  std::size_t date = 0, serial = 0, model = 0, failure = 0;
  std::vector<std::size_t> channels;
};

PResult<Columns> parse_header(std::string_view header, std::string_view source) {
  const auto names = split_fields(header);
  Columns cols;
  cols.count = names.size();
  auto find = [&](std::string_view name) -> PResult<std::size_t> {
    auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) {
      return perr(PredictorErrc::MissingColumn, fmt::format("{}: no column '{}'", source, name));
    }
    return static_cast<std::size_t>(it - names.begin());
  };
  auto d = find("date"), s = find("serial_number"), m = find("model"), f = find("failure");
  for (auto* r : {&d, &s, &m, &f}) {
    if (!*r) {
      return fail(r->error());
    }
  }
  cols.date = *d, cols.serial = *s, cols.model = *m, cols.failure = *f;
  for (const auto& ch : disk_schema().channels) {
    auto c = find(ch);
    if (!c) {
      return fail(c.error());
    }
    cols.channels.push_back(*c);
  }
  return cols;
}

// Parses one data row; on error returns the reason (without file/line).
PResult<DiskDayRow> parse_row(std::string_view line, const Columns& cols) {
  const auto f = split_fields(line);
  if (f.size() != cols.count) {
    return perr(PredictorErrc::MalformedCsv,
                fmt::format("expected {} fields, got {}", cols.count, f.size()));
  }
  DiskDayRow row;
  auto day = parse_iso_date(f[cols.date]);
  if (!day) {
    return perr(PredictorErrc::MalformedCsv, fmt::format("bad date '{}'", f[cols.date]));
  }
  row.day = *day;
  if (f[cols.serial].empty()) {
    return perr(PredictorErrc::MalformedCsv, "empty serial_number");
  }
  row.serial = std::string(f[cols.serial]);
  row.model = std::string(f[cols.model]);
  if (f[cols.failure] != "0" && f[cols.failure] != "1") {
    return perr(PredictorErrc::MalformedCsv,
                fmt::format("failure must be 0 or 1, got '{}'", f[cols.failure]));
  }
  row.failure = f[cols.failure] == "1";
  const auto& names = disk_schema().channels;
  for (std::size_t i = 0; i < cols.channels.size(); ++i) {
    std::string_view v = f[cols.channels[i]];
    if (v.empty()) {
      row.values.push_back(kMissing);
      continue;
    }
    if (is_non_finite_word(v)) {
      return perr(PredictorErrc::NonFinite, fmt::format("{} = '{}'", names[i], v));
    }
    double x = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (ec == std::errc::result_out_of_range) {
      return perr(PredictorErrc::NonFinite, fmt::format("{} = '{}' overflows", names[i], v));
    }
    if (ec != std::errc() || p != v.data() + v.size()) {
      return perr(PredictorErrc::MalformedCsv, fmt::format("{} = '{}' is not a number", names[i], v));
    }
    // Range-check in double: converting an out-of-range double to float is undefined.
    if (!(std::fabs(x) <= std::numeric_limits<float>::max())) {
      return perr(PredictorErrc::NonFinite, fmt::format("{} = '{}' overflows", names[i], v));
    }
    row.values.push_back(static_cast<float>(x));
  }
  return row;
}

}  // namespace

PResult<DayTable> parse_backblaze_csv(std::string_view text, std::string_view source,
                                      const CsvOptions& options) {
  DayTable table;
  std::size_t pos = 0, line_no = 0;
  std::optional<Columns> cols;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (!cols) {
      auto header = parse_header(line, source);
      if (!header) {
        return fail(header.error());
      }
      cols = std::move(*header);
      continue;
    }
    if (line.empty()) {
      continue;
    }
    auto row = parse_row(line, *cols);
    if (!row) {
      auto e = row.error();
      e.detail = fmt::format("{}:{}: {}", source, line_no, e.detail);
      if (!options.skip_malformed) {
        return fail(e);
      }
      ++table.skipped_rows;
      if (table.skipped_reasons.size() < kMaxReasons) {
        table.skipped_reasons.push_back(e.message());
      }
      continue;
    }
    table.rows.push_back(std::move(*row));
  }
  if (!cols) {
    return perr(PredictorErrc::MissingColumn, fmt::format("{}: empty file, no header", source));
  }
  if (table.rows.empty()) {
    return perr(PredictorErrc::EmptyDay,
                fmt::format("{}: no valid rows ({} skipped)", source, table.skipped_rows));
  }
  return table;
}

PResult<std::string> read_maybe_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) {
    return perr(PredictorErrc::OpenData, fmt::format("cannot open {}", path));
  }
  gzbuffer(f, 1 << 17);
  std::string out;
  std::vector<char> buf(1 << 18);
  while (true) {
    const int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int errnum = 0;
      std::string msg = gzerror(f, &errnum);
      gzclose(f);
      return perr(PredictorErrc::OpenData, fmt::format("{}: {}", path, msg));
    }
    if (n == 0) {
      break;
    }
    out.append(buf.data(), static_cast<std::size_t>(n));
  }
  // A truncated .gz stream reads as a short file; gzclose reports it as Z_BUF_ERROR.
  if (gzclose(f) != Z_OK) {
    return perr(PredictorErrc::OpenData, fmt::format("{}: truncated or corrupt gzip", path));
  }
  return out;
}

PResult<std::vector<std::string>> list_day_files(const std::string& dir) {
  std::error_code ec;
  std::vector<std::pair<int32_t, std::string>> found;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool csv = name.ends_with(".csv") || name.ends_with(".csv.gz");
    if (!csv || name.size() < 10 || !entry.is_regular_file()) {
      continue;
    }
    if (auto day = parse_iso_date(std::string_view(name).substr(0, 10))) {
      found.emplace_back(*day, entry.path().string());
    }
  }
  if (ec) {
    return perr(PredictorErrc::OpenData, fmt::format("{}: {}", dir, ec.message()));
  }
  if (found.empty()) {
    return perr(PredictorErrc::OpenData, fmt::format("{}: no YYYY-MM-DD*.csv[.gz] files", dir));
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  out.reserve(found.size());
  for (auto& [day, path] : found) {
    out.push_back(std::move(path));
  }
  return out;
}

PResult<Dataset> load_backblaze_dataset(const std::string& dir, const LoadOptions& options) {
  auto files = list_day_files(dir);
  if (!files) {
    return fail(files.error());
  }
  if (options.max_days > 0 && files->size() > options.max_days) {
    files->resize(options.max_days);
  }
  Dataset ds;
  ds.schema = disk_schema();
  ds.first_day = std::numeric_limits<int32_t>::max();
  ds.last_day = std::numeric_limits<int32_t>::min();
  std::unordered_map<std::string, std::size_t> index;
  for (const auto& path : *files) {
    auto text = read_maybe_gz(path);
    if (!text) {
      return fail(text.error());
    }
    const std::string name = std::filesystem::path(path).filename().string();
    auto table = parse_backblaze_csv(*text, name, options.csv);
    if (!table) {
      return fail(table.error());
    }
    for (auto& row : table->rows) {
      auto [it, fresh] = index.emplace(row.serial, ds.devices.size());
      if (fresh) {
        LabelledDevice dev;
        dev.history.device_id = row.serial;
        dev.history.host = row.serial;  // Backblaze hides pods; one drive per "host"
        dev.history.model = row.model;
        ds.devices.push_back(std::move(dev));
      }
      LabelledDevice& dev = ds.devices[it->second];
      auto& samples = dev.history.samples;
      if (!samples.empty() && samples.back().day >= row.day) {
        continue;  // duplicate or out-of-order row for this serial
      }
      samples.push_back(TelemetrySample{row.day, std::move(row.values)});
      if (row.failure && !dev.failure_day) {
        dev.failure_day = row.day;
      }
      ds.first_day = std::min(ds.first_day, row.day);
      ds.last_day = std::max(ds.last_day, row.day);
    }
  }
  return ds;
}

namespace {

std::optional<std::string> backblaze_under(const std::string& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(fs::path(root) / "backblaze", ec)) {
    return (fs::path(root) / "backblaze").string();
  }
  if (fs::is_directory(root, ec)) {
    return root;
  }
  return std::nullopt;
}

}  // namespace

std::string resolve_backblaze_dir(const std::optional<std::string>& explicit_dir) {
  if (explicit_dir) {
    return backblaze_under(*explicit_dir).value_or(*explicit_dir);
  }
  if (const char* env = std::getenv("FERRY_DATA_DIR"); env != nullptr && *env != '\0') {
    return backblaze_under(env).value_or(env);
  }
  std::vector<std::string> roots;
  if (const char* src = std::getenv("FERRY_SOURCE_DIR"); src != nullptr && *src != '\0') {
    roots.push_back(std::string(src) + "/../shared/data");
  }
#ifdef FERRY_PREDICTOR_SOURCE_ROOT
  roots.emplace_back(FERRY_PREDICTOR_SOURCE_ROOT "/../shared/data");
#endif
  roots.emplace_back("../shared/data");
  for (const auto& root : roots) {
    if (auto dir = backblaze_under(root)) {
      return *dir;
    }
  }
  return roots.front() + "/backblaze";
}

}  // namespace ferry::predictor
