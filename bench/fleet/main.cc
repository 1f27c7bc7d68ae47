// bench_fleet: 10,000 simulated hosts x 10 guests on real Backblaze drive histories, run
// day by day through the agent's decision path (score, top-N, placement), against the
// SMART-rule baseline in the same run. Prints per-day decision time, evacuations, guests to
// migrate and hits/misses/false alarms, then a summary with model/baseline ratios.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "ferry/predictor/backblaze.h"
#include "ferry/predictor/trainer.h"
#include "fleet.h"

using namespace ferry::bench;
using namespace ferry::predictor;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  FleetOptions fleet;
  int days = 10;
  std::string model;
  std::string data_dir;
  TrainParams train;
  EvacuationCosts costs;
  PlacementPolicy placement;
  double host_mem_gib = 128;
};

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string day_name(int32_t d) { return format_iso_date(d); }

void add_options(CLI::App& app, Options& o) {
  app.add_option("--hosts", o.fleet.hosts, "Simulated hosts")->capture_default_str();
  app.add_option("--guests-per-host", o.fleet.guests_per_host, "Guests per host at the start")
      ->capture_default_str();
  app.add_option("--disks-per-host", o.fleet.disks_per_host,
                 "Disk bays per host, filled with real drives (reused when too few)")
      ->capture_default_str();
  app.add_option("--days", o.days, "Evaluation days (the last DAYS days of the data)")
      ->capture_default_str();
  app.add_option("--model", o.model,
                 "Model file from `ferry model train`; default: train one on the earlier days");
  app.add_option("--data-dir", o.data_dir, "Backblaze directory (default: ../shared/data)");
  app.add_option("--seed", o.fleet.seed, "Seed for the drive shuffle and guest sizes")
      ->capture_default_str();
  app.add_option("--rounds", o.train.rounds, "Boosting rounds when training")
      ->capture_default_str();
  app.add_option("--objective", o.train.objective, "XGBoost objective when training")
      ->capture_default_str();
  app.add_option("--horizon", o.train.horizon, "Label horizon in days when training")
      ->capture_default_str();
  app.add_option("--interruption-cost", o.costs.interruption_cost, "Cost of one interrupted guest")
      ->capture_default_str();
  app.add_option("--migration-cost", o.costs.migration_cost, "Cost of one migration")
      ->capture_default_str();
  app.add_option("--max-hosts", o.costs.max_hosts, "Hosts evacuated per day at most (0 = any)")
      ->capture_default_str();
  app.add_option("--headroom", o.placement.headroom_fraction,
                 "Share of memory kept free on destinations")
      ->capture_default_str();
  app.add_option("--risk-step", o.placement.risk_step,
                 "Destination risks closer than this count as equal (spreads load)")
      ->capture_default_str();
  app.add_option("--max-destination-risk", o.placement.max_destination_risk,
                 "Never place on a host riskier than this")
      ->capture_default_str();
  app.add_option("--host-mem-gib", o.host_mem_gib, "Guest memory each host offers (GiB)")
      ->capture_default_str();
  app.add_option("--host-vcpus", o.fleet.host_vcpus, "vCPUs each host offers")
      ->capture_default_str();
}

void print_fleet(const Options& o, const Dataset& data, const Fleet& fleet, const FleetState& st) {
  uint64_t used = 0, total = 0;
  for (const auto& h : st.hosts) {
    used += h.mem_used_mib;
    total += h.mem_total_mib;
  }
  fmt::print(
      "fleet: {} hosts x {} guests ({} guests), {} disk bays per host; each host offers "
      "{:.0f} GiB / {} vCPUs; guests 2/4/8/16 GiB with 1/2/4/8 vCPUs (30/30/25/15 %); "
      "memory in use {:.1f} %\n",
      o.fleet.hosts, o.fleet.guests_per_host, std::size_t{o.fleet.hosts} * o.fleet.guests_per_host,
      o.fleet.disks_per_host, o.host_mem_gib, o.fleet.host_vcpus,
      100.0 * static_cast<double>(used) / total);
  fmt::print(
      "drives: {} bays filled from {} real drives, shuffled (seed {}) and dealt "
      "round-robin; {} drives sit in more than one host (up to {} copies, id "
      "SERIAL#2): a reused drive's failure fails every host holding it\n",
      fleet.slots.size(), data.devices.size(), o.fleet.seed, fleet.drives_reused, fleet.max_copies);
}

