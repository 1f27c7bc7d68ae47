// Backblaze CSV parsing and loading: good rows, every documented bad-input case, gzip.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <fstream>

#include "ferry/predictor/backblaze.h"
#include "test_util.h"

namespace ferry::predictor {
namespace {

const std::string kHeader =
    "date,serial_number,model,capacity_bytes,failure,smart_1_raw,smart_5_raw,smart_9_raw,"
    "smart_194_raw,smart_197_raw\n";

TEST(BackblazeCsv, ParsesRowsAndTreatsEmptyFieldsAsMissing) {
  const std::string text = kHeader +
                           "2013-04-10,S1,ST3000DM001,3000,0,100,0,4031,26,0\n"
                           "2013-04-10,S2,ST3000DM001,3000,1,,8,,30,2\r\n";
  auto t = parse_backblaze_csv(text, "day.csv");
  ASSERT_TRUE(t) << t.error().message();
  ASSERT_EQ(t->rows.size(), 2u);
  EXPECT_EQ(t->rows[0].serial, "S1");
  EXPECT_EQ(t->rows[0].day, *parse_iso_date("2013-04-10"));
  EXPECT_FALSE(t->rows[0].failure);
  EXPECT_FLOAT_EQ(t->rows[0].values[2], 4031.0f);
  EXPECT_TRUE(t->rows[1].failure);
  EXPECT_TRUE(std::isnan(t->rows[1].values[0]));
  EXPECT_FLOAT_EQ(t->rows[1].values[4], 2.0f);
}

TEST(BackblazeCsv, MissingColumnIsNamed) {
  auto t = parse_backblaze_csv("date,serial_number,model,failure,smart_1_raw\n", "x.csv");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().errc, PredictorErrc::MissingColumn);
  EXPECT_NE(t.error().message().find("smart_5_raw"), std::string::npos);
}

TEST(BackblazeCsv, MalformedRowsReportFileAndLine) {
  const std::pair<std::string, std::string> cases[] = {
      {"2013-04-10,S1,M,1,0,1,2\n", "expected 10 fields"},
      {"2013-04-10,S1,M,1,0,abc,0,1,1,0\n", "not a number"},
      {"2013-04-10,S1,M,1,2,1,0,1,1,0\n", "failure must be 0 or 1"},
      {"2013-13-10,S1,M,1,0,1,0,1,1,0\n", "bad date"},
      {"2013-04-10,,M,1,0,1,0,1,1,0\n", "empty serial"},
  };
  for (const auto& [row, why] : cases) {
    auto t = parse_backblaze_csv(kHeader + "2013-04-10,S0,M,1,0,1,0,1,1,0\n" + row, "d.csv");
    ASSERT_FALSE(t) << row;
    EXPECT_EQ(t.error().errc, PredictorErrc::MalformedCsv) << row;
    EXPECT_NE(t.error().detail.find("d.csv:3"), std::string::npos) << t.error().message();
    EXPECT_NE(t.error().detail.find(why), std::string::npos) << t.error().message();
  }
}

TEST(BackblazeCsv, NanAndInfinityAreRejected) {
  for (const char* v : {"nan", "NaN", "inf", "-Infinity", "1e999"}) {
    auto t = parse_backblaze_csv(kHeader + "2013-04-10,S1,M,1,0,1," + v + ",1,1,0\n", "d.csv");
    ASSERT_FALSE(t) << v;
    EXPECT_EQ(t.error().errc, PredictorErrc::NonFinite) << v;
  }
}

TEST(BackblazeCsv, EmptyDayAndEmptyFile) {
  auto header_only = parse_backblaze_csv(kHeader, "d.csv");
  ASSERT_FALSE(header_only);
  EXPECT_EQ(header_only.error().errc, PredictorErrc::EmptyDay);
  auto empty = parse_backblaze_csv("", "d.csv");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().errc, PredictorErrc::MissingColumn);
}

TEST(BackblazeCsv, SkipMalformedCountsBadRows) {
  const std::string text = kHeader + "2013-04-10,S1,M,1,0,1,0,1,1,0\n" +
                           "garbage\n2013-04-10,S2,M,1,0,nan,0,1,1,0\n";
  auto t = parse_backblaze_csv(text, "d.csv", CsvOptions{true});
  ASSERT_TRUE(t);
  EXPECT_EQ(t->rows.size(), 1u);
  EXPECT_EQ(t->skipped_rows, 2u);
  EXPECT_EQ(t->skipped_reasons.size(), 2u);
  // Only bad rows: still an empty day, with the count in the message.
  auto none = parse_backblaze_csv(kHeader + "garbage\n", "d.csv", CsvOptions{true});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().errc, PredictorErrc::EmptyDay);
}

