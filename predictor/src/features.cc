#include "ferry/predictor/features.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace ferry::predictor {

namespace {

// Per channel: value, z-score, one delta per window, one slope.
std::size_t per_channel(const FeatureSpec& spec) { return 3 + spec.windows.size(); }

int max_window(const FeatureSpec& spec) {
  return spec.windows.empty() ? 1 : *std::max_element(spec.windows.begin(), spec.windows.end());
}

// Latest sample at or before `day` but not older than `oldest`; -1 if none.
long find_at_or_before(const std::vector<TelemetrySample>& s, std::size_t index, int32_t day,
                       int32_t oldest) {
  for (long i = static_cast<long>(index); i >= 0; --i) {
    const int32_t d = s[static_cast<std::size_t>(i)].day;
    if (d <= day) {
      return d >= oldest ? i : -1;
    }
  }
  return -1;
}

float slope(const std::vector<TelemetrySample>& s, std::size_t index, std::size_t ch,
            int32_t from_day) {
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  const int32_t t = s[index].day;
  for (long i = static_cast<long>(index); i >= 0; --i) {
    const auto& smp = s[static_cast<std::size_t>(i)];
    if (smp.day < from_day) {
      break;
    }
    const float y = smp.values[ch];
    if (std::isnan(y)) {
      continue;
    }
    const double x = smp.day - t;
    n += 1, sx += x, sy += y, sxx += x * x, sxy += x * y;
  }
  const double den = n * sxx - sx * sx;
  if (n < 2 || den <= 0) {
    return kMissing;
  }
  return static_cast<float>((n * sxy - sx * sy) / den);
}

}  // namespace

std::size_t feature_count(const FeatureSpec& spec) {
  return spec.schema.channels.size() * per_channel(spec) + 1;
}

std::vector<std::string> feature_names(const FeatureSpec& spec) {
  std::vector<std::string> names;
  for (const auto& ch : spec.schema.channels) {
    names.push_back(ch);
    names.push_back(ch + ".z");
    for (int w : spec.windows) {
      names.push_back(fmt::format("{}.d{}", ch, w));
    }
    names.push_back(fmt::format("{}.slope{}", ch, max_window(spec)));
  }
  names.emplace_back("history_steps");
  return names;
}

void compute_features(const DeviceTelemetryHistory& history, std::size_t index,
                      const FeatureSpec& spec, const std::vector<ChannelStats>& norm, float* out) {
  const auto& s = history.samples;
  const int32_t t = s[index].day;
  const int w_max = max_window(spec);
  std::size_t k = 0;
  for (std::size_t ch = 0; ch < spec.schema.channels.size(); ++ch) {
    const float x = s[index].values[ch];
    out[k++] = x;
    out[k++] = std::isnan(x) ? kMissing : (x - norm[ch].mean) / norm[ch].scale;
    for (int w : spec.windows) {
      // A gap in reporting may stretch a window to twice its length, not more.
      const long j = find_at_or_before(s, index, t - w, t - 2 * w);
      out[k++] = j < 0 ? kMissing : x - s[static_cast<std::size_t>(j)].values[ch];
    }
    out[k++] = slope(s, index, ch, t - w_max);
  }
  out[k++] = static_cast<float>(std::min(t - s.front().day, w_max));
}

ModelNormaliser ModelNormaliser::fit(const Dataset& data, int32_t first_day, int32_t last_day,
                                     std::size_t min_devices) {
  const std::size_t nch = data.schema.channels.size();
  struct Acc {
    std::vector<double> n, sum, sq;
    std::size_t devices = 0;
  };
  auto make = [&] { return Acc{std::vector<double>(nch), std::vector<double>(nch), std::vector<double>(nch), 0}; };
  std::map<std::string, Acc> acc;
  Acc all = make();
  for (const auto& dev : data.devices) {
    auto [it, fresh] = acc.try_emplace(dev.history.model, make());
    bool counted = false;
    for (const auto& smp : dev.history.samples) {
      if (smp.day < first_day || smp.day > last_day) {
        continue;
      }
      counted = true;
      for (std::size_t c = 0; c < nch; ++c) {
        const double v = smp.values[c];
        if (std::isnan(v)) {
          continue;
        }
        for (Acc* a : {&it->second, &all}) {
          a->n[c] += 1, a->sum[c] += v, a->sq[c] += v * v;
        }
      }
    }
    it->second.devices += counted ? 1 : 0;
  }
  auto finish = [&](const Acc& a) {
    std::vector<ChannelStats> out(nch);
    for (std::size_t c = 0; c < nch; ++c) {
      if (a.n[c] == 0) {
        continue;
      }
      const double mean = a.sum[c] / a.n[c];
      const double var = std::max(0.0, a.sq[c] / a.n[c] - mean * mean);
      const double sd = std::sqrt(var);
      out[c].mean = static_cast<float>(mean);
      // A constant channel (all zeros for healthy drives) keeps scale 1: z = x - mean.
      out[c].scale = static_cast<float>(sd > 1e-6 * std::max(1.0, std::fabs(mean)) ? sd : 1.0);
    }
    return out;
  };
  ModelNormaliser norm;
  norm.global_ = finish(all);
  for (const auto& [model, a] : acc) {
    if (a.devices >= min_devices) {
      norm.per_model_[model] = finish(a);
    }
  }
  return norm;
}

