#include "test_util.h"

#include <unistd.h>

#include <cstdlib>
#include <optional>

namespace ferry::predictor::test {

std::string data_dir() { return resolve_backblaze_dir(); }

const Dataset& small_backblaze() {
  static const Dataset data = [] {
    LoadOptions opts;
    opts.max_days = 16;
    auto full = load_backblaze_dataset(data_dir(), opts);
    if (!full) {
      ADD_FAILURE() << "Backblaze data not found at " << data_dir() << ": "
                    << full.error().message();
      return Dataset{};
    }
    Dataset small;
    small.schema = full->schema;
    small.first_day = full->first_day;
    small.last_day = full->last_day;
    for (std::size_t i = 0; i < full->devices.size(); ++i) {
      if (full->devices[i].failure_day || i % 20 == 0) {
        small.devices.push_back(std::move(full->devices[i]));
      }
    }
    return small;
  }();
  return data;
}

TimeSplit small_split() {
  auto s = split_by_days(small_backblaze(), 10);
  EXPECT_TRUE(s.has_value());
  return s.value_or(TimeSplit{});
}

const RiskModel& small_ranker() {
  static const std::optional<RiskModel> model = [] {
    TrainParams p;
    p.rounds = 20;
    auto m = train_risk_model(small_backblaze(), small_split(), p);
    if (!m) {
      ADD_FAILURE() << m.error().message();
      return std::optional<RiskModel>();
    }
    return std::optional<RiskModel>(std::move(*m));
  }();
  if (!model) {
    std::abort();  // the ADD_FAILURE above says why
  }
  return *model;
}

std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("ferry-predictor-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string fixtures() { return FERRY_PREDICTOR_FIXTURES; }

}  // namespace ferry::predictor::test
