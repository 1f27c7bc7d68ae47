#include "ferry/predictor/evaluate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

namespace ferry::predictor {

namespace {

// Row indices sorted by score, highest first (ties keep row order; callers treat ties as
// blocks so the order inside a block never matters).
std::vector<std::size_t> by_score(const std::vector<float>& scores, std::size_t begin,
                                  std::size_t end) {
  std::vector<std::size_t> idx(end - begin);
  std::iota(idx.begin(), idx.end(), begin);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  return idx;
}

// DCG with tied scores sharing the average discount of their block.
double dcg(const std::vector<std::size_t>& idx, const std::vector<float>& scores,
           const std::vector<float>& label, std::size_t k) {
  double total = 0;
  for (std::size_t i = 0; i < idx.size() && i < k;) {
    std::size_t j = i;
    double gains = 0, disc = 0;
    while (j < idx.size() && scores[idx[j]] == scores[idx[i]]) {
      gains += label[idx[j]];
      if (j < k) {
        disc += 1.0 / std::log2(static_cast<double>(j) + 2.0);
      }
      ++j;
    }
    total += gains * disc / static_cast<double>(j - i);
    i = j;
  }
  return total;
}

double ideal_dcg(std::size_t positives, std::size_t k) {
  double total = 0;
  for (std::size_t i = 0; i < positives && i < k; ++i) {
    total += 1.0 / std::log2(static_cast<double>(i) + 2.0);
  }
  return total;
}

void ndcg_metrics(const FeatureMatrix& m, const std::vector<float>& scores, MethodMetrics& out) {
  std::size_t begin = 0, days = 0;
  for (uint32_t size : m.group_sizes) {
    const std::size_t end = begin + size;
    const auto pos = static_cast<std::size_t>(
        std::count(m.label.begin() + static_cast<long>(begin), m.label.begin() + static_cast<long>(end), 1.0f));
    if (pos > 0) {
      const auto idx = by_score(scores, begin, end);
      out.ndcg += dcg(idx, scores, m.label, idx.size()) / ideal_dcg(pos, idx.size());
      out.ndcg_at_10 += dcg(idx, scores, m.label, 10) / ideal_dcg(pos, 10);
      ++days;
    }
    begin = end;
  }
  if (days > 0) {
    out.ndcg /= static_cast<double>(days);
    out.ndcg_at_10 /= static_cast<double>(days);
  }
}

// Failure-level recall and mean lead time for a set of flagged rows.
std::pair<std::size_t, double> caught_and_lead(const FeatureMatrix& m,
                                               const std::vector<uint8_t>& flagged, int horizon) {
  std::map<uint32_t, int32_t> lead;  // device -> days from first flag to failure
  std::map<uint32_t, bool> caught;
  for (std::size_t r = 0; r < m.rows(); ++r) {
    const int32_t dtf = m.days_to_failure[r];
    if (!flagged[r] || dtf < 0) {
      continue;
    }
    lead[m.row_device[r]] = std::max(lead[m.row_device[r]], dtf);
    if (dtf < horizon) {
      caught[m.row_device[r]] = true;
    }
  }
  double sum = 0;
  for (const auto& [dev, c] : caught) {
    sum += lead[dev];
  }
  return {caught.size(), caught.empty() ? 0.0 : sum / static_cast<double>(caught.size())};
}

std::size_t count_failures(const FeatureMatrix& m, int horizon) {
  std::map<uint32_t, bool> f;
  for (std::size_t r = 0; r < m.rows(); ++r) {
    if (m.days_to_failure[r] >= 0 && m.days_to_failure[r] < horizon) {
      f[m.row_device[r]] = true;
    }
  }
  return f.size();
}

// Pooled threshold sweep: PR curve and recall at fixed false-evacuation rates.
void pooled_sweep(const FeatureMatrix& m, const std::vector<float>& scores,
                  const EvalOptions& o, MethodMetrics& out) {
  const auto idx = by_score(scores, 0, m.rows());
  const double total_pos = std::count(m.label.begin(), m.label.end(), 1.0f);
  const double n = static_cast<double>(m.rows());
  out.recall_at_fer.assign(o.false_evacuation_rates.size(), 0.0);
  out.failures_at_fer.assign(o.false_evacuation_rates.size(), 0.0);
  std::vector<std::size_t> cut_at(o.false_evacuation_rates.size(), 0);
  double tp = 0, fp = 0;
  for (std::size_t i = 0; i < idx.size();) {
    std::size_t j = i;
    while (j < idx.size() && scores[idx[j]] == scores[idx[i]]) {
      (m.label[idx[j]] > 0 ? tp : fp) += 1;
      ++j;
    }
    for (std::size_t k = 0; k < o.false_evacuation_rates.size(); ++k) {
      if (fp <= o.false_evacuation_rates[k] * n) {
        out.recall_at_fer[k] = total_pos > 0 ? tp / total_pos : 0;
        cut_at[k] = j;
      }
    }
    if (total_pos > 0 && (out.pr_curve.empty() || tp / total_pos > out.pr_curve.back().x + 0.002)) {
      out.pr_curve.push_back({tp / total_pos, tp / (tp + fp)});
    }
    i = j;
  }
  for (std::size_t k = 0; k < cut_at.size(); ++k) {
    std::vector<uint8_t> flags(m.rows(), 0);
    for (std::size_t i = 0; i < cut_at[k]; ++i) {
      flags[idx[i]] = 1;
    }
    const auto failures = count_failures(m, o.horizon);
    out.failures_at_fer[k] =
        failures ? static_cast<double>(caught_and_lead(m, flags, o.horizon).first) / failures : 0;
  }
}

// Top-n per day for the lead-time / caught curves.
std::vector<uint8_t> top_n_per_day(const FeatureMatrix& m, const std::vector<float>& scores,
                                   std::size_t n) {
  std::vector<uint8_t> flags(m.rows(), 0);
  std::size_t begin = 0;
  for (uint32_t size : m.group_sizes) {
    const auto idx = by_score(scores, begin, begin + size);
    // Include a tie block only when it fits entirely: ties are never broken in our favour.
    std::size_t i = 0;
    while (i < idx.size()) {
      std::size_t j = i;
      while (j < idx.size() && scores[idx[j]] == scores[idx[i]]) {
        ++j;
      }
      if (j > n) {
        break;
      }
      for (; i < j; ++i) {
        flags[idx[i]] = 1;
      }
    }
    begin += size;
  }
  return flags;
}

}  // namespace

MethodMetrics evaluate_method(const std::string& name, const FeatureMatrix& m,
                              const std::vector<float>& scores,
                              const std::vector<uint8_t>& flagged, const EvalOptions& o) {
  MethodMetrics out;
  out.name = name;
  double tp = 0, flags = 0;
  const double pos = std::count(m.label.begin(), m.label.end(), 1.0f);
  for (std::size_t r = 0; r < m.rows(); ++r) {
    if (flagged[r]) {
      flags += 1;
      tp += m.label[r];
    }
  }
  out.flags_per_day = m.group_sizes.empty() ? 0 : flags / static_cast<double>(m.group_sizes.size());
  out.precision = flags > 0 ? tp / flags : 0;
  out.recall = pos > 0 ? tp / pos : 0;
  out.failures = count_failures(m, o.horizon);
  std::tie(out.caught, out.mean_lead_days) = caught_and_lead(m, flagged, o.horizon);
  ndcg_metrics(m, scores, out);
  pooled_sweep(m, scores, o, out);
  for (std::size_t n : o.lead_curve_n) {
    const auto top = top_n_per_day(m, scores, n);
    const auto [caught, lead] = caught_and_lead(m, top, o.horizon);
    const double x = static_cast<double>(n);
    out.caught_curve.push_back({x, out.failures ? static_cast<double>(caught) / out.failures : 0});
    out.lead_curve.push_back({x, lead});
  }
  return out;
}

std::vector<uint8_t> flag_by_cost(const FeatureMatrix& m, const std::vector<double>& probability,
                                  const EvacuationCosts& costs) {
  std::vector<uint8_t> flags(m.rows(), 0);
  std::size_t begin = 0;
  for (uint32_t size : m.group_sizes) {
    std::vector<RiskScore> day;
    day.reserve(size);
    for (std::size_t r = begin; r < begin + size; ++r) {
      RiskScore s;
      s.device_id = std::to_string(r);
      s.host = s.device_id;
      s.score = static_cast<float>(probability[r]);
      s.probability = probability[r];
      day.push_back(std::move(s));
    }
    const auto plan = choose_evacuations(day, {}, costs);
    for (const auto& d : plan.evacuate) {
      flags[std::stoul(d.host)] = 1;
    }
    begin += size;
  }
  return flags;
}

std::vector<float> smart_rule_scores(const FeatureMatrix& m, const FeatureSpec& spec) {
  const auto names = feature_names(spec);
  const auto col = [&](const char* n) {
    return static_cast<std::size_t>(std::find(names.begin(), names.end(), n) - names.begin());
  };
  const std::size_t c5 = col("smart_5_raw"), c197 = col("smart_197_raw");
  std::vector<float> s(m.rows(), 0.0f);
  for (std::size_t r = 0; r < m.rows(); ++r) {
    for (std::size_t c : {c5, c197}) {
      const float v = c < m.cols ? m.row(r)[c] : kMissing;
      s[r] += std::isnan(v) ? 0.0f : std::max(v, 0.0f);
    }
  }
  return s;
}

std::string format_metrics_table(const std::vector<MethodMetrics>& methods,
                                 const EvalOptions& o) {
  std::string head = "| method | N/day | precision@N | recall@N | failures caught | mean lead (days)";
  std::string rule = "|---|---|---|---|---|---";
  for (double r : o.false_evacuation_rates) {
    head += fmt::format(" | recall @FER {:g}% (rows / failures)", r * 100);
    rule += "|---";
  }
  head += " | NDCG | NDCG@10 |\n";
  rule += "|---|---|\n";
  std::string out = head + rule;
  for (const auto& m : methods) {
    out += fmt::format("| {} | {:.1f} | {:.3f} | {:.3f} | {}/{} | {:.2f}", m.name, m.flags_per_day,
                       m.precision, m.recall, m.caught, m.failures, m.mean_lead_days);
    for (std::size_t k = 0; k < m.recall_at_fer.size(); ++k) {
      out += fmt::format(" | {:.3f} / {:.3f}", m.recall_at_fer[k], m.failures_at_fer[k]);
    }
    out += fmt::format(" | {:.3f} | {:.3f} |\n", m.ndcg, m.ndcg_at_10);
  }
  return out;
}

}  // namespace ferry::predictor