const std::vector<ChannelStats>& ModelNormaliser::stats_for(const std::string& model,
                                                            bool* known) const {
  auto it = per_model_.find(model);
  if (known != nullptr) {
    *known = it != per_model_.end();
  }
  return it == per_model_.end() ? global_ : it->second;
}

namespace {

nlohmann::json stats_json(const std::vector<ChannelStats>& s) {
  auto j = nlohmann::json::array();
  for (const auto& c : s) {
    j.push_back({c.mean, c.scale});
  }
  return j;
}

PResult<std::vector<ChannelStats>> stats_from(const nlohmann::json& j, std::size_t channels) {
  if (!j.is_array() || j.size() != channels) {
    return perr(PredictorErrc::CorruptModel, "normaliser: wrong channel count");
  }
  std::vector<ChannelStats> out;
  for (const auto& c : j) {
    if (!c.is_array() || c.size() != 2 || !c[0].is_number() || !c[1].is_number()) {
      return perr(PredictorErrc::CorruptModel, "normaliser: entry is not [mean, scale]");
    }
    const double mean = c[0].get<double>(), scale = c[1].get<double>();
    constexpr double kMax = std::numeric_limits<float>::max();
    if (!(std::fabs(mean) <= kMax) || !(scale > 0 && scale <= kMax)) {
      return perr(PredictorErrc::CorruptModel, "normaliser: non-finite or zero scale");
    }
    out.push_back(ChannelStats{static_cast<float>(mean), static_cast<float>(scale)});
  }
  return out;
}

}  // namespace

nlohmann::json ModelNormaliser::to_json() const {
  nlohmann::json j;
  j["global"] = stats_json(global_);
  j["models"] = nlohmann::json::object();
  for (const auto& [model, s] : per_model_) {
    j["models"][model] = stats_json(s);
  }
  return j;
}

PResult<ModelNormaliser> ModelNormaliser::from_json(const nlohmann::json& j, std::size_t channels) {
  if (!j.is_object() || !j.contains("global") || !j.contains("models") || !j["models"].is_object()) {
    return perr(PredictorErrc::CorruptModel, "normaliser: missing 'global' or 'models'");
  }
  ModelNormaliser norm;
  auto g = stats_from(j["global"], channels);
  if (!g) {
    return fail(g.error());
  }
  norm.global_ = std::move(*g);
  for (const auto& [model, s] : j["models"].items()) {
    auto m = stats_from(s, channels);
    if (!m) {
      return fail(m.error());
    }
    norm.per_model_[model] = std::move(*m);
  }
  return norm;
}

PResult<void> validate_history(const DeviceTelemetryHistory& history,
                               const TelemetrySchema& schema) {
  if (history.samples.empty()) {
    return perr(PredictorErrc::EmptyHistory, fmt::format("device '{}'", history.device_id));
  }
  if (history.kind != schema.kind) {
    return perr(PredictorErrc::WrongFeatureSet,
                fmt::format("device '{}' is a {} but the model scores {}s", history.device_id,
                            device_kind_name(history.kind), device_kind_name(schema.kind)));
  }
  int32_t prev = std::numeric_limits<int32_t>::min();
  for (const auto& smp : history.samples) {
    if (smp.values.size() != schema.channels.size()) {
      return perr(PredictorErrc::WrongFeatureSet,
                  fmt::format("device '{}': sample has {} values, {} schema has {} channels",
                              history.device_id, smp.values.size(), device_kind_name(schema.kind),
                              schema.channels.size()));
    }
    for (std::size_t c = 0; c < smp.values.size(); ++c) {
      if (std::isinf(smp.values[c])) {
        return perr(PredictorErrc::NonFinite, fmt::format("device '{}': {} is infinite on step {}",
                                                          history.device_id, schema.channels[c], smp.day));
      }
    }
    if (smp.day <= prev) {
      return perr(PredictorErrc::BadArgument,
                  fmt::format("device '{}': samples not in increasing time order", history.device_id));
    }
    prev = smp.day;
  }
  return {};
}

}  // namespace ferry::predictor