// Trains on the days before the evaluation window (or loads --model).
std::optional<RiskModel> get_model(const Options& o, const Dataset& data, int32_t eval_first) {
  if (!o.model.empty()) {
    auto m = RiskModel::load(o.model);
    if (!m) {
      fmt::print(stderr, "bench_fleet: {}\n", m.error().message());
      return std::nullopt;
    }
    const auto& i = m->info();
    fmt::print("model: loaded {} ({}, trained {} .. {})\n", o.model, i.objective,
               day_name(i.train_first_day), day_name(i.train_last_day));
    if (i.train_last_day >= eval_first) {
      fmt::print("WARNING: the model was trained on evaluation days: figures are in-sample\n");
    }
    return std::move(*m);
  }
  const TimeSplit split{data.first_day, eval_first - 1, eval_first, data.last_day};
  const auto t0 = Clock::now();
  auto m = train_risk_model(data, split, o.train);
  if (!m) {
    fmt::print(stderr, "bench_fleet: {}\n", m.error().message());
    return std::nullopt;
  }
  const auto& i = m->info();
  fmt::print(
      "model: trained {} on {} .. {} (labels to {}): {} rows, {} positive, {} rounds, "
      "depth {}, {} threads, {:.1f} s\n",
      i.objective, day_name(split.train_first), day_name(split.train_last),
      day_name(split.train_last - o.train.horizon + 1), i.train_rows, i.train_positives, i.rounds,
      i.max_depth, o.train.nthread, ms_since(t0) / 1000);
  return std::move(*m);
}

void print_days(const char* title, const std::vector<DayStats>& days, bool has_topn) {
  fmt::print("\n== {} ==\n", title);
  fmt::print(
      "{:<10} {:>8} {:>8} {:>8} {:>6} {:>7} {:>7} {:>7} {:>6} {:>5} {:>5} {:>9} {:>5} "
      "{:>5} {:>5} {:>6}\n",
      "day", "decide", "top-N", "place", "hosts", "guests", "no-dest", "GiB", "dests", "max/d",
      "fail", "hit(>=1d)", "miss", "true", "false", "intr");
  for (const auto& d : days) {
    fmt::print(
        "{:<10} {:>8.1f} {:>8} {:>8.1f} {:>6} {:>7} {:>7} {:>7.0f} {:>6} {:>5} {:>5} "
        "{:>4}({:>3}) {:>5} {:>5} {:>5} {:>6}\n",
        day_name(d.day), d.decide_ms, has_topn ? fmt::format("{:.1f}", d.choose_ms) : "-",
        d.place_ms, d.chosen, d.to_migrate, d.unplaced, d.gib_to_move, d.destinations, d.max_landed,
        d.failures, d.hits, d.hits_ahead, d.misses, d.true_alarms, d.false_alarms, d.interrupted);
  }
}

struct Summary {
  double evac_mean = 0, evac_max = 0, evac_first = 0, evac_rest = 0;
  double migr_per_1k = 0, decide_mean = 0, decide_max = 0, place_max = 0;
  double failures = 0, hits = 0, hits_ahead = 0, false_per_day = 0, precision = 0;
  double interrupted = 0, unplaced = 0, max_landed = 0;
  double gib_mean = 0, gib_max = 0, place_us_per_guest = 0, decide_us_per_host = 0;
  double hit_rate() const { return failures > 0 ? hits / failures : 0; }
  double ahead_rate() const { return failures > 0 ? hits_ahead / failures : 0; }
};

