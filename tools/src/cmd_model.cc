// `ferry model train|eval|rank`: train the failure-risk ranker on recorded telemetry,
// evaluate it against baselines on held-out later days (table + SVG), and rank the devices
// of one day with the evacuation decision and its reasons. `--cpu-synth` switches every
// subcommand to the synthetic CPU-frequency data set (reported apart from real data).
#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <optional>
#include <string>

#include "commands.h"
#include "ferry/predictor/backblaze.h"
#include "ferry/predictor/cpu_synth.h"
#include "ferry/predictor/optimiser.h"
#include "ferry/predictor/report.h"
#include "ferry/predictor/risk_model.h"
#include "ferry/predictor/trainer.h"

namespace ferry::tools {

namespace {

using namespace ferry::predictor;

struct DataOptions {
  std::string data_dir;
  bool cpu_synth = false;
  uint64_t seed = 1;
  std::size_t max_days = 0;
  bool skip_malformed = false;
};

struct ModelOptions {
  DataOptions data;
  EvalConfig config;
  std::string out = "ferry-risk-model.json";
  std::string model;
  std::string svg = "ferry-model-eval.svg";
  std::string day;
  std::size_t top = 10;
  std::vector<std::string> guests;
  bool all_days = false;
  std::vector<std::string> xgb_params;
};

// Moves --xgb-param KEY=VALUE pairs into the training parameters.
bool apply_xgb_params(ModelOptions& o) {
  for (const auto& kv : o.xgb_params) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      fmt::print(stderr, "ferry model: --xgb-param wants KEY=VALUE, got '{}'\n", kv);
      return false;
    }
    o.config.params.extra.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return true;
}

void add_data_options(CLI::App* cmd, DataOptions& d) {
  cmd->add_option("--data", d.data_dir,
                  "Backblaze data dir (default: $FERRY_DATA_DIR, else ../shared/data)");
  cmd->add_flag("--cpu-synth", d.cpu_synth, "Use the synthetic CPU-frequency data set instead");
  cmd->add_option("--seed", d.seed, "Seed of the synthetic CPU data");
  cmd->add_option("--max-days", d.max_days, "Load only the first N day files");
  cmd->add_flag("--skip-malformed", d.skip_malformed, "Skip (and count) malformed CSV rows");
}

void add_train_options(CLI::App* cmd, ModelOptions& o) {
  auto& p = o.config.params;
  cmd->add_option("--train-days", o.config.train_days, "Days (steps) in the training range")
      ->capture_default_str();
  cmd->add_option("--horizon", p.horizon, "Label: fails within this many days")
      ->capture_default_str();
  cmd->add_option("--rounds", p.rounds, "Boosting rounds")->capture_default_str();
  cmd->add_option("--max-depth", p.max_depth, "Tree depth")->capture_default_str();
  cmd->add_option("--eta", p.eta, "Learning rate")->capture_default_str();
  cmd->add_option("--objective", p.objective,
                  "rank:pairwise, rank:ndcg, rank:map or binary:logistic")
      ->check(CLI::IsMember({"rank:pairwise", "rank:ndcg", "rank:map", "binary:logistic"}))
      ->capture_default_str();
  cmd->add_option("--min-child-weight", p.min_child_weight, "Minimum hessian in a leaf")
      ->capture_default_str();
  cmd->add_option("--threads", p.nthread, "XGBoost threads")->capture_default_str();
  cmd->add_option("--xgb-param", o.xgb_params, "Extra XGBoost parameter KEY=VALUE (repeatable)");
}

void add_cost_options(CLI::App* cmd, EvacuationCosts& c) {
  cmd->add_option("--interruption-cost", c.interruption_cost, "Cost of a guest hit by a failure")
      ->capture_default_str();
  cmd->add_option("--migration-cost", c.migration_cost, "Cost of one guest migration")
      ->capture_default_str();
  cmd->add_option("--host-cost", c.fixed_host_cost, "Fixed cost per evacuated host")
      ->capture_default_str();
  cmd->add_option("--max-hosts", c.max_hosts, "Spare capacity in hosts (0 = unlimited)");
}

PResult<Dataset> load_data(const DataOptions& d, bool quiet = false) {
  if (d.cpu_synth) {
    CpuSynthConfig c;
    c.seed = d.seed;
    return generate_cpu_telemetry(c);
  }
  const std::string dir =
      resolve_backblaze_dir(d.data_dir.empty() ? std::nullopt : std::optional(d.data_dir));
  if (!quiet) {
    fmt::print(stderr, "loading {}\n", dir);
  }
  return load_backblaze_dataset(dir, LoadOptions{CsvOptions{d.skip_malformed}, d.max_days});
}

std::string day_name(const Dataset& data, int32_t day) {
  return data.schema.kind == DeviceKind::Disk ? format_iso_date(day) : fmt::format("step {}", day);
}

int fail_with(const char* cmd, const PredictorError& e) {
  fmt::print(stderr, "ferry model {}: {}\n", cmd, e.message());
  return 1;
}

int run_train(const ModelOptions& o) {
  auto data = load_data(o.data);
  if (!data) {
    return fail_with("train", data.error());
  }
  int train_days = o.config.train_days;
  TimeSplit split;
  if (o.all_days) {
    split = {data->first_day, data->last_day, data->last_day, data->last_day};
  } else {
    auto s = split_by_days(*data, train_days);
    if (!s) {
      return fail_with("train", s.error());
    }
    split = *s;
  }
  auto model = train_risk_model(*data, split, o.config.params);
  if (!model) {
    return fail_with("train", model.error());
  }
  if (auto ok = model->save(o.out); !ok) {
    return fail_with("train", ok.error());
  }
  const auto& i = model->info();
  fmt::print("trained {} on {} .. {}: {} rows, {} positives, {} trees -> {}\n", i.objective,
             day_name(*data, split.train_first), day_name(*data, split.train_last), i.train_rows,
             i.train_positives, model->trees().tree_count(), o.out);
  return 0;
}

int run_eval(const ModelOptions& o) {
  auto data = load_data(o.data);
  if (!data) {
    return fail_with("eval", data.error());
  }
  EvalConfig config = o.config;
  if (o.data.cpu_synth && config.train_days == EvalConfig{}.train_days) {
    config.train_days = 40;  // 60 synthetic steps: 40 train, 20 evaluate
  }
  auto rep = run_evaluation(*data, config);
  if (!rep) {
    return fail_with("eval", rep.error());
  }
  const bool synth = o.data.cpu_synth;
  fmt::print("{}\n", synth ? "== SYNTHETIC CPU-frequency data (generator, not real telemetry) =="
                           : "== Backblaze SMART data (real) ==");
  fmt::print("devices {}, train {} .. {}, evaluate {} .. {} ({} rows, {} positive), horizon {}\n",
             data->devices.size(), day_name(*data, rep->split.train_first),
             day_name(*data, rep->split.train_last), day_name(*data, rep->split.eval_first),
             day_name(*data, rep->split.eval_last), rep->eval_rows, rep->eval_positives,
             config.params.horizon);
  fmt::print("costs: interruption {:g}, migration {:g} per guest, host {:g}\n",
             config.costs.interruption_cost, config.costs.migration_cost,
             config.costs.fixed_host_cost);
  fmt::print("training time: ranker {:.2f} s, classifier {:.2f} s ({} rounds, {} threads)\n\n",
             rep->ranker_train_seconds, rep->classifier_train_seconds, config.params.rounds,
             config.params.nthread);
  fmt::print("{}", format_metrics_table(rep->methods, config.eval));
  std::ofstream svg(o.svg);
  svg << render_svg(*rep, synth ? "SYNTHETIC CPU-frequency anomalies (generated data)"
                                : "Backblaze 2013 SMART: held-out days");
  if (!svg) {
    return fail_with("eval", PredictorError{PredictorErrc::Io, "cannot write " + o.svg});
  }
  fmt::print("\nplot written to {}\n", o.svg);
  return 0;
}

PResult<std::map<std::string, uint32_t>> parse_guests(const std::vector<std::string>& specs) {
  std::map<std::string, uint32_t> out;
  for (const auto& s : specs) {
    const auto eq = s.find('=');
    try {
      if (eq == std::string::npos) {
        throw std::invalid_argument(s);
      }
      out[s.substr(0, eq)] = static_cast<uint32_t>(std::stoul(s.substr(eq + 1)));
    } catch (const std::exception&) {
      return perr(PredictorErrc::BadArgument,
                  fmt::format("--guests wants HOST=COUNT, got '{}'", s));
    }
  }
  return out;
}

int run_rank(const ModelOptions& o, const EvacuationCosts& costs) {
  auto model = RiskModel::load(o.model);
  if (!model) {
    return fail_with("rank", model.error());
  }
  auto data = load_data(o.data);
  if (!data) {
    return fail_with("rank", data.error());
  }
  int32_t day = data->last_day;
  if (!o.day.empty()) {
    std::optional<int32_t> d;
    if (data->schema.kind == DeviceKind::Disk) {
      d = parse_iso_date(o.day);
    } else if (int32_t step = 0;
               std::from_chars(o.day.data(), o.day.data() + o.day.size(), step).ec == std::errc()) {
      d = step;
    }
    if (!d) {
      return fail_with("rank", {PredictorErrc::BadArgument, "bad --day " + o.day});
    }
    day = *d;
  }
  const auto histories = histories_as_of(*data, day);
  if (histories.empty()) {
    return fail_with("rank",
                     {PredictorErrc::EmptyDay, "no device reports on " + day_name(*data, day)});
  }
  auto scores = model->score(histories, 3);
  if (!scores) {
    return fail_with("rank", scores.error());
  }
  auto guests = parse_guests(o.guests);
  if (!guests) {
    return fail_with("rank", guests.error());
  }
  std::sort(scores->begin(), scores->end(), [](auto& a, auto& b) { return a.score > b.score; });
  fmt::print("{} devices on {}; top {}:\n", scores->size(), day_name(*data, day), o.top);
  for (std::size_t i = 0; i < std::min(o.top, scores->size()); ++i) {
    const auto& s = (*scores)[i];
    fmt::print("{:3}. {:<22} {:<26} score {:8.4f}  p {:.4f}{}\n", i + 1, s.device_id, s.model,
               s.score, s.probability, s.known_model ? "" : "  (model unseen in training)");
  }
  const auto plan = choose_evacuations(*scores, *guests, costs);
  fmt::print("\nevacuate {} host(s){}:\n", plan.evacuate.size(),
             plan.evacuate.size() > o.top ? fmt::format(", first {} shown", o.top) : "");
  for (std::size_t i = 0; i < std::min(o.top, plan.evacuate.size()); ++i) {
    const auto& d = plan.evacuate[i];
    fmt::print("  {}  p(fail) {:.4f}  guests {}  net benefit {:.2f}\n", d.host,
               d.failure_probability, d.guests, d.net());
    for (const auto& r : d.reasons) {
      fmt::print("      because {} = {:g} (+{:.4f})\n", r.feature, r.value, r.contribution);
    }
  }
  return 0;
}

}  // namespace