void write_gz(const std::filesystem::path& p, const std::string& text) {
  gzFile f = gzopen(p.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
  gzclose(f);
}

TEST(BackblazeLoad, GzipAndPlainFilesAndTruncation) {
  const auto dir = test::scratch_dir("gz");
  const std::string text = kHeader + "2013-04-10,S1,M,1,0,1,0,1,1,0\n";
  write_gz(dir / "a.csv.gz", text);
  std::ofstream(dir / "b.csv") << text;
  auto a = read_maybe_gz(dir / "a.csv.gz");
  auto b = read_maybe_gz(dir / "b.csv");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, text);
  EXPECT_EQ(*b, text);
  // Cut the gzip stream in half.
  std::string big;
  for (int i = 0; i < 2000; ++i) {
    big += "2013-04-10,S" + std::to_string(i) + ",M,1,0,1,0,1,1,0\n";
  }
  write_gz(dir / "c.csv.gz", kHeader + big);
  const auto size = std::filesystem::file_size(dir / "c.csv.gz");
  std::filesystem::resize_file(dir / "c.csv.gz", size / 2);
  auto c = read_maybe_gz(dir / "c.csv.gz");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().errc, PredictorErrc::OpenData);
  auto missing = read_maybe_gz(dir / "nope.csv.gz");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().errc, PredictorErrc::OpenData);
}

TEST(BackblazeLoad, DatasetFromDayFiles) {
  const auto dir = test::scratch_dir("days");
  std::ofstream(dir / "2013-04-11.csv") << kHeader + "2013-04-11,S1,M,1,0,1,0,24,1,0\n" +
                                               "2013-04-11,S2,M,1,1,1,5,24,1,3\n";
  std::ofstream(dir / "2013-04-10.csv") << kHeader + "2013-04-10,S1,M,1,0,1,0,0,1,0\n" +
                                               "2013-04-10,S2,M,1,0,1,2,0,1,1\n" +
                                               "2013-04-10,S2,M,1,0,1,2,0,1,1\n";
  std::ofstream(dir / "notes.txt") << "ignored";
  auto files = list_day_files(dir);
  ASSERT_TRUE(files);
  ASSERT_EQ(files->size(), 2u);
  EXPECT_NE((*files)[0].find("2013-04-10"), std::string::npos);
  auto ds = load_backblaze_dataset(dir);
  ASSERT_TRUE(ds) << ds.error().message();
  ASSERT_EQ(ds->devices.size(), 2u);
  EXPECT_EQ(ds->last_day - ds->first_day, 1);
  const auto& s2 = ds->devices[1];
  EXPECT_EQ(s2.history.samples.size(), 2u);  // the duplicate row is dropped
  ASSERT_TRUE(s2.failure_day.has_value());
  EXPECT_EQ(*s2.failure_day, *parse_iso_date("2013-04-11"));
  EXPECT_FALSE(ds->devices[0].failure_day.has_value());
  // A malformed day fails the whole load by default, naming the file.
  std::ofstream(dir / "2013-04-12.csv") << kHeader + "2013-04-12,S1,M,1,0,1,0\n";
  auto bad = load_backblaze_dataset(dir);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().detail.find("2013-04-12.csv:2"), std::string::npos);
  auto empty_dir = list_day_files(test::scratch_dir("empty"));
  ASSERT_FALSE(empty_dir);
}

TEST(BackblazeLoad, RealDataFirstDays) {
  LoadOptions o;
  o.max_days = 2;
  auto ds = load_backblaze_dataset(test::data_dir(), o);
  ASSERT_TRUE(ds) << ds.error().message();
  EXPECT_EQ(format_iso_date(ds->first_day), "2013-04-10");
  EXPECT_EQ(format_iso_date(ds->last_day), "2013-04-11");
  std::size_t rows = 0, failures = 0;
  for (const auto& d : ds->devices) {
    rows += d.history.samples.size();
    failures += d.failure_day ? 1 : 0;
  }
  EXPECT_EQ(rows, 2u * 21195u);  // SOURCE.md: 21,195 drives on each of the first days
  EXPECT_EQ(failures, 1u);
}

TEST(IsoDate, RoundTripsAndRejectsInvalid) {
  EXPECT_EQ(format_iso_date(*parse_iso_date("2013-04-10")), "2013-04-10");
  EXPECT_EQ(*parse_iso_date("1970-01-01"), 0);
  EXPECT_FALSE(parse_iso_date("2013-02-29"));
  EXPECT_FALSE(parse_iso_date("2013-4-10"));
  EXPECT_FALSE(parse_iso_date("abcd-ef-gh"));
}

}  // namespace
}  // namespace ferry::predictor