Summary summarise(const std::vector<DayStats>& days, uint32_t hosts) {
  Summary s;
  double chosen = 0, migr = 0, truth = 0, falses = 0, place_ms = 0, planned = 0;
  for (std::size_t i = 0; i < days.size(); ++i) {
    const auto& d = days[i];
    chosen += d.chosen;
    migr += d.to_migrate - d.unplaced;
    s.evac_max = std::max(s.evac_max, double(d.chosen));
    const double total = d.decide_ms + d.choose_ms + d.place_ms;
    s.decide_mean += total / days.size();
    s.decide_max = std::max(s.decide_max, total);
    s.place_max = std::max(s.place_max, d.place_ms);
    s.failures += d.failures;
    s.hits += d.hits;
    s.hits_ahead += d.hits_ahead;
    truth += d.true_alarms;
    falses += d.false_alarms;
    s.interrupted += d.interrupted;
    s.unplaced += d.unplaced;
    s.max_landed = std::max(s.max_landed, double(d.max_landed));
    s.gib_mean += d.gib_to_move / days.size();
    s.gib_max = std::max(s.gib_max, d.gib_to_move);
    place_ms += d.place_ms;
    planned += d.to_migrate;
    s.decide_us_per_host += d.decide_ms * 1000 / hosts / days.size();
  }
  s.place_us_per_guest = planned > 0 ? place_ms * 1000 / planned : 0;
  const double n = std::max<double>(1, days.size());
  s.evac_mean = chosen / n;
  s.evac_first = days.empty() ? 0 : days[0].chosen;
  s.evac_rest = days.size() > 1 ? (chosen - s.evac_first) / (n - 1) : 0;
  s.migr_per_1k = migr / n / (hosts / 1000.0);
  s.false_per_day = falses / n;
  s.precision = chosen > 0 ? truth / chosen : 0;
  return s;
}

std::string ratio(double a, double b) {
  return b > 0 ? fmt::format("{:.3f}", a / b) : std::string("-");
}

// Three columns: the model, the SMART rule (all it flags) and the SMART rule held to the
// model's number of evacuations per day (ranked by raw 5 + 197), with ratios model/other.
void print_summary(const Summary& m, const Summary& base, const Summary& n, std::size_t ndays) {
  fmt::print("\n== summary over {} days (same fleet, same days; ratio = model / baseline) ==\n",
             ndays);
  fmt::print("{:<46} {:>10} {:>10} {:>8} {:>10} {:>8}\n", "", "model", "SMART rule", "ratio",
             "rule @N", "ratio");
  struct Row {
    const char* what;
    double (*field)(const Summary&);
    const char* format;
  };
  static constexpr Row kRows[] = {
      {"hosts evacuated per day, mean", [](const Summary& s) { return double(s.evac_mean); },
       "{:.1f}"},
      {"hosts evacuated per day, max", [](const Summary& s) { return double(s.evac_max); },
       "{:.0f}"},
      {"  first day (the standing backlog)", [](const Summary& s) { return double(s.evac_first); },
       "{:.0f}"},
      {"  later days, mean", [](const Summary& s) { return double(s.evac_rest); }, "{:.1f}"},
      {"migrations per day per 1,000 hosts", [](const Summary& s) { return double(s.migr_per_1k); },
       "{:.2f}"},
      {"decision time per day, mean (ms)", [](const Summary& s) { return double(s.decide_mean); },
       "{:.1f}"},
      {"decision time per day, max (ms)", [](const Summary& s) { return double(s.decide_max); },
       "{:.1f}"},
      {"placement time per day, max (ms)", [](const Summary& s) { return double(s.place_max); },
       "{:.1f}"},
      {"  scoring / rule check per host (us)",
       [](const Summary& s) { return double(s.decide_us_per_host); }, "{:.2f}"},
      {"  placement per guest (us)", [](const Summary& s) { return double(s.place_us_per_guest); },
       "{:.1f}"},
      {"guest memory migrated per day, mean (GiB)",
       [](const Summary& s) { return double(s.gib_mean); }, "{:.0f}"},
      {"guest memory migrated per day, max (GiB)",
       [](const Summary& s) { return double(s.gib_max); }, "{:.0f}"},
      {"failing hosts (real drive failures)", [](const Summary& s) { return double(s.failures); },
       "{:.0f}"},
      {"  evacuated on or before the failure day", [](const Summary& s) { return double(s.hits); },
       "{:.0f}"},
      {"  hit rate", [](const Summary& s) { return double(s.hit_rate()); }, "{:.3f}"},
      {"  hit rate, at least one day ahead",
       [](const Summary& s) { return double(s.ahead_rate()); }, "{:.3f}"},
      {"false alarms per day", [](const Summary& s) { return double(s.false_per_day); }, "{:.1f}"},
      {"precision (evacuations followed by a failure)",
       [](const Summary& s) { return double(s.precision); }, "{:.4f}"},
      {"guests interrupted by a failure", [](const Summary& s) { return double(s.interrupted); },
       "{:.0f}"},
      {"guests left without a destination (sum)",
       [](const Summary& s) { return double(s.unplaced); }, "{:.0f}"},
      {"most guests landing on one host in a day",
       [](const Summary& s) { return double(s.max_landed); }, "{:.0f}"},
  };
  for (const auto& r : kRows) {
    const double a = r.field(m), b = r.field(base), c = r.field(n);
    fmt::print("{:<46} {:>10} {:>10} {:>8} {:>10} {:>8}\n", r.what,
               fmt::format(fmt::runtime(r.format), a), fmt::format(fmt::runtime(r.format), b),
               ratio(a, b), fmt::format(fmt::runtime(r.format), c), ratio(a, c));
  }
}

