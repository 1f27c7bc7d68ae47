// Helpers shared by the predictor unit tests: the Backblaze data directory, a small real
// data subset loaded once per process, and a scratch directory.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "ferry/predictor/backblaze.h"
#include "ferry/predictor/risk_model.h"
#include "ferry/predictor/trainer.h"

namespace ferry::predictor::test {

/// The Backblaze dir (FERRY_DATA_DIR, else FERRY_SOURCE_DIR/../shared/data).
std::string data_dir();

/// The first 16 real days, reduced to every failing drive plus every 20th other drive.
const Dataset& small_backblaze();
/// The 10/6-day split of small_backblaze().
TimeSplit small_split();
/// A ranker trained on small_backblaze() (20 rounds, depth 4), trained once.
const RiskModel& small_ranker();

/// A fresh empty directory under the system temp dir.
std::filesystem::path scratch_dir(const std::string& name);

/// The fixture tree root (tests/unit/predictor/fixtures).
std::string fixtures();

}  // namespace ferry::predictor::test