void add_model_command(CLI::App& app, int& exit_code) {
  auto* model = app.add_subcommand("model", "Train, evaluate and apply the failure-risk ranker");
  model->require_subcommand(1);
  auto opts = std::make_shared<ModelOptions>();
  auto costs = std::make_shared<EvacuationCosts>();

  auto* train = model->add_subcommand("train", "Train a ranking model and save it as JSON");
  add_data_options(train, opts->data);
  add_train_options(train, *opts);
  train->add_option("--out", opts->out, "Model file to write")->capture_default_str();
  train->add_flag("--all-days", opts->all_days,
                  "Train on every day (deployment), not just the split");
  train->callback(
      [opts, &exit_code] { exit_code = apply_xgb_params(*opts) ? run_train(*opts) : 2; });

  auto* eval = model->add_subcommand("eval", "Time-split evaluation against baselines");
  add_data_options(eval, opts->data);
  add_train_options(eval, *opts);
  add_cost_options(eval, opts->config.costs);
  eval->add_option("--svg", opts->svg, "Plot to write")->capture_default_str();
  eval->add_flag("!--no-classifier", opts->config.with_classifier, "Skip the classifier baseline");
  eval->callback([opts, &exit_code] { exit_code = apply_xgb_params(*opts) ? run_eval(*opts) : 2; });

  auto* rank = model->add_subcommand("rank", "Rank one day's devices and choose evacuations");
  add_data_options(rank, opts->data);
  add_cost_options(rank, *costs);
  rank->add_option("--model", opts->model, "Model file (from `ferry model train`)")->required();
  rank->add_option("--day", opts->day,
                   "Day to rank (YYYY-MM-DD, or a step with --cpu-synth); default last");
  rank->add_option("--top", opts->top, "How many ranked devices to print")->capture_default_str();
  rank->add_option("--guests", opts->guests, "Guests per host, HOST=COUNT (default 1 each)");
  rank->callback([opts, costs, &exit_code] { exit_code = run_rank(*opts, *costs); });
}

}  // namespace ferry::tools