// One policy's run: its own copy of the fleet and its per-day figures.
struct PolicyRun {
  FleetState state;
  std::vector<DayStats> days;
};

// Runs every evaluation day for the model and both baselines. Scoring is shared: the
// disks are the same under every policy, only the decisions differ.
bool simulate(const Options& o, const Dataset& data, const RiskModel& model, const Fleet& fleet,
              int32_t eval_first, PolicyRun& by_model, PolicyRun& by_rule, PolicyRun& by_rule_n) {
  for (int32_t day = eval_first; day <= data.last_day; ++day) {
    const DayInput in = day_input(data, fleet, day);
    auto t0 = Clock::now();
    auto scores = model.score(in.histories, 0);
    const double score_ms = ms_since(t0);
    if (!scores) {
      fmt::print(stderr, "bench_fleet: {}\n", scores.error().message());
      return false;
    }
    t0 = Clock::now();
    const Decision md = model_decision(*scores, fleet, by_model.state, o.costs);
    const double choose_ms = ms_since(t0);
    by_model.days.push_back(run_day(by_model.state, fleet, day, md, o.placement));
    by_model.days.back().decide_ms = score_ms;
    by_model.days.back().choose_ms = choose_ms;

    t0 = Clock::now();
    const Decision rd = smart_rule_decision(in, fleet, by_rule.state, model.spec().schema);
    const double rule_ms = ms_since(t0);
    by_rule.days.push_back(run_day(by_rule.state, fleet, day, rd, o.placement));
    by_rule.days.back().decide_ms = rule_ms;

    Decision nd = smart_rule_decision(in, fleet, by_rule_n.state, model.spec().schema);
    nd.evacuate.resize(std::min(nd.evacuate.size(), by_model.days.back().chosen));
    by_rule_n.days.push_back(run_day(by_rule_n.state, fleet, day, nd, o.placement));
    by_rule_n.days.back().decide_ms = rule_ms;
    fmt::print(stderr, "{}: {} disks scored in {:.0f} ms\n", day_name(day), in.histories.size(),
               score_ms);
  }
  const int horizon = model.info().horizon;
  for (auto* run : {&by_model, &by_rule, &by_rule_n}) {
    score_alarms(run->state, fleet, horizon, run->days);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Simulated fleet: the agent's decision path on real Backblaze drive histories"};
  Options o;
  o.train.rounds = 40;  // half of `ferry model train`, so the bench runs in about a minute
  o.placement.headroom_fraction = 0.10;
  o.placement.risk_step = 0.005;
  add_options(app, o);
  CLI11_PARSE(app, argc, argv);
  o.fleet.host_mem_mib = static_cast<uint64_t>(o.host_mem_gib * 1024);

  const std::string dir = resolve_backblaze_dir(
      o.data_dir.empty() ? std::nullopt : std::optional<std::string>(o.data_dir));
  auto t0 = Clock::now();
  auto data = load_backblaze_dataset(dir);
  if (!data) {
    fmt::print(stderr, "bench_fleet: {}\n", data.error().message());
    return 1;
  }
  const int32_t eval_first = data->last_day - o.days + 1;
  if (o.days < 1 || eval_first - data->first_day < o.train.horizon + 1) {
    fmt::print(stderr, "bench_fleet: --days {} leaves too few training days\n", o.days);
    return 2;
  }
  fmt::print("data: {}: {} .. {}, {} drives, loaded in {:.1f} s\n", dir, day_name(data->first_day),
             day_name(data->last_day), data->devices.size(), ms_since(t0) / 1000);
  auto model = get_model(o, *data, eval_first);
  if (!model) {
    return 1;
  }
  const int horizon = model->info().horizon;
  const Fleet fleet = build_fleet(*data, o.fleet);
  FleetState start = initial_state(fleet, o.fleet);
  print_fleet(o, *data, fleet, start);
  std::size_t failing = 0;
  for (uint32_t h = 0; h < fleet.host_names.size(); ++h) {
    const auto f = next_failure(fleet, h, eval_first);
    failing += f && *f <= data->last_day ? 1 : 0;
  }
  fmt::print(
      "evaluate: {} .. {} ({} days), horizon {} days; {} hosts hold a drive that "
      "fails in this window\n",
      day_name(eval_first), day_name(data->last_day), o.days, horizon, failing);
  fmt::print(
      "policy: interruption {} / migration {} per guest (evacuate when P(host) > {:.2f} "
      "%); destinations: risk <= {}, risk step {}, headroom {:.0f} %\n",
      o.costs.interruption_cost, o.costs.migration_cost,
      100 * o.costs.migration_cost / o.costs.interruption_cost, o.placement.max_destination_risk,
      o.placement.risk_step, 100 * o.placement.headroom_fraction);

  PolicyRun by_rule{start, {}}, by_rule_n{start, {}}, model_run{std::move(start), {}};
  if (!simulate(o, *data, *model, fleet, eval_first, model_run, by_rule, by_rule_n)) {
    return 1;
  }
  fmt::print(
      "\ncolumns: decide = score every disk (model) or check the rule (baseline), ms; "
      "top-N = choose_evacuations, ms; place = plan_evacuation for every source, ms; "
      "hosts = newly chosen; guests = guests planned to move (incl. leftovers retried); "
      "no-dest = without a destination; dests/max/d = destination hosts used and most "
      "guests landing on one; fail = hosts whose drive failed that day; hit = chosen on "
      "or before that day (>=1d: a day or more ahead); true/false = that day's choices "
      "followed / not followed by a failure within {} days (failures after {} unknown); "
      "intr = guests on a host when it failed\n",
      horizon, day_name(data->last_day));
  print_days(
      fmt::format("model: {} on calibrated P(host), choose_evacuations", model->info().objective)
          .c_str(),
      model_run.days, true);
  print_days(
      "baseline: SMART rule, any drive with raw 5 or 197 > 0 (the only rule attributes "
      "this data set populates)",
      by_rule.days, false);
  print_days(
      "baseline: SMART rule held to the model's number of hosts per day (most raw 5 + 197 "
      "first)",
      by_rule_n.days, false);
  print_summary(summarise(model_run.days, o.fleet.hosts), summarise(by_rule.days, o.fleet.hosts),
                summarise(by_rule_n.days, o.fleet.hosts), model_run.days.size());
  return 0;
}
