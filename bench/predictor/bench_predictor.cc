// bench_predictor [--data DIR] [--rounds N]: times (1) loading the 30 Backblaze days,
// (2) training the rank:pairwise model on all of them with 2 threads, (3) in-process
// scoring of one host (8 disks, 30-day histories) and of 10,000 drives, and compares the
// per-row cost with XGBoost's own predict (1 thread).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "ferry/predictor/backblaze.h"
#include "ferry/predictor/cpu_synth.h"
#include "ferry/predictor/report.h"
#include "ferry/predictor/trainer.h"
#include "ferry/predictor/xgb_booster.h"

using namespace ferry::predictor;
using Clock = std::chrono::steady_clock;

namespace {

double secs_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Median wall time of `reps` calls to fn, in microseconds.
template <class F>
double median_us(int reps, F&& fn) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    fn();
    t.push_back(secs_since(t0) * 1e6);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::string> dir;
  TrainParams params;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--data") == 0) {
      dir = argv[i + 1];
    } else if (std::strcmp(argv[i], "--rounds") == 0) {
      params.rounds = std::stoi(argv[i + 1]);
    }
  }
  auto t0 = Clock::now();
  auto data = load_backblaze_dataset(resolve_backblaze_dir(dir));
  if (!data) {
    fmt::print(stderr, "bench_predictor: {}\n", data.error().message());
    return 1;
  }
  fmt::print("load 30 days ({} drives):            {:8.2f} s\n", data->devices.size(), secs_since(t0));
  const TimeSplit all{data->first_day, data->last_day, data->last_day, data->last_day};
  t0 = Clock::now();
  auto model = train_risk_model(*data, all, params);
  if (!model) {
    fmt::print(stderr, "bench_predictor: {}\n", model.error().message());
    return 1;
  }
  fmt::print("train rank:pairwise, {} rounds, {} threads: {:8.2f} s ({} rows)\n", params.rounds,
             params.nthread, secs_since(t0), model->info().train_rows);

  const auto histories = histories_as_of(*data, data->last_day);
  const std::vector<DeviceTelemetryHistory> host(histories.begin(), histories.begin() + 8);
  const std::vector<DeviceTelemetryHistory> fleet(histories.begin(), histories.begin() + 10000);
  const double host_us = median_us(200, [&] { (void)model->score(host, 0); });
  const double host_explain_us = median_us(200, [&] { (void)model->score(host, 3); });
  const double fleet_us = median_us(9, [&] { (void)model->score(fleet, 0); });
  fmt::print("score one host (8 disks, features+trees):   {:8.1f} us\n", host_us);
  fmt::print("  ... with top-3 reasons per disk:          {:8.1f} us\n", host_explain_us);
  fmt::print("score 10,000 drives (1 thread):             {:8.2f} ms\n", fleet_us / 1000);

  // Trees only, ours vs XGBoost's predict, on the same 10,000 feature rows.
  auto norm = ModelNormaliser::fit(*data, data->first_day, data->last_day);
  const auto m = build_matrix(*data, model->spec(), norm, data->last_day, data->last_day, 7);
  const std::size_t rows = std::min<std::size_t>(m.rows(), 10000);
  volatile float sink = 0;
  const double ours_us = median_us(9, [&] {
    for (std::size_t r = 0; r < rows; ++r) {
      sink = sink + model->score_row(m.row(r));
    }
  });
  auto booster = XgbBooster::from_json(model->xgboost_json());
  auto dm = XgbMatrix::create(m.x.data(), rows, m.cols);
  if (booster && dm && booster->set_param("nthread", "1")) {
    if (auto probe = booster->predict(*dm); !probe) {
      fmt::print(stderr, "XGBoost predict: {}\n", probe.error().message());
    }
    // XGBoost caches predictions per DMatrix, so each run builds a fresh one (as a caller
    // scoring new telemetry would).
    const double xgb_us = median_us(9, [&] {
      auto fresh = XgbMatrix::create(m.x.data(), rows, m.cols);
      (void)booster->predict(*fresh);
    });
    fmt::print("trees only, 10,000 rows: ours {:.2f} ms, XGBoost DMatrix+predict (1 thread) {:.2f} ms\n",
               ours_us / 1000, xgb_us / 1000);
  }

  // The CPU model on a synthetic host (kept apart: synthetic data).
  CpuSynthConfig c;
  const auto cpu = generate_cpu_telemetry(c);
  auto split = split_by_days(cpu, 40);
  TrainParams cp;
  cp.rounds = 40;
  auto cpu_model = train_risk_model(cpu, *split, cp);
  if (cpu_model) {
    const auto one = histories_as_of(cpu, 30);
    const std::vector<DeviceTelemetryHistory> h1(one.begin(), one.begin() + 1);
    fmt::print("[synthetic] score one host's CPU telemetry:  {:8.1f} us\n",
               median_us(200, [&] { (void)cpu_model->score(h1, 3); }));
  }
  return 0;
}
